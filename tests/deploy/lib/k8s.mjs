// Validation of single Kubernetes objects, offline.
//
//   schema  the Kubernetes OpenAPI schema as compiled into kubernetes-models (ajv): types,
//           required fields, enums, formats;
//   strict  unknown fields, which the OpenAPI schema allows (no additionalProperties: false) but
//           the API server drops or rejects: each object is type-checked by the TypeScript
//           compiler against kubernetes-models' interfaces, whose excess-property check rejects
//           any field the API does not have (what `kubectl --validate=strict` does online);
//   api     rules the API server enforces in code, not in the schema (names, port names,
//           selectors, DNS config limits, requests <= limits, ...).
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";

const here = path.dirname(new URL(import.meta.url).pathname);
const testRoot = path.resolve(here, "..");
const modelsRoot = path.join(testRoot, "node_modules", "kubernetes-models");

// "apps/v1" + "DaemonSet" -> "apps/v1/DaemonSet", or null when kubernetes-models has no such model.
export function modelPath(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^[a-z0-9.-]*\/?v[0-9]+[a-z0-9]*$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return null;
  }
  const rel = `${apiVersion}/${kind}`;
  return fs.existsSync(path.join(modelsRoot, `${rel}.d.ts`)) ? rel : null;
}

const modelCache = new Map();
async function modelClass(rel) {
  if (!modelCache.has(rel)) {
    const mod = await import(`kubernetes-models/${rel}`);
    modelCache.set(rel, mod[path.basename(rel)]);
  }
  return modelCache.get(rel);
}

// Schema errors of one object: ["/spec/x: must be integer", ...].
export async function schemaErrors(doc) {
  const rel = modelPath(doc?.apiVersion, doc?.kind);
  if (!rel) return [`no Kubernetes schema for apiVersion ${doc?.apiVersion} kind ${doc?.kind}`];
  const Model = await modelClass(rel);
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    return e.errors.map((err) => {
      let where = err.instancePath || "/";
      let msg = err.message;
      if (err.keyword === "enum") msg += `: ${JSON.stringify(err.params.allowedValues)}`;
      if (err.keyword === "additionalProperties") msg += `: ${err.params.additionalProperty}`;
      return `${where}: ${msg}`;
    });
  }
}

// ---- strict: the TypeScript compiler as a structural validator --------------------------------

const DEEP_PARTIAL = `type DeepPartial<T> = T extends (infer U)[] ? DeepPartial<U>[]
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;\n`;

// Collects objects, then type-checks all of them in one compiler run (one run costs about a
// second; one per object would cost that many times over).
export class StrictChecker {
  constructor() {
    this.files = new Map(); // virtual file name -> { text, id }
  }

  // partial: a strategic-merge patch, where every field is optional but unknown ones are not.
  add(id, doc, { partial = false } = {}) {
    const rel = modelPath(doc?.apiVersion, doc?.kind);
    if (!rel) return false;
    const iface = `I${path.basename(rel)}`;
    const type = partial ? `DeepPartial<${iface}>` : iface;
    const text =
      `import type { ${iface} } from "kubernetes-models/${rel}";\n` +
      (partial ? DEEP_PARTIAL : "") +
      `export const doc: ${type} = ${JSON.stringify(doc, null, 2)};\n`;
    const name = path.join(testRoot, `__strict_${this.files.size}.mts`);
    this.files.set(name, { text, id });
    return true;
  }

  // id -> ["/spec/x: message", ...] for every object added.
  run() {
    const options = {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: [],
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      noErrorTruncation: true,
    };
    const host = ts.createCompilerHost(options);
    const { files } = this;
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
      files.has(name) ? ts.createSourceFile(name, files.get(name).text, lang, true)
        : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => files.has(name) || fileExists(name);
    const readFile = host.readFile.bind(host);
    host.readFile = (name) => (files.has(name) ? files.get(name).text : readFile(name));
    const program = ts.createProgram([...files.keys()], options, host);
    const out = new Map([...files.values()].map((f) => [f.id, []]));
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const entry = d.file && files.get(d.file.fileName);
      const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n");
      if (!entry) {
        throw new Error(`TypeScript error outside the checked objects: ${msg.join(" ")}`);
      }
      // The first line names the whole object; the last names the offending field.
      const detail = msg[msg.length - 1].trim();
      out.get(entry.id).push(`${jsonPathAt(d.file, d.start)}: ${detail}`);
    }
    return out;
  }
}

// The JSON path ("/spec/template/...") of the literal at a position of a generated file.
function jsonPathAt(sf, pos) {
  const parts = [];
  let node = sf;
  for (;;) {
    let next;
    ts.forEachChild(node, (child) => {
      if (!next && pos >= child.getStart(sf) && pos < child.getEnd()) next = child;
    });
    if (!next) break;
    if (ts.isPropertyAssignment(next)) parts.push(next.name.text ?? next.name.getText(sf));
    if (ts.isArrayLiteralExpression(node)) parts.push(String(node.elements.indexOf(next)));
    node = next;
  }
  return "/" + parts.join("/");
}

// ---- api: rules of the API server's validation code --------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

function isDns1123Label(s) { return typeof s === "string" && s.length <= 63 && DNS1123_LABEL.test(s); }
function isDns1123Subdomain(s) {
  return typeof s === "string" && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

// IANA_SVC_NAME: what container and service port names must be.
export function isPortName(s) {
  return typeof s === "string" && s.length >= 1 && s.length <= 15 && /^[a-z0-9-]+$/.test(s) &&
    /[a-z]/.test(s) && !s.startsWith("-") && !s.endsWith("-") && !s.includes("--");
}

function isQualifiedKey(k) {
  const slash = k.lastIndexOf("/");
  const [prefix, name] = slash >= 0 ? [k.slice(0, slash), k.slice(slash + 1)] : [null, k];
  if (prefix !== null && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

function isLabelValue(v) {
  return typeof v === "string" && (v === "" || (v.length <= 63 && QUALIFIED_NAME.test(v)));
}

export function isIP(s) {
  if (typeof s !== "string") return false;
  const v4 = s.split(".");
  if (v4.length === 4 && v4.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return true;
  return /^[0-9a-fA-F:]+$/.test(s) && s.includes(":") && (s.match(/::/g) || []).length <= 1;
}

// Quantity to a number in base units ("100m" -> 0.1, "64Mi" -> 67108864); NaN when malformed.
export function quantity(q) {
  if (typeof q === "number") return q;
  const m = /^([+-]?[0-9.]+)([eE][+-]?\d+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(q));
  if (!m) return NaN;
  const mult = {
    undefined: 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  };
  if (m[2] && /^[eE]/.test(m[2])) return Number(m[1] + m[2]);
  return Number(m[1]) * mult[m[2]];
}

// The pod template (or pod spec holder) of a workload, or null.
export function podTemplate(doc) {
  if (!doc || typeof doc !== "object") return null;
  if (doc.kind === "Pod") return { metadata: doc.metadata ?? {}, spec: doc.spec ?? {} };
  if (["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"].includes(doc.kind)) {
    return doc.spec?.template ?? null;
  }
  if (doc.kind === "CronJob") return doc.spec?.jobTemplate?.spec?.template ?? null;
  return null;
}

export function allContainers(spec) {
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

export function selectorMatches(selector, labels) {
  labels = labels ?? {};
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

function checkMetadata(doc, errs) {
  const md = doc.metadata ?? {};
  const name = md.name;
  if (!name && !md.generateName) errs.push("/metadata/name: required");
  if (name && doc.kind === "Service") {
    if (!(name.length <= 63 && DNS1035_LABEL.test(name))) {
      errs.push(`/metadata/name: "${name}" must be a DNS-1035 label (a-z first, a-z, 0-9, '-', 63 at most)`);
    }
  } else if (name && doc.kind === "Namespace") {
    if (!isDns1123Label(name)) errs.push(`/metadata/name: "${name}" must be a DNS-1123 label`);
  } else if (name && /Role(Binding)?$/.test(doc.kind ?? "")) {
    if (/[/%]/.test(name) || name === "." || name === "..") {
      errs.push(`/metadata/name: "${name}" may not contain '/' or '%'`);
    }
  } else if (name && !isDns1123Subdomain(name)) {
    errs.push(`/metadata/name: "${name}" must be a DNS-1123 subdomain`);
  }
  if (md.namespace !== undefined && !isDns1123Label(md.namespace)) {
    errs.push(`/metadata/namespace: "${md.namespace}" must be a DNS-1123 label`);
  }
  for (const [where, map] of [["labels", md.labels], ["annotations", md.annotations]]) {
    for (const [k, v] of Object.entries(map ?? {})) {
      if (!isQualifiedKey(k)) errs.push(`/metadata/${where}: key "${k}" is not a qualified name`);
      if (where === "labels" && !isLabelValue(v)) {
        errs.push(`/metadata/labels/${k}: "${v}" is not a valid label value`);
      }
    }
  }
}

function checkPodSpec(spec, base, namespace, errs) {
  const containers = allContainers(spec);
  const names = new Set();
  const volumes = new Set();
  for (const [i, v] of (spec.volumes ?? []).entries()) {
    if (!isDns1123Label(v.name)) errs.push(`${base}/volumes/${i}/name: "${v.name}" is not a DNS-1123 label`);
    if (volumes.has(v.name)) errs.push(`${base}/volumes/${i}: duplicate volume name "${v.name}"`);
    volumes.add(v.name);
  }
  const lists = [["initContainers", spec.initContainers ?? []], ["containers", spec.containers ?? []]];
  for (const [list, items] of lists) {
    for (const [i, c] of items.entries()) {
      const at = `${base}/${list}/${i}`;
      if (!isDns1123Label(c.name)) errs.push(`${at}/name: "${c.name}" is not a DNS-1123 label`);
      if (names.has(c.name)) errs.push(`${at}/name: duplicate container name "${c.name}"`);
      names.add(c.name);
      if (c.restartPolicy !== undefined && (list !== "initContainers" || c.restartPolicy !== "Always")) {
        errs.push(`${at}/restartPolicy: only "Always", and only on init containers (sidecars)`);
      }
      const portNames = new Set();
      for (const [j, p] of (c.ports ?? []).entries()) {
        if (p.name !== undefined) {
          if (!isPortName(p.name)) {
            errs.push(`${at}/ports/${j}/name: "${p.name}" is not an IANA service name (a-z, 0-9, '-', 15 at most)`);
          }
          if (portNames.has(p.name)) errs.push(`${at}/ports/${j}/name: duplicate port name "${p.name}"`);
          portNames.add(p.name);
        }
        if (!(p.containerPort >= 1 && p.containerPort <= 65535)) {
          errs.push(`${at}/ports/${j}/containerPort: must be 1-65535`);
        }
        if (spec.hostNetwork && p.hostPort !== undefined && p.hostPort !== p.containerPort) {
          errs.push(`${at}/ports/${j}/hostPort: must equal containerPort with hostNetwork`);
        }
      }
      for (const [kind, probe] of [["livenessProbe", c.livenessProbe], ["readinessProbe", c.readinessProbe],
                                   ["startupProbe", c.startupProbe]]) {
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
        if (typeof port === "string" && !/^\d+$/.test(port) && !portNames.has(port)) {
          errs.push(`${at}/${kind}: port "${port}" is not a port name of this container`);
        }
      }
      for (const [j, m] of (c.volumeMounts ?? []).entries()) {
        if (!volumes.has(m.name)) errs.push(`${at}/volumeMounts/${j}: no volume named "${m.name}"`);
      }
      const envNames = new Set();
      for (const [j, e] of (c.env ?? []).entries()) {
        if (!ENV_NAME.test(e.name ?? "")) errs.push(`${at}/env/${j}/name: "${e.name}" is not a valid variable name`);
        if (e.value !== undefined && e.valueFrom !== undefined) {
          errs.push(`${at}/env/${j}: value and valueFrom are exclusive`);
        }
        envNames.add(e.name);
      }
      // $(VAR) in command/args is expanded by the kubelet from the container's environment and
      // silently left as written when the variable does not exist.
      const refs = [...(c.command ?? []), ...(c.args ?? [])].join("\n").matchAll(/(?<!\$)\$\(([^)]*)\)/g);
      for (const [, ref] of refs) {
        if (!envNames.has(ref)) {
          errs.push(`${at}: $(${ref}) in command/args names no env variable of the container; the kubelet would pass it on literally`);
        }
      }
      const req = c.resources?.requests ?? {};
      const lim = c.resources?.limits ?? {};
      for (const [res, q] of [...Object.entries(req), ...Object.entries(lim)]) {
        if (Number.isNaN(quantity(q))) errs.push(`${at}/resources: "${q}" (${res}) is not a quantity`);
      }
      for (const res of Object.keys(req)) {
        if (lim[res] !== undefined && quantity(req[res]) > quantity(lim[res])) {
          errs.push(`${at}/resources: ${res} request ${req[res]} exceeds its limit ${lim[res]}`);
        }
      }
    }
  }
  if (containers.length === 0 || (spec.containers ?? []).length === 0) {
    errs.push(`${base}/containers: at least one container`);
  }
  // DNS: pkg/apis/core/validation validatePodDNSConfig.
  const dns = spec.dnsConfig;
  if (spec.dnsPolicy === "None" && !(dns?.nameservers?.length > 0)) {
    errs.push(`${base}/dnsConfig/nameservers: required with dnsPolicy None`);
  }
  if (dns) {
    if ((dns.nameservers ?? []).length > 3) errs.push(`${base}/dnsConfig/nameservers: 3 at most`);
    for (const ns of dns.nameservers ?? []) {
      if (!isIP(ns)) errs.push(`${base}/dnsConfig/nameservers: "${ns}" is not an IP address`);
    }
    const searches = dns.searches ?? [];
    if (searches.length > 32) errs.push(`${base}/dnsConfig/searches: 32 at most`);
    if (searches.join(" ").length > 2048) errs.push(`${base}/dnsConfig/searches: 2048 characters at most`);
    for (const s of searches) {
      if (!isDns1123Subdomain(s.replace(/\.$/, ""))) errs.push(`${base}/dnsConfig/searches: "${s}" is not a DNS name`);
    }
    for (const o of dns.options ?? []) {
      if (o.name === "ndots" && !/^\d+$/.test(o.value ?? "")) {
        errs.push(`${base}/dnsConfig/options: ndots needs a number as a string, not ${JSON.stringify(o.value)}`);
      }
    }
  }
  if (spec.hostNetwork && spec.dnsPolicy === "ClusterFirst") {
    errs.push(`${base}/dnsPolicy: ClusterFirst with hostNetwork falls back to Default; say which`);
  }
}

// API-server rules of one object.
export function apiErrors(doc) {
  const errs = [];
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return ["not a mapping"];
  checkMetadata(doc, errs);
  const tmpl = podTemplate(doc);
  if (tmpl) {
    const base = doc.kind === "Pod" ? "/spec" : "/spec/template/spec";
    checkPodSpec(tmpl.spec ?? {}, base, doc.metadata?.namespace, errs);
    if (doc.kind !== "Pod" && doc.kind !== "CronJob") {
      const sel = doc.spec?.selector;
      if (!sel) errs.push("/spec/selector: required");
      else if (!selectorMatches(sel, tmpl.metadata?.labels)) {
        errs.push("/spec/selector: does not match the template's labels");
      }
    }
    if (doc.kind === "DaemonSet" || doc.kind === "Deployment") {
      const ru = doc.spec?.updateStrategy?.rollingUpdate ?? doc.spec?.strategy?.rollingUpdate;
      for (const k of ["maxUnavailable", "maxSurge"]) {
        const v = ru?.[k];
        if (typeof v === "string" && !/^\d+%$/.test(v)) errs.push(`rollingUpdate/${k}: "${v}" is neither a number nor a percentage`);
      }
    }
  }
  if (doc.kind === "Service") {
    const ports = doc.spec?.ports ?? [];
    const seen = new Set();
    for (const [i, p] of ports.entries()) {
      if (ports.length > 1 && !p.name) errs.push(`/spec/ports/${i}/name: required when there are several ports`);
      if (p.name !== undefined) {
        if (!isPortName(p.name)) errs.push(`/spec/ports/${i}/name: "${p.name}" is not an IANA service name`);
        if (seen.has(p.name)) errs.push(`/spec/ports/${i}/name: duplicate "${p.name}"`);
        seen.add(p.name);
      }
      if (typeof p.targetPort === "string" && !isPortName(p.targetPort)) {
        errs.push(`/spec/ports/${i}/targetPort: "${p.targetPort}" is not a port name`);
      }
    }
  }
  if (doc.kind === "ConfigMap") {
    const keys = [...Object.keys(doc.data ?? {}), ...Object.keys(doc.binaryData ?? {})];
    for (const k of keys) if (!CONFIGMAP_KEY.test(k)) errs.push(`/data: key "${k}" is not a valid ConfigMap key`);
    if (new Set(keys).size !== keys.length) errs.push("/data: a key is in both data and binaryData");
  }
  if (/RoleBinding$/.test(doc.kind ?? "")) {
    for (const [i, s] of (doc.subjects ?? []).entries()) {
      if (s.kind === "ServiceAccount" && !s.namespace && doc.kind === "ClusterRoleBinding") {
        errs.push(`/subjects/${i}/namespace: required for a ServiceAccount`);
      }
    }
    if (!["Role", "ClusterRole"].includes(doc.roleRef?.kind)) errs.push("/roleRef/kind: Role or ClusterRole");
  }
  return errs;
}

