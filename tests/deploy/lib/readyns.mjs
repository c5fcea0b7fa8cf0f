// What readyns accepts, asked of the built binary.
//
// Its flags (`--help`) and, for a config file with the flags a manifest passes,
// `readyns --check-config FILE [FLAGS]`. No copy of its rules lives here (a copy went stale); what
// stays is what the binary cannot know: flags the manifests use ahead of their implementation, the
// kubelet's $(VAR) expansion, and the pod's resolv.conf.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { isIP } from "./k8s.mjs";

// Flags the manifests may use ahead of their implementation (the self-setup overlay's), each with
// a check of its value; they are always left out of what the binary is asked and checked here.
// Once the binary implements one, delete its entry so that the binary checks it instead.
const PLANNED_FLAGS = new Map([
  ["--setup-interface", (v) => (/^[a-zA-Z0-9_.-]{1,15}$/.test(v) ? null : "expected an interface name")],
  ["--setup-address", (v) => (isIP(v) ? null : "expected an IP address")],
]);

// The kubelet expands $(VAR) of a field reference (status.podIP and the like) only in the pod:
// here it stands for an address, which is what such a variable holds in these manifests.
const POD_VARIABLE_STANDIN = "10.0.0.1";
// The pod's /etc/resolv.conf (dnsPolicy: Default: the node's) is not this machine's, which may
// lack one or list a loopback resolver: `resolv.conf` and `resolv.conf:PATH` upstreams are
// checked against a sample.
const SAMPLE_RESOLV_CONF = "# the node's resolvers, as the kubelet gives a dnsPolicy Default pod\nnameserver 10.0.0.2\n";

// The binary under test: READYNS_BIN, which tests/deploy/meson.build sets to the built one.
// Returns { bin, flags: Map(flag -> takes a value) } from its --help, or throws with the reason.
export function readynsInfo() {
  const bin = process.env.READYNS_BIN;
  if (!bin) throw new Error("READYNS_BIN is not set: run through `meson test deploy-manifests`, or set it to a built readyns");
  const r = spawnSync(bin, ["--help"], { encoding: "utf8", timeout: 10000 });
  if (r.status !== 0) throw new Error(`${bin} --help failed: ${(r.stderr || String(r.error)).trim()}`);
  const flags = new Map();
  // usage(): "  --flag ARG  help [key]", a switch without ARG.
  for (const m of r.stdout.matchAll(/^ {2}(--[a-z0-9-]+)(?: (\S+))? {2}/gm)) flags.set(m[1], m[2] !== undefined);
  if (!flags.has("--check-config")) throw new Error(`${bin} has no --check-config (its --help lists ${[...flags.keys()].join(" ")})`);
  for (const f of PLANNED_FLAGS.keys()) if (!flags.has(f)) flags.set(f, true);
  return { bin, flags };
}

// "ADDR:PORT" (IPv6 as "[ADDR]:PORT") -> { host, port } or null. For the cross-object checks
// (probe ports, loops), once the binary has accepted the value.
export function parseAddrPort(s) {
  if (typeof s !== "string") return null;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([0-9.]+):(\d+)$/.exec(s);
  if (!m || !isIP(m[1])) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1], port } : null;
}

// Splits readyns's argv as cli.cpp does ("--flag=value" or "--flag value"; a switch takes a
// value only as "--switch=false"), to read the values the cross-object checks need. Unknown flags
// are kept but judged by no check here: checkConfig() has the binary refuse them. Returns { flags: [[flag, value]], args }.
export function parseArgs(args, info) {
  const flags = [];
  for (let i = 0; i < args.length; i++) {
    const arg = String(args[i]);
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    let value = eq > 0 ? arg.slice(eq + 1) : null;
    if (value === null && info.flags.get(flag) && i + 1 < args.length) value = String(args[++i]);
    flags.push([flag, value]);
  }
  return { flags, args: args.map(String) };
}

export function flagValues(parsed, flag) {
  return parsed.flags.filter(([f]) => f === flag).map(([, v]) => v);
}

// Errors of a readyns config text (null: no file, flags only) run with the flags of `parsed` (the
// --config among them is replaced by the text), as the binary reports them: [] when valid.
// `what` names the config in the messages, in place of the temporary file.
export function checkConfig(info, text, { parsed = { flags: [], args: [] }, what = "config" } = {}) {
  const errs = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "readyns-deploy-"));
  try {
    const resolv = path.join(dir, "resolv.conf");
    fs.writeFileSync(resolv, SAMPLE_RESOLV_CONF);
    const sample = (s) => s.replace(/(?<![\w/.:-])resolv\.conf(?::[^\s"',\]]+)?(?![\w:./-])/g, `resolv.conf:${resolv}`);
    const file = path.join(dir, "readyns.yaml");
    fs.writeFileSync(file, text === null ? "" : sample(text));
    const args = [];
    for (let i = 0; i < parsed.args.length; i++) {
      const arg = parsed.args[i];
      const eq = arg.indexOf("=");
      const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
      const takesNext = eq < 0 && i + 1 < parsed.args.length;
      if (flag === "--config") { if (takesNext) i++; continue; }
      const planned = PLANNED_FLAGS.get(flag);
      if (planned) {
        const v = eq > 0 ? arg.slice(eq + 1) : takesNext ? parsed.args[++i] : "";
        const e = planned(v.replace(/\$\([A-Za-z_][A-Za-z0-9_]*\)/g, POD_VARIABLE_STANDIN));
        if (e) errs.push(`${flag}=${v}: ${e}`);
        continue;
      }
      args.push(sample(arg.replace(/\$\([A-Za-z_][A-Za-z0-9_]*\)/g, POD_VARIABLE_STANDIN)));
    }
    const r = spawnSync(info.bin, ["--check-config", file, ...args], { encoding: "utf8", timeout: 10000 });
    if (r.status !== 0) {
      const out = (r.stderr || r.stdout || String(r.error)).trim().replaceAll(file, what).replaceAll(`resolv.conf:${resolv}`, "resolv.conf");
      errs.push(`readyns --check-config (exit ${r.status}): ${out}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return errs;
}
