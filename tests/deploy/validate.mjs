// Validates everything under deploy/, offline.
//
// Run through validate.sh (which installs the pinned packages first). Prints one line per check
// and closes with "N passed, N failed". READYNS_DEPLOY_VERBOSE=1 also prints why each negative
// case was rejected.
//
//   manifest  every YAML document under deploy/ against the Kubernetes OpenAPI schema (types,
//             required fields, enums), strictly (no unknown fields), and the API server's rules
//   render    every kustomization built with `kubectl kustomize` (or `kustomize build`), and
//             each object of the result validated the same way
//   set       cross-object checks of each deployable set (lib/semantic.mjs), the readyns config
//             and flags of each container judged by the built binary (lib/readyns.mjs)
//   accepted  valid changes of the node-local set (lib/mutations.mjs) must still pass
//   setup.sh  the node-local setup script, run: config rendering, and its interface and
//             iptables work against recording stand-ins
//   docker    deploy/Dockerfile parsed and checked (no Docker engine needed)
//   negative  every broken document under fixtures/invalid must be rejected, for its reason
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import YAML from "yaml";
import { StrictChecker, apiErrors, schemaErrors } from "./lib/k8s.mjs";
import { checkConfig, readynsInfo } from "./lib/readyns.mjs";
import { setErrors } from "./lib/semantic.mjs";
import { FakeNode, expectedRules, renderWithScript } from "./lib/setup.mjs";
import { dockerfileErrors, dockerfilePackages, dockerignoreErrors } from "./lib/dockerfile.mjs";
import { DOCKERFILE_MUTATIONS, SET_MUTATIONS, SET_VARIANTS } from "./lib/mutations.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "..", "..");
const deployDir = path.join(repoRoot, "deploy");
const fixturesDir = path.join(here, "fixtures", "invalid");
const rel = (p) => path.relative(repoRoot, p);

const version = /version\s*:\s*'([^']+)'/.exec(fs.readFileSync(path.join(repoRoot, "meson.build"), "utf8"))?.[1];
// The built readyns judges the configs and flags (READYNS_BIN, from tests/deploy/meson.build).
let readyns;
try {
  readyns = readynsInfo();
} catch (e) {
  console.error(`deploy validation: ${e.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const ctx = { repoRoot, readyns, version };

// ---- reporting ---------------------------------------------------------------------------------

const results = [];
function record(name, errors, { skip = null } = {}) {
  const status = skip ? "skip" : errors.length ? "fail" : "pass";
  results.push({ name, status, errors, skip });
  const head = { pass: "ok    ", fail: "FAIL  ", skip: "skip  " }[status];
  console.log(`${head}${name}${skip ? `  (${skip})` : ""}`);
  for (const e of errors) console.log(`        ${e}`);
}

// ---- files -------------------------------------------------------------------------------------

function walk(dir, pred, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== "node_modules" && !e.name.startsWith(".")) walk(p, pred, out); }
    else if (pred(p)) out.push(p);
  }
  return out;
}

// YAML documents of a text: { docs: [{ doc, index }], errors }.
function parseYaml(text) {
  const docs = [];
  const errors = [];
  YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true }).forEach((d, i) => {
    for (const e of [...d.errors, ...d.warnings]) errors.push(`document ${i + 1}: ${e.message.split("\n")[0]}`);
    if (d.errors.length) return;
    const doc = d.toJS({ maxAliasCount: 100 });
    if (doc === null || doc === undefined) return;
    docs.push({ doc, index: i + 1 });
  });
  return { docs, errors };
}

const label = (doc) => `${doc?.kind ?? "?"}/${doc?.metadata?.name ?? "?"}`;

// ---- validation of single objects (batched for the type checker) -------------------------------

const strict = new StrictChecker();
const jobs = []; // { id, doc, partial, onDone(errors) }
function validateObject(doc, { partial = false } = {}, onDone) {
  const id = jobs.length;
  const known = strict.add(id, doc, { partial });
  jobs.push({ id, doc, partial, known, onDone });
}
async function runObjectValidation() {
  const t0 = Date.now();
  const strictErrors = strict.run();
  const ms = Date.now() - t0;
  for (const j of jobs) {
    const errs = [];
    if (!j.known) errs.push(`no Kubernetes schema for apiVersion ${j.doc?.apiVersion} kind ${j.doc?.kind}`);
    else {
      if (!j.partial) errs.push(...(await schemaErrors(j.doc)).map((e) => `schema ${e}`));
      errs.push(...(strictErrors.get(j.id) ?? []).map((e) => `strict ${e}`));
      if (!j.partial) errs.push(...apiErrors(j.doc).map((e) => `api ${e}`));
    }
    j.onDone([...new Set(errs)]);
  }
  return ms;
}

// ---- kustomize ---------------------------------------------------------------------------------

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources", "components", "patches", "configMapGenerator",
  "secretGenerator", "generatorOptions", "images", "namespace", "namePrefix", "nameSuffix", "labels",
  "commonAnnotations", "replacements", "replicas", "buildMetadata", "sortOptions"]);
const DEPRECATED_KEYS = { bases: "resources", patchesStrategicMerge: "patches", patchesJson6902: "patches",
  vars: "replacements", commonLabels: "labels" };

function findRenderer() {
  const tries = process.env.READYNS_KUSTOMIZE ? [process.env.READYNS_KUSTOMIZE.split(" ")]
    : [["kubectl", "kustomize"], ["kustomize", "build"]];
  for (const cmd of tries) {
    const r = spawnSync(cmd[0], [...cmd.slice(1), "--help"], { encoding: "utf8", timeout: 30000 });
    if (r.status === 0) return cmd;
  }
  return null;
}

// A kustomization's own checks; returns the files it uses, by role.
function checkKustomization(file, k) {
  const errs = [];
  const dir = path.dirname(file);
  const uses = { resources: [], patches: [], generated: [] };
  if (k?.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k?.kind !== "Kustomization") {
    errs.push("apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization");
  }
  for (const key of Object.keys(k ?? {})) {
    if (DEPRECATED_KEYS[key]) errs.push(`${key} is deprecated: use ${DEPRECATED_KEYS[key]}`);
    else if (!KUSTOMIZATION_KEYS.has(key)) errs.push(`unknown key ${key}`);
  }
  const exists = (p, what) => {
    const abs = path.resolve(dir, p);
    if (!fs.existsSync(abs)) errs.push(`${what} ${p} does not exist`);
    else if (!abs.startsWith(deployDir + path.sep)) errs.push(`${what} ${p} is outside deploy/`);
    return abs;
  };
  for (const r of k?.resources ?? []) {
    const abs = exists(r, "resource");
    if (fs.existsSync(abs) && fs.statSync(abs).isFile()) uses.resources.push(abs);
  }
  for (const p of k?.patches ?? []) if (p.path) uses.patches.push(exists(p.path, "patch"));
  for (const g of k?.configMapGenerator ?? []) {
    if (!g.name) errs.push("configMapGenerator entry without name");
    for (const f of [...(g.files ?? []), ...(g.envs ?? [])]) uses.generated.push(exists(f.replace(/^[^=]*=/, ""), "generator file"));
    if (g.behavior && !["create", "merge", "replace"].includes(g.behavior)) errs.push(`generator ${g.name}: behavior ${g.behavior}`);
  }
  for (const im of k?.images ?? []) if (!im.name) errs.push("images entry without name");
  return { errs, uses };
}

// Without a kustomize binary: a base that only lists files, a namespace and generators can be
// assembled here (no hash suffixes); anything else cannot.
function assembleSimple(dir, k) {
  if ((k.resources ?? []).some((r) => fs.statSync(path.resolve(dir, r)).isDirectory()) || k.patches || k.components || k.replacements) return null;
  const docs = [];
  for (const r of k.resources ?? []) docs.push(...parseYaml(fs.readFileSync(path.resolve(dir, r), "utf8")).docs.map((d) => d.doc));
  for (const g of k.configMapGenerator ?? []) {
    const data = {};
    for (const f of g.files ?? []) {
      const [key, file] = f.includes("=") ? f.split("=", 2) : [path.basename(f), f];
      data[key] = fs.readFileSync(path.resolve(dir, file), "utf8");
    }
    for (const e of g.envs ?? []) {
      for (const line of fs.readFileSync(path.resolve(dir, e), "utf8").split("\n")) {
        const m = /^\s*([^#=\s][^=]*)=(.*)$/.exec(line);
        if (m) data[m[1].trim()] = m[2];
      }
    }
    for (const l of g.literals ?? []) { const i = l.indexOf("="); data[l.slice(0, i)] = l.slice(i + 1); }
    docs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  for (const d of docs) if (k.namespace && !["ClusterRole", "ClusterRoleBinding", "Namespace"].includes(d.kind)) {
    d.metadata = { ...d.metadata, namespace: k.namespace };
  }
  return docs;
}

// ---- the readyns config template ---------------------------------------------------------------

function templateErrors(text) {
  const filled = text.replaceAll("__LOCAL_DNS_IP__", "169.254.20.10").replaceAll("__KUBE_DNS_IP__", "10.96.0.10")
    .replaceAll("__KUBE_DNS_UPSTREAM__", "10.96.0.53");
  const left = filled.match(/__[A-Z_]+__/g);
  if (left) return [`unknown placeholders ${[...new Set(left)].join(", ")} (setup.sh fills only __LOCAL_DNS_IP__, __KUBE_DNS_IP__, __KUBE_DNS_UPSTREAM__)`];
  const { docs, errors } = parseYaml(filled);
  if (errors.length) return errors;
  if (docs.length !== 1) return ["one YAML document expected"];
  return checkConfig(ctx.readyns, filled, { what: "the filled template" });
}

// ---- setup.sh ----------------------------------------------------------------------------------

function checkSetupScript(scriptFile, templateFile) {
  const script = fs.readFileSync(scriptFile, "utf8");
  const template = fs.readFileSync(templateFile, "utf8");
  const name = `setup.sh ${rel(scriptFile)}`;
  const env = { LOCAL_DNS_IP: "169.254.20.10", KUBE_DNS_IP: "10.96.0.10", KUBE_DNS_UPSTREAM_SERVICE_HOST: "10.96.0.53" };

  const syntax = spawnSync("/bin/sh", ["-n", scriptFile], { encoding: "utf8" });
  record(`${name}: POSIX sh syntax (${fs.realpathSync("/bin/sh")})`, syntax.status === 0 ? [] : [syntax.stderr.trim()]);
  const sc = spawnSync("shellcheck", ["-s", "sh", scriptFile], { encoding: "utf8" });
  if (sc.error) record(`${name}: shellcheck`, [], { skip: "shellcheck not installed" });
  else record(`${name}: shellcheck`, sc.status === 0 ? [] : sc.stdout.trim().split("\n"));

  const cfgOf = (r) => (r.output ? YAML.parse(r.output) : null);
  let r = renderWithScript(script, template, env);
  let cfg = cfgOf(r);
  record(`${name}: renders the config (IPv4, both addresses)`, [
    ...(r.status === 0 ? [] : [`exit ${r.status}: ${r.stderr.trim()}`]),
    ...(cfg ? checkConfig(ctx.readyns, r.output, { what: "the rendered config" }) : ["no config written"]),
    ...(cfg && JSON.stringify(cfg.listen) !== JSON.stringify(["169.254.20.10:53", "10.96.0.10:53"]) ? [`listen ${JSON.stringify(cfg.listen)}`] : []),
    ...(cfg && cfg.forward?.some((f) => JSON.stringify(f.upstreams) !== JSON.stringify(["10.96.0.53:53"])) ? ["forward upstreams are not kube-dns-upstream"] : []),
  ]);
  r = renderWithScript(script, template, { ...env, KUBE_DNS_IP: "" });
  cfg = cfgOf(r);
  record(`${name}: renders the config with KUBE_DNS_IP empty (IPVS mode)`, [
    ...(r.status === 0 ? [] : [`exit ${r.status}: ${r.stderr.trim()}`]),
    ...(cfg ? checkConfig(ctx.readyns, r.output, { what: "the rendered config" }) : ["no config written"]),
    ...(cfg && JSON.stringify(cfg.listen) !== JSON.stringify(["169.254.20.10:53"]) ? [`listen ${JSON.stringify(cfg.listen)}`] : []),
  ]);
  r = renderWithScript(script, template, { ...env, KUBE_DNS_IP: "fd00:10:96::a", KUBE_DNS_UPSTREAM_SERVICE_HOST: "fd00:10:96::35" });
  cfg = cfgOf(r);
  record(`${name}: renders IPv6 addresses in brackets`, [
    ...(r.status === 0 ? [] : [`exit ${r.status}: ${r.stderr.trim()}`]),
    ...(cfg ? checkConfig(ctx.readyns, r.output, { what: "the rendered config" }) : ["no config written"]),
    ...(cfg && !cfg.listen?.includes("[fd00:10:96::a]:53") ? [`listen ${JSON.stringify(cfg.listen)}`] : []),
  ]);
  const refusals = [
    ["no kube-dns-upstream variable", { KUBE_DNS_UPSTREAM_SERVICE_HOST: "" }, /kube-dns-upstream/],
    ["an upstream equal to KUBE_DNS_IP", { KUBE_DNS_UPSTREAM_SERVICE_HOST: "10.96.0.10" }, /loop/],
    ["a malformed LOCAL_DNS_IP", { LOCAL_DNS_IP: "169.254.20.10; reboot" }, /LOCAL_DNS_IP/],
  ];
  for (const [what, over, re] of refusals) {
    r = renderWithScript(script, template, { ...env, ...over });
    record(`${name}: refuses ${what}`, r.status !== 0 && re.test(r.stderr) && r.output === null ? []
      : [`exit ${r.status}, stderr: ${r.stderr.trim() || "(empty)"}, config written: ${r.output !== null}`]);
  }

  // The network part, against stand-ins.
  const node = new FakeNode();
  try {
    const errs = [];
    let n = node.run(script, template, env);
    if (n.status !== 0) errs.push(`exit ${n.status}: ${n.stderr.trim()}`);
    const rules = node.lines("iptables-nft");
    const want = [...expectedRules("169.254.20.10"), ...expectedRules("10.96.0.10")];
    for (const w of want) if (!rules.includes(w)) errs.push(`missing rule: ${w}`);
    for (const g of rules) if (!want.includes(g)) errs.push(`unexpected rule: ${g}`);
    const ip = node.lines("ip");
    for (const w of ["link nodelocaldns", "addr nodelocaldns 169.254.20.10/32", "addr nodelocaldns 10.96.0.10/32", "up nodelocaldns"]) {
      if (!ip.includes(w)) errs.push(`interface state lacks "${w}" (has ${JSON.stringify(ip)})`);
    }
    if (node.lines("iptables-legacy").length) errs.push("wrote legacy rules on an nft host");
    record(`${name}: creates ${"nodelocaldns"} and NodeLocal DNSCache's ${want.length} NOTRACK/ACCEPT rules`, errs);

    n = node.run(script, template, env);
    const again = node.lines("calls").filter((l) => / -I | link add /.test(l));
    record(`${name}: a second run changes nothing`, n.status === 0 && again.length === 0 ? [] : [`exit ${n.status}`, ...again]);
  } finally {
    node.cleanup();
  }
  const legacyNode = new FakeNode();
  try {
    legacyNode.setSave("iptables-legacy-save", "-A KUBE-SERVICES -j KUBE-SVC-X\n-A KUBE-FIREWALL -j DROP\n");
    legacyNode.setSave("iptables-nft-save", "# Warning: iptables-legacy tables present\n");
    const n = legacyNode.run(script, template, { ...env, KUBE_DNS_IP: "fd00:10:96::a", KUBE_DNS_UPSTREAM_SERVICE_HOST: "fd00:10:96::35" });
    const errs = n.status === 0 ? [] : [`exit ${n.status}: ${n.stderr.trim()}`];
    if (legacyNode.lines("iptables-legacy").length !== 10) errs.push(`iptables-legacy rules: ${legacyNode.lines("iptables-legacy").length}, want 10`);
    const v6 = legacyNode.lines("ip6tables-legacy");
    for (const w of expectedRules("fd00:10:96::a")) if (!v6.includes(w)) errs.push(`missing ip6tables-legacy rule: ${w}`);
    if (legacyNode.lines("iptables-nft").length) errs.push("wrote nft rules on a legacy host");
    record(`${name}: follows the host's legacy iptables and uses ip6tables for IPv6`, errs);
  } finally {
    legacyNode.cleanup();
  }
  const offNode = new FakeNode();
  try {
    const n = offNode.run(script, template, { ...env, READYNS_SETUP_NETWORK: "false" });
    const touched = offNode.lines("calls");
    record(`${name}: READYNS_SETUP_NETWORK=false touches no interface or rule`, n.status === 0 && touched.length === 0 ? [] : [`exit ${n.status}`, ...touched]);
  } finally {
    offNode.cleanup();
  }
}

// ---- Dockerfile --------------------------------------------------------------------------------

function checkDocker() {
  const file = path.join(deployDir, "Dockerfile");
  if (!fs.existsSync(file)) return record("docker: deploy/Dockerfile", ["missing"]);
  const text = fs.readFileSync(file, "utf8");
  record("docker: deploy/Dockerfile (stages, base image, packages, meson steps, non-root USER, ENTRYPOINT)",
    dockerfileErrors(text, { repoRoot }));
  const ignore = path.join(deployDir, "Dockerfile.dockerignore");
  if (fs.existsSync(ignore)) record("docker: deploy/Dockerfile.dockerignore keeps the sources", dockerignoreErrors(fs.readFileSync(ignore, "utf8")));
  // The package names exist in Debian bookworm (the host's apt lists, when this is bookworm).
  const osr = fs.existsSync("/etc/os-release") ? fs.readFileSync("/etc/os-release", "utf8") : "";
  const pkgs = [...new Set(dockerfilePackages(text).flat())];
  const policy = spawnSync("apt-cache", ["policy", ...pkgs], { encoding: "utf8", timeout: 60000 });
  if (!/VERSION_CODENAME=bookworm/.test(osr)) return record("docker: apt packages exist in bookworm", [], { skip: "host is not Debian bookworm" });
  if (policy.error || policy.status !== 0) return record("docker: apt packages exist in bookworm", [], { skip: "apt-cache unavailable" });
  const candidates = new Map([...policy.stdout.matchAll(/^(\S+):\n\s+Installed: .*\n\s+Candidate: (.*)$/gm)].map((m) => [m[1], m[2]]));
  if (![...candidates.values()].some((c) => c !== "(none)")) return record("docker: apt packages exist in bookworm", [], { skip: "no apt lists (run apt-get update)" });
  record(`docker: apt packages exist in bookworm (${pkgs.length})`, pkgs.filter((p) => !candidates.has(p) || candidates.get(p) === "(none)").map((p) => `no such package: ${p}`));
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const yamlFiles = walk(deployDir, (p) => /\.ya?ml$/.test(p));
  const kustFiles = yamlFiles.filter((p) => path.basename(p) === "kustomization.yaml");
  const roles = new Map(); // file -> resources | patches | generated
  const kusts = [];
  for (const f of kustFiles) {
    const { docs, errors } = parseYaml(fs.readFileSync(f, "utf8"));
    const k = docs[0]?.doc;
    const { errs, uses } = errors.length ? { errs: errors, uses: { resources: [], patches: [], generated: [] } } : checkKustomization(f, k);
    record(`kustomization: ${rel(f)}`, errs);
    kusts.push({ file: f, dir: path.dirname(f), k });
    for (const [role, files] of Object.entries(uses)) for (const u of files) roles.set(u, role);
  }

  // Every other YAML file: Kubernetes objects (patches: partial ones), or a readyns config
  // template fed to a ConfigMap generator.
  const exampleSets = [];
  for (const f of yamlFiles.filter((p) => !kustFiles.includes(p))) {
    const role = roles.get(f) ?? (f.startsWith(path.join(deployDir, "kubernetes") + path.sep) ? "orphan" : "resources");
    const text = fs.readFileSync(f, "utf8");
    if (role === "orphan") { record(`manifest: ${rel(f)}`, ["not used by any kustomization.yaml"]); continue; }
    if (role === "generated") { record(`readyns config template: ${rel(f)}`, templateErrors(text)); continue; }
    const { docs, errors } = parseYaml(text);
    if (errors.length || docs.length === 0) { record(`manifest: ${rel(f)}`, errors.length ? errors : ["no documents"]); continue; }
    for (const { doc, index } of docs) {
      validateObject(doc, { partial: role === "patches" }, (errs) =>
        record(`manifest: ${rel(f)}#${index} ${label(doc)}${role === "patches" ? " (patch: strict only)" : ""}`, errs));
    }
    if (f.startsWith(path.join(deployDir, "examples") + path.sep)) exampleSets.push({ file: f, docs: docs.map((d) => d.doc) });
  }

  // Kustomize builds.
  const renderer = findRenderer();
  const sets = [];
  for (const { dir, k } of kusts) {
    const name = `render: ${rel(dir)}`;
    if (!renderer) {
      const docs = k && assembleSimple(dir, k);
      if (docs) {
        sets.push({ name: `${rel(dir)} (assembled without kustomize)`, docs });
        for (const doc of docs.filter((d) => d.kind === "ConfigMap")) {
          validateObject(doc, {}, (errs) => record(`assembled: ${rel(dir)}: ${label(doc)}`, errs));
        }
      }
      record(name, [], { skip: "neither kubectl nor kustomize installed" + (docs ? "; the base is assembled here instead" : "") });
      continue;
    }
    const r = spawnSync(renderer[0], [...renderer.slice(1), dir], { encoding: "utf8", timeout: 120000 });
    if (r.status !== 0) { record(name, [`${renderer.join(" ")} failed: ${(r.stderr || String(r.error)).trim()}`]); continue; }
    const { docs, errors } = parseYaml(r.stdout);
    record(`${name} (${renderer.join(" ")}, ${docs.length} objects)`, errors);
    sets.push({ name: `${renderer.join(" ")} ${rel(dir)}`, docs: docs.map((d) => d.doc) });
    for (const { doc } of docs) validateObject(doc, {}, (errs) => record(`render: ${rel(dir)}: ${label(doc)}`, errs));
  }

  // Negative fixtures: each must be rejected, with its expected reason among the errors.
  const fixtureFiles = fs.existsSync(fixturesDir) ? walk(fixturesDir, () => true) : [];
  const fixtureChecks = [];
  for (const f of fixtureFiles) {
    const text = fs.readFileSync(f, "utf8");
    const expects = [...text.matchAll(/^#\s*expect:\s*(.+)$/gm)].map((m) => new RegExp(m[1].trim()));
    const name = `negative: ${path.relative(here, f)}`;
    if (!expects.length) { record(name, ["no '# expect: REGEX' line"]); continue; }
    const check = { name, expects, errors: [], pending: 0 };
    fixtureChecks.push(check);
    if (/Dockerfile/.test(path.basename(f))) { check.errors.push(...dockerfileErrors(text)); continue; }
    if (/\.readyns\.yaml$/.test(f)) { check.errors.push(...templateErrors(text)); continue; }
    const { docs, errors } = parseYaml(text);
    check.errors.push(...errors);
    for (const { doc } of docs) { check.pending++; validateObject(doc, {}, (errs) => { check.errors.push(...errs); check.pending--; }); }
    check.set = docs.map((d) => d.doc);
  }

  // Mutations of the real node-local set and Dockerfile: each must be rejected for its reason.
  const baseSet = sets.find((s) => /kubernetes\/base\b/.test(s.name));
  for (const m of SET_MUTATIONS) {
    const name = `negative: base with ${m.name}`;
    if (!baseSet) { record(name, [], { skip: "no build of deploy/kubernetes/base" }); continue; }
    const docs = structuredClone(baseSet.docs);
    const check = { name, expects: [m.expect], errors: [], set: docs };
    try {
      m.apply(docs);
    } catch (e) {
      check.broken = `the mutation no longer applies to the manifests (${e.message}): update lib/mutations.mjs`;
    }
    if (m.objects && !check.broken) {
      const before = new Set(baseSet.docs.map((d) => JSON.stringify(d)));
      for (const d of docs.filter((x) => !before.has(JSON.stringify(x)))) validateObject(d, {}, (errs) => check.errors.push(...errs));
    }
    fixtureChecks.push(check);
  }
  const dockerfile = path.join(deployDir, "Dockerfile");
  if (fs.existsSync(dockerfile)) {
    const text = fs.readFileSync(dockerfile, "utf8");
    for (const m of DOCKERFILE_MUTATIONS) {
      const mutated = m.apply(text);
      fixtureChecks.push({ name: `negative: Dockerfile with ${m.name}`, expects: [m.expect],
        errors: dockerfileErrors(mutated, { repoRoot }),
        broken: mutated === text ? "the mutation no longer applies to deploy/Dockerfile: update lib/mutations.mjs" : null });
    }
  }

  const tsMs = await runObjectValidation();
  console.log(`        (schema and strict type check of ${jobs.length} objects; the compiler took ${tsMs} ms)`);

  for (const s of [...sets, ...exampleSets.map((e) => ({ name: rel(e.file), docs: e.docs }))]) {
    record(`set: ${s.name}`, setErrors(s.docs, ctx));
  }

  // Valid changes of the node-local set: each must still pass.
  for (const v of SET_VARIANTS) {
    const name = `accepted: base with ${v.name}`;
    if (!baseSet) { record(name, [], { skip: "no build of deploy/kubernetes/base" }); continue; }
    const docs = structuredClone(baseSet.docs);
    v.apply(docs);
    record(name, setErrors(docs, ctx));
  }

  const base = path.join(deployDir, "kubernetes", "base");
  if (fs.existsSync(path.join(base, "setup.sh"))) checkSetupScript(path.join(base, "setup.sh"), path.join(base, "readyns.yaml"));
  checkDocker();

  for (const c of fixtureChecks) {
    if (c.set) c.errors.push(...setErrors(c.set, ctx));
    const missing = c.expects.filter((re) => !c.errors.some((e) => re.test(e)));
    if (c.broken) { record(c.name, [c.broken]); continue; }
    record(c.name, missing.length === 0 ? []
      : [`not rejected for ${missing.join(", ")}; its errors: ${c.errors.length ? c.errors.join(" | ") : "(none: it was accepted)"}`]);
    if (process.env.READYNS_DEPLOY_VERBOSE) for (const e of c.errors) console.log(`        (rejected: ${e})`);
  }

  const count = (s) => results.filter((r) => r.status === s).length;
  const skipped = count("skip");
  console.log(`deploy validation took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${count("pass")} passed, ${count("fail")} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(count("fail") ? 1 : 0);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log("0 passed, 1 failed");
  process.exit(1);
});
