// Static checks of deploy/Dockerfile, with no Docker engine.
//
// It is parsed into stages and instructions, and held to what the image must be.
import fs from "node:fs";
import path from "node:path";

export const BASE_IMAGE = "debian:bookworm-slim";

// meson dependency() name -> the Debian package that provides it for the build.
const DEV_PACKAGES = {
  ldns: "libldns-dev",
  libuv: "libuv1-dev",
  spdlog: "libspdlog-dev",
  libcurl: "libcurl4-openssl-dev",
  nlohmann_json: "nlohmann-json3-dev",
  "yaml-cpp": "libyaml-cpp-dev",
  http_parser: "libhttp-parser-dev",
  "http-parser": "libhttp-parser-dev",
  catch2: "catch2",
  threads: null,
};
// Build package -> the runtime package the final stage needs with it (null: header-only or
// build-time only).
const RUNTIME_PACKAGES = {
  "libldns-dev": "libldns3",
  "libuv1-dev": "libuv1",
  "libspdlog-dev": "libspdlog1.10",
  "libcurl4-openssl-dev": "libcurl4",
  "nlohmann-json3-dev": null,
  "libyaml-cpp-dev": "libyaml-cpp0.7",
  "libhttp-parser-dev": "libhttp-parser2.9",
  catch2: null,
};
// find_program() names that `meson setup` requires in the build stage, and their packages.
const PROGRAM_PACKAGES = { openssl: "openssl" };
const BUILD_TOOLS = ["g++", "meson", "ninja-build", "pkg-config"];
// What the final stage must never carry.
const BUILD_ONLY = /^(g\+\+|gcc|clang|cpp|meson|ninja-build|cmake|make|build-essential|pkg-config|catch2|.*-dev)$/;

// Instructions of a Dockerfile: [{ op, args, line }], continuation lines joined, comments and
// parser directives dropped.
export function parseDockerfile(text) {
  const out = [];
  const lines = text.split("\n");
  let escape = "\\";
  let cur = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const d = /^#\s*escape\s*=\s*(\S)\s*$/.exec(raw);
    if (d && out.length === 0 && !cur) escape = d[1];
    const trimmed = raw.trim();
    if (!cur && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (cur && trimmed.startsWith("#")) continue; // comment inside a continuation
    const body = cur ? cur.text + " " + trimmed : trimmed;
    const start = cur ? cur.line : i + 1;
    if (body.endsWith(escape)) {
      cur = { text: body.slice(0, -1).trimEnd(), line: start };
      continue;
    }
    cur = null;
    const m = /^(\S+)\s*(.*)$/.exec(body);
    out.push({ op: m[1].toUpperCase(), args: m[2], line: start });
  }
  if (cur) out.push({ op: "ERROR", args: "file ends inside a continuation", line: cur.line });
  return out;
}

// Stages: [{ from, name, index, instructions }].
export function stages(instructions) {
  const result = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") {
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith("--platform"));
      const as = parts.findIndex((p) => p.toUpperCase() === "AS");
      result.push({ from: parts[0], name: as >= 0 ? parts[as + 1] : null, index: result.length, instructions: [], line: ins.line });
    } else if (result.length) {
      result[result.length - 1].instructions.push(ins);
    }
  }
  return result;
}

// Packages named by `apt-get install` in a RUN instruction.
function aptPackages(run) {
  const pkgs = [];
  for (const cmd of run.split(/&&|;|\|\|/)) {
    const words = cmd.trim().split(/\s+/);
    const i = words.findIndex((w, k) => w === "install" && /apt(-get)?$/.test(words[k - 1] ?? ""));
    if (i < 0) continue;
    for (const w of words.slice(i + 1)) if (w && !w.startsWith("-")) pkgs.push(w.replace(/=.*$/, ""));
  }
  return pkgs;
}

// meson dependency() names used anywhere in the source tree.
export function mesonDependencies(repoRoot) {
  const names = new Set();
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith(".") || e.name === "node_modules" || /^build/.test(e.name) && dir === repoRoot) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === "meson.build") {
        const text = fs.readFileSync(p, "utf8").replace(/#.*$/gm, "");
        for (const m of text.matchAll(/\bdependency\(\s*'([^']+)'/g)) names.add(m[1]);
        for (const m of text.matchAll(/\bfind_program\(\s*'([^']+)'/g)) names.add(`program:${m[1]}`);
      }
    }
  };
  walk(repoRoot);
  return names;
}

// Errors of a Dockerfile's text. repoRoot: to cross-check meson's dependencies (optional).
export function dockerfileErrors(text, { repoRoot = null } = {}) {
  const errs = [];
  const ins = parseDockerfile(text);
  for (const i of ins) if (i.op === "ERROR") errs.push(`line ${i.line}: ${i.args}`);
  const st = stages(ins);
  if (st.length < 2) errs.push(`multi-stage build expected, found ${st.length} stage(s)`);
  for (const s of st) {
    const image = s.from.replace(/@sha256:[0-9a-f]{64}$/, "");
    const stageRef = st.some((o) => o.name && o.name === s.from && o.index < s.index);
    if (image !== BASE_IMAGE && !stageRef) errs.push(`line ${s.line}: FROM ${s.from}: every stage must start from ${BASE_IMAGE}`);
  }
  if (st.length < 2) return errs;
  const build = st[0];
  const final = st[st.length - 1];
  if (!build.name) errs.push("the build stage has no name (FROM ... AS build)");
  const runs = (s) => s.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
  const buildRun = runs(build).join(" && ");
  const finalRun = runs(final).join(" && ");

  // Build stage: packages and the meson steps.
  const buildPkgs = new Set(runs(build).flatMap(aptPackages));
  const wantedBuild = new Set(BUILD_TOOLS);
  for (const p of Object.values(DEV_PACKAGES)) if (p) wantedBuild.add(p);
  if (repoRoot) {
    for (const dep of mesonDependencies(repoRoot)) {
      if (dep.startsWith("program:")) {
        // Programs meson setup insists on; the others are optional or integration-only.
        if (PROGRAM_PACKAGES[dep.slice(8)]) wantedBuild.add(PROGRAM_PACKAGES[dep.slice(8)]);
      } else if (!(dep in DEV_PACKAGES)) {
        errs.push(`meson dependency('${dep}') has no known Debian package: add it to the Dockerfile and to DEV_PACKAGES in tests/deploy/lib/dockerfile.mjs`);
      }
    }
  }
  for (const p of wantedBuild) if (!buildPkgs.has(p)) errs.push(`build stage: apt-get install lacks ${p}`);
  for (const step of [/meson setup \S+.*--buildtype[= ]release/, /meson compile -C \S+/, /meson install .*--destdir[= ]\S+/]) {
    if (!step.test(buildRun)) errs.push(`build stage: no RUN matching ${step}`);
  }
  for (const [s, run] of [[build, buildRun], [final, finalRun]]) {
    if (/apt-get install/.test(run)) {
      if (!/--no-install-recommends/.test(run)) errs.push(`stage ${s.name ?? s.index}: apt-get install without --no-install-recommends`);
      if (!/rm -rf \/var\/lib\/apt\/lists/.test(run)) errs.push(`stage ${s.name ?? s.index}: apt lists not removed after apt-get install`);
      if (!/apt-get update/.test(run)) errs.push(`stage ${s.name ?? s.index}: apt-get install without apt-get update`);
    }
  }

  // Final stage: runtime packages only, the binary from the build stage, not root.
  const finalPkgs = new Set(runs(final).flatMap(aptPackages));
  for (const p of finalPkgs) if (BUILD_ONLY.test(p)) errs.push(`final stage installs the build-only package ${p}`);
  const wantedRuntime = new Set(["iproute2", "iptables"]);
  for (const dev of buildPkgs) if (RUNTIME_PACKAGES[dev]) wantedRuntime.add(RUNTIME_PACKAGES[dev]);
  for (const p of wantedRuntime) if (!finalPkgs.has(p)) errs.push(`final stage: apt-get install lacks ${p}`);
  const copies = final.instructions.filter((i) => i.op === "COPY");
  if (!copies.some((c) => new RegExp(`--from=(${build.name}|0)\\b`).test(c.args))) {
    errs.push("final stage: no COPY --from the build stage");
  }
  const users = final.instructions.filter((i) => i.op === "USER");
  const user = users.length ? users[users.length - 1].args.trim() : null;
  if (!user) errs.push("final stage: no USER (the image would run as root)");
  else if (/^(0|root)(:|$)/.test(user)) errs.push(`final stage: USER ${user} is root`);
  else if (!/^\d+(:\d+)?$/.test(user)) errs.push(`final stage: USER ${user} is not numeric (the kubelet cannot check runAsNonRoot)`);
  const ep = final.instructions.filter((i) => i.op === "ENTRYPOINT").pop();
  let epArgs = null;
  try { epArgs = ep ? JSON.parse(ep.args) : null; } catch { /* shell form */ }
  if (!Array.isArray(epArgs)) errs.push("final stage: ENTRYPOINT must be in exec form [\"/path/to/readyns\"]");
  else if (!/(^|\/)readyns$/.test(epArgs[0] ?? "")) errs.push(`final stage: ENTRYPOINT runs ${epArgs[0]}, not readyns`);
  // File capabilities: only NET_BIND_SERVICE (see the Dockerfile; another one breaks exec in
  // containers whose bounding set lacks it).
  for (const m of finalRun.matchAll(/setcap\s+(\S+)/g)) {
    const caps = m[1].split("=")[0].split(",");
    for (const c of caps) if (c !== "cap_net_bind_service") errs.push(`final stage: setcap grants ${c}; only cap_net_bind_service may be a file capability`);
  }
  if (user && !/^(0|root)/.test(user) && !/setcap\s+cap_net_bind_service/.test(finalRun)) {
    errs.push("final stage: non-root, but no setcap cap_net_bind_service=+ep on readyns: it could not bind port 53");
  }
  if (!final.instructions.some((i) => i.op === "EXPOSE" && /\b53\/udp\b/.test(i.args))) {
    errs.push("final stage: EXPOSE 53/udp missing");
  }
  return errs;
}

// Packages the Dockerfile installs, per stage: [[build...], [final...]].
export function dockerfilePackages(text) {
  return stages(parseDockerfile(text)).map((s) =>
    s.instructions.filter((i) => i.op === "RUN").flatMap((i) => aptPackages(i.args)));
}

// Errors of a .dockerignore for a build of the repository root: it must keep what meson reads.
export function dockerignoreErrors(text) {
  const errs = [];
  const patterns = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const needed = ["meson.build", "meson_options.txt", "src", "include", "tests", "tests/meson.build"];
  for (const p of patterns) {
    if (p.startsWith("!")) continue;
    const re = new RegExp("^" + p.replace(/\/$/, "").replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*\*\//g, "(.*/)?").replace(/\*\*/g, ".*").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]") + "$");
    for (const n of needed) if (re.test(n)) errs.push(`pattern "${p}" excludes ${n}, which the build needs`);
  }
  return errs;
}
