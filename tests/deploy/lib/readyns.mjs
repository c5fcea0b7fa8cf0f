// What readyns accepts: its flags (as the manifests pass them) and its YAML config file.
// The flags are those named in src/config/*.cpp plus the planned ones below, so a manifest may use a
// flag before it lands, but not a misspelt one.
import fs from "node:fs";
import path from "node:path";
import { isIP } from "./k8s.mjs";

// Flags the manifests may use ahead of their implementation (issue 5 and the deploy brief).
const PLANNED_FLAGS = [
  "--config", "--health", "--metrics", "--kube", "--cluster-domain",
  "--setup-interface", "--setup-address",
];
const NO_VALUE_FLAGS = new Set(["--help", "--randomize-case"]);
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical", "off"];
const KUBE_MODES = ["off", "auto", "on"];

export function knownFlags(repoRoot) {
  const flags = new Set(PLANNED_FLAGS);
  // Every flag named as a string literal in src/config (the flag table lives there).
  const dir = path.join(repoRoot, "src", "config");
  for (const file of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!file.endsWith(".cpp")) continue;
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    for (const m of text.matchAll(/"(--[a-z0-9-]+)"/g)) flags.add(m[1]);
  }
  return flags;
}

// "ADDR:PORT" (IPv6 as "[ADDR]:PORT") -> { host, port } or null.
export function parseAddrPort(s) {
  if (typeof s !== "string") return null;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([0-9.]+):(\d+)$/.exec(s);
  if (!m || !isIP(m[1])) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1], port } : null;
}

function isDnsName(s) {
  return typeof s === "string" && s.length <= 253 &&
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?\.?$/i.test(s);
}

function intIn(v, lo, hi) {
  const n = typeof v === "number" ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= lo && n <= hi;
}

// Checks of one flag's value; `$(VAR)` (kubelet expansion) stands for an address.
function flagValueError(flag, value) {
  const v = value.replace(/\$\([A-Za-z_][A-Za-z0-9_]*\)/g, "10.0.0.1");
  const addr = (s) => parseAddrPort(s) !== null;
  switch (flag) {
    case "--listen": case "--health": case "--metrics":
      return addr(v) ? null : "expected ADDR:PORT";
    case "--upstream":
      return addr(v) || v === "resolv.conf" ? null : "expected ADDR:PORT or resolv.conf";
    case "--forward": {
      const eq = v.indexOf("=");
      if (eq <= 0) return "expected ZONE=ADDR:PORT[,ADDR:PORT...]";
      if (!isDnsName(v.slice(0, eq)) && v.slice(0, eq) !== ".") return "bad zone";
      return v.slice(eq + 1).split(",").every(addr) ? null : "expected ZONE=ADDR:PORT[,ADDR:PORT...]";
    }
    case "--config": return v.startsWith("/") ? null : "expected an absolute path";
    case "--cache-size": return intIn(v, 1, 1e8) ? null : "expected 1-100000000";
    case "--min-ttl": case "--max-ttl": case "--neg-ttl":
      return intIn(v, 0, 7 * 86400) ? null : "expected seconds";
    case "--threads": return intIn(v, 1, 256) ? null : "expected 1-256";
    case "--kube": return KUBE_MODES.includes(v) ? null : `expected one of ${KUBE_MODES.join(", ")}`;
    case "--cluster-domain": return isDnsName(v) ? null : "expected a DNS name";
    case "--log-level": return LOG_LEVELS.includes(v) ? null : `expected one of ${LOG_LEVELS.join(", ")}`;
    case "--setup-interface": return /^[a-zA-Z0-9_.-]{1,15}$/.test(v) ? null : "expected an interface name";
    case "--setup-address": return isIP(v) ? null : "expected an IP address";
    default: return /^\d+$/.test(v) || !/timeout|max-connections|pipelined/.test(flag) ? null : "expected a number";
  }
}

// Parses readyns's argv as cli.cpp does ("--flag=value" or "--flag value").
// Returns { flags: [[flag, value]], errors: [] }.
export function parseArgs(args, known) {
  const flags = [];
  const errors = [];
  for (let i = 0; i < args.length; i++) {
    const arg = String(args[i]);
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    if (!known.has(flag)) {
      errors.push(`unknown readyns flag "${arg}"`);
      continue;
    }
    let value = null;
    if (NO_VALUE_FLAGS.has(flag)) {
      if (eq > 0) errors.push(`${flag} takes no value`);
    } else if (eq > 0) {
      value = arg.slice(eq + 1);
    } else if (i + 1 < args.length) {
      value = String(args[++i]);
    } else {
      errors.push(`${flag}: missing value`);
      continue;
    }
    if (value !== null) {
      const e = flagValueError(flag, value);
      if (e) errors.push(`${flag}=${value}: ${e}`);
    }
    flags.push([flag, value]);
  }
  return { flags, errors };
}

export function flagValues(parsed, flag) {
  return parsed.flags.filter(([f]) => f === flag).map(([, v]) => v);
}

// ---- the config file ---------------------------------------------------------------------------

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function checkKeys(obj, allowed, where, errs) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) errs.push(`${where}${k}: unknown key (known: ${allowed.join(", ")})`);
  }
}

function checkUpstreams(list, where, errs, { allowResolvConf }) {
  if (allowResolvConf && list === "resolv.conf") return;
  if (!Array.isArray(list) || list.length === 0) {
    errs.push(`${where}: a non-empty list of ADDR:PORT${allowResolvConf ? " (or resolv.conf)" : ""}`);
    return;
  }
  for (const u of list) {
    if (allowResolvConf && u === "resolv.conf") continue;
    if (!parseAddrPort(u)) errs.push(`${where}: "${u}" is not ADDR:PORT`);
  }
}

// Errors of a parsed readyns config (keys mirror the flags).
export function configErrors(cfg) {
  const errs = [];
  if (!isObj(cfg)) return ["the config is not a mapping"];
  const numeric = {
    threads: [1, 256], upstream_timeout: [10, 60000], resolve_timeout: [10, 60000],
    tcp_idle_timeout: [10, 600000], tcp_max_connections: [1, 1000000], tcp_max_pipelined: [1, 100000],
  };
  checkKeys(cfg, ["listen", "upstreams", "forward", "cache", "kube", "health", "metrics",
    "log_level", "randomize_case", ...Object.keys(numeric)], "", errs);
  if (cfg.listen !== undefined) {
    if (!Array.isArray(cfg.listen) || cfg.listen.length === 0) errs.push("listen: a non-empty list");
    else for (const l of cfg.listen) if (!parseAddrPort(l)) errs.push(`listen: "${l}" is not ADDR:PORT`);
  }
  if (cfg.upstreams !== undefined) checkUpstreams(cfg.upstreams, "upstreams", errs, { allowResolvConf: true });
  if (cfg.forward !== undefined) {
    if (!Array.isArray(cfg.forward)) errs.push("forward: a list of {zone, upstreams}");
    const zones = new Set();
    for (const [i, f] of (Array.isArray(cfg.forward) ? cfg.forward : []).entries()) {
      if (!isObj(f)) { errs.push(`forward[${i}]: a mapping`); continue; }
      checkKeys(f, ["zone", "upstreams"], `forward[${i}].`, errs);
      if (!isDnsName(f.zone)) errs.push(`forward[${i}].zone: "${f.zone}" is not a DNS name`);
      const z = String(f.zone).toLowerCase().replace(/\.$/, "");
      if (zones.has(z)) errs.push(`forward[${i}].zone: ${f.zone} twice`);
      zones.add(z);
      checkUpstreams(f.upstreams, `forward[${i}].upstreams`, errs, { allowResolvConf: true });
    }
  }
  if (cfg.cache !== undefined) {
    if (!isObj(cfg.cache)) errs.push("cache: a mapping");
    else {
      checkKeys(cfg.cache, ["size", "min_ttl", "max_ttl", "neg_ttl"], "cache.", errs);
      if (cfg.cache.size !== undefined && !intIn(cfg.cache.size, 1, 1e8)) errs.push("cache.size: 1-100000000");
      for (const k of ["min_ttl", "max_ttl", "neg_ttl"]) {
        if (cfg.cache[k] !== undefined && !(Number.isInteger(cfg.cache[k]) && cfg.cache[k] >= 0)) {
          errs.push(`cache.${k}: seconds, a whole number`);
        }
      }
      if (cfg.cache.min_ttl > cfg.cache.max_ttl) errs.push("cache.min_ttl: above max_ttl");
    }
  }
  if (cfg.kube !== undefined) {
    if (!isObj(cfg.kube)) errs.push("kube: a mapping");
    else {
      checkKeys(cfg.kube, ["mode", "cluster_domain"], "kube.", errs);
      if (cfg.kube.mode !== undefined && !KUBE_MODES.includes(cfg.kube.mode)) {
        errs.push(`kube.mode: ${JSON.stringify(cfg.kube.mode)} is not one of ${KUBE_MODES.join(", ")} (quote "off")`);
      }
      if (cfg.kube.cluster_domain !== undefined && !isDnsName(cfg.kube.cluster_domain)) {
        errs.push("kube.cluster_domain: not a DNS name");
      }
    }
  }
  for (const k of ["health", "metrics"]) {
    if (cfg[k] !== undefined && !parseAddrPort(cfg[k])) errs.push(`${k}: "${cfg[k]}" is not ADDR:PORT`);
  }
  if (cfg.log_level !== undefined && !LOG_LEVELS.includes(cfg.log_level)) errs.push(`log_level: one of ${LOG_LEVELS.join(", ")}`);
  if (cfg.randomize_case !== undefined && typeof cfg.randomize_case !== "boolean") errs.push("randomize_case: true or false");
  for (const [k, [lo, hi]] of Object.entries(numeric)) {
    if (cfg[k] !== undefined && !(Number.isInteger(cfg[k]) && cfg[k] >= lo && cfg[k] <= hi)) {
      errs.push(`${k}: a whole number from ${lo} to ${hi}`);
    }
  }
  return errs;
}
