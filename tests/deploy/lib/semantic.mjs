// Checks across the objects of one deployable set (a kustomize build, or one example file).
//
// References resolve, Services reach their pods, readyns gets flags and a config it accepts,
// its probes point at its health address, its permissions cover its Kubernetes mode, and the
// node-local DaemonSet keeps the properties it is built around.
import YAML from "yaml";
import {
  allContainers, isIP, podTemplate, selectorMatches,
} from "./k8s.mjs";
import { checkConfig, flagValues, parseAddrPort, parseArgs } from "./readyns.mjs";
import { renderWithScript } from "./setup.mjs";

const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass",
  "CustomResourceDefinition", "PersistentVolume", "Node",
]);
// Selectors of pods outside this repository that a Service may select: the cluster DNS.
const EXTERNAL_SELECTORS = [{ "k8s-app": "kube-dns" }];
// A stand-in for the kube-dns-upstream ClusterIP when rendering the node-local config.
const SAMPLE_UPSTREAM_IP = "10.96.0.53";

const group = (apiVersion) => (apiVersion?.includes("/") ? apiVersion.split("/")[0] : "");
const nsOf = (doc) => doc.metadata?.namespace;
const sameJSON = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export function isReadynsImage(image) {
  return typeof image === "string" && /(^|\/)readyns(:|@|$)/.test(image);
}

// A readyns process: the readyns image with its own entrypoint (not a command override).
const runsReadyns = (c) => isReadynsImage(c.image) && !c.command;
const runsSetupScript = (c) => isReadynsImage(c.image) && (c.command ?? []).some((a) => /setup\.sh$/.test(a));

function imageTag(image) {
  const m = /:([^/@]+)(@|$)/.exec(image);
  return m ? m[1] : null;
}

export function setErrors(docs, ctx) {
  const errs = [];
  const find = (kind, ns, name) => docs.find((d) => d.kind === kind && d.metadata?.name === name &&
    (CLUSTER_SCOPED.has(kind) || nsOf(d) === ns));

  // Identity and namespaces.
  const seen = new Set();
  for (const d of docs) {
    const id = `${group(d.apiVersion)}/${d.kind}/${nsOf(d) ?? ""}/${d.metadata?.name}`;
    if (seen.has(id)) errs.push(`${d.kind}/${d.metadata?.name}: defined twice`);
    seen.add(id);
    if (!CLUSTER_SCOPED.has(d.kind) && !nsOf(d)) errs.push(`${d.kind}/${d.metadata?.name}: no metadata.namespace (it would land in whatever namespace kubectl points at)`);
    if (CLUSTER_SCOPED.has(d.kind) && nsOf(d)) errs.push(`${d.kind}/${d.metadata?.name}: cluster-scoped, but has a namespace`);
  }

  const workloads = docs.filter((d) => podTemplate(d));
  for (const w of workloads) errs.push(...workloadErrors(w, docs, find, ctx));

  // Services: pods in this set, or the cluster DNS.
  for (const svc of docs.filter((d) => d.kind === "Service")) {
    const where = `Service/${svc.metadata?.name}`;
    const sel = svc.spec?.selector;
    if (!sel) continue;
    const pods = workloads.filter((w) => nsOf(w) === nsOf(svc) &&
      selectorMatches({ matchLabels: sel }, podTemplate(w).metadata?.labels));
    if (pods.length === 0) {
      if (!EXTERNAL_SELECTORS.some((e) => sameJSON(e, sel))) errs.push(`${where}: its selector matches no pod template of this set`);
      continue;
    }
    for (const [i, p] of (svc.spec?.ports ?? []).entries()) {
      const target = p.targetPort ?? p.port;
      const proto = p.protocol ?? "TCP";
      const ok = pods.some((w) => allContainers(podTemplate(w).spec).some((c) => (c.ports ?? []).some((cp) =>
        (typeof target === "string" ? cp.name === target : cp.containerPort === target) && (cp.protocol ?? "TCP") === proto)));
      if (!ok) errs.push(`${where}: ports[${i}] targets ${target}/${proto}, which no selected container declares`);
    }
    const ann = svc.metadata?.annotations ?? {};
    if (ann["prometheus.io/scrape"] !== undefined) {
      if (!["true", "false"].includes(ann["prometheus.io/scrape"])) errs.push(`${where}: prometheus.io/scrape must be "true" or "false"`);
      const port = Number(ann["prometheus.io/port"]);
      if (!(svc.spec?.ports ?? []).some((p) => p.port === port)) errs.push(`${where}: prometheus.io/port ${ann["prometheus.io/port"]} is none of its ports`);
    }
  }

  // RBAC references.
  for (const b of docs.filter((d) => /RoleBinding$/.test(d.kind ?? ""))) {
    const where = `${b.kind}/${b.metadata?.name}`;
    const ref = b.roleRef ?? {};
    const builtin = /^system:/.test(ref.name) || ["cluster-admin", "admin", "edit", "view"].includes(ref.name);
    if (!builtin && !find(ref.kind, nsOf(b), ref.name)) errs.push(`${where}: roleRef ${ref.kind}/${ref.name} is not in this set`);
    for (const s of b.subjects ?? []) {
      if (s.kind === "ServiceAccount" && !find("ServiceAccount", s.namespace ?? nsOf(b), s.name)) {
        errs.push(`${where}: subject ServiceAccount ${s.namespace}/${s.name} is not in this set`);
      }
    }
  }
  return errs;
}

// The env of a container as the kubelet would see it, with ConfigMap references resolved.
function containerEnv(c, ns, find, errs, where) {
  const env = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.configMapKeyRef;
    if (ref) {
      const cm = find("ConfigMap", ns, ref.name);
      if (!cm) {
        if (!ref.optional) errs.push(`${where}: env ${e.name} refers to ConfigMap ${ref.name}, which is not in this set`);
      } else if (!Object.hasOwn(cm.data ?? {}, ref.key)) {
        if (!ref.optional) errs.push(`${where}: env ${e.name} refers to key ${ref.key}, which ConfigMap ${ref.name} lacks`);
      } else env[e.name] = cm.data[ref.key];
    }
    if (e.valueFrom?.fieldRef) env[e.name] = e.valueFrom.fieldRef.fieldPath === "status.podIP" ? "10.0.0.1" : "x";
  }
  return env;
}

function expand(s, env) {
  return String(s).replace(/(?<!\$)\$\(([^)]*)\)/g, (m, v) => (Object.hasOwn(env, v) ? env[v] : m));
}

function podRoleGrants(docs, ns, saName, { group: g, resource, verbs }) {
  const bindings = docs.filter((d) => /RoleBinding$/.test(d.kind ?? "") &&
    (d.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === saName && (s.namespace ?? nsOf(d)) === ns));
  const granted = new Set();
  for (const b of bindings) {
    const role = docs.find((d) => d.kind === b.roleRef?.kind && d.metadata?.name === b.roleRef?.name &&
      (d.kind === "ClusterRole" || nsOf(d) === nsOf(b)));
    for (const r of role?.rules ?? []) {
      const groupOk = (r.apiGroups ?? []).some((x) => x === g || x === "*");
      const resOk = (r.resources ?? []).some((x) => x === resource || x === "*");
      if (groupOk && resOk) for (const v of r.verbs ?? []) granted.add(v);
    }
  }
  return verbs.filter((v) => !granted.has(v) && !granted.has("*"));
}

function workloadErrors(w, docs, find, ctx) {
  const errs = [];
  const ns = nsOf(w);
  const tmpl = podTemplate(w);
  const spec = tmpl.spec ?? {};
  const wName = `${w.kind}/${w.metadata?.name}`;
  const sa = spec.serviceAccountName ?? "default";
  if (sa !== "default" && !find("ServiceAccount", ns, sa)) errs.push(`${wName}: serviceAccountName ${sa} is not in this set`);

  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const v of spec.volumes ?? []) {
    const cmName = v.configMap?.name;
    if (cmName && !v.configMap.optional) {
      const cm = find("ConfigMap", ns, cmName);
      if (!cm) errs.push(`${wName}: volume ${v.name} refers to ConfigMap ${cmName}, which is not in this set`);
      for (const it of v.configMap.items ?? []) {
        if (cm && !Object.hasOwn(cm.data ?? {}, it.key)) errs.push(`${wName}: volume ${v.name} wants key ${it.key} of ${cmName}`);
      }
    }
  }

  // The DNS search path of a dnsPolicy None pod starts with its own namespace.
  const dns = spec.dnsConfig;
  if (spec.dnsPolicy === "None" && dns?.searches?.length) {
    const first = dns.searches[0];
    if (!first.startsWith(`${ns}.svc.`)) errs.push(`${wName}: dnsConfig.searches starts with ${first}, not the pod's namespace (${ns}.svc.<cluster domain>)`);
  }

  const setupContainers = allContainers(spec).filter(runsSetupScript);
  for (const c of allContainers(spec)) {
    const where = `${wName} container ${c.name}`;
    const env = containerEnv(c, ns, find, errs, where);
    if (!isReadynsImage(c.image)) continue;
    if (ctx.version && imageTag(c.image) !== ctx.version) {
      errs.push(`${where}: image ${c.image} is not tagged with the project version ${ctx.version} (meson.build)`);
    }
    const sc = c.securityContext ?? {};
    const caps = sc.capabilities ?? {};
    const dropsAll = (caps.drop ?? []).includes("ALL") || (caps.drop ?? []).includes("NET_BIND_SERVICE");
    if (runsReadyns(c) && dropsAll && !(caps.add ?? []).includes("NET_BIND_SERVICE")) {
      errs.push(`${where}: drops NET_BIND_SERVICE but does not add it back: exec of the image's readyns (file capability cap_net_bind_service) would fail`);
    }
    if (runsSetupScript(c)) {
      const networkByScript = env.READYNS_SETUP_NETWORK !== "false";
      if (networkByScript) {
        for (const cap of ["NET_ADMIN", "NET_RAW"]) if (!(caps.add ?? []).includes(cap)) errs.push(`${where}: sets up the interface and iptables, but lacks ${cap}`);
        if (sc.runAsUser !== 0) errs.push(`${where}: sets up the interface and iptables, so it must run as root (runAsUser: 0)`);
        if (!(c.volumeMounts ?? []).some((m) => m.mountPath === "/run/xtables.lock")) errs.push(`${where}: no /run/xtables.lock mount (legacy iptables would race kube-proxy)`);
      } else if ((caps.add ?? []).some((x) => x !== "NET_BIND_SERVICE")) {
        errs.push(`${where}: READYNS_SETUP_NETWORK=false, yet adds ${caps.add.join(", ")}`);
      }
    }
    if (!runsReadyns(c)) continue;

    // readyns itself: flags, config, probes, permissions.
    // The flags and the config file together, as the binary itself judges them.
    const parsed = parseArgs((c.args ?? []).map((a) => expand(a, env)), ctx.readyns);
    let cfg = {};
    let cfgText = null;
    const cfgPath = flagValues(parsed, "--config")[0];
    if (cfgPath) {
      const r = resolveConfig(cfgPath, c, spec, volumes, setupContainers, ns, find, docs, where, errs);
      if (!r) continue; // what follows depends on the config; its error is reported
      ({ cfg, text: cfgText } = r);
    }
    errs.push(...checkConfig(ctx.readyns, cfgText, { parsed, what: cfgPath ?? "(no config file)" })
      .map((e) => `${where}: ${e}`));
    const setupIf = flagValues(parsed, "--setup-interface");
    if (setupIf.length) {
      for (const cap of ["NET_ADMIN", "NET_RAW"]) if (!(caps.add ?? []).includes(cap)) errs.push(`${where}: --setup-interface needs ${cap}`);
      if (sc.runAsUser !== 0) errs.push(`${where}: --setup-interface needs root (the image's file capability is NET_BIND_SERVICE only)`);
      if (!flagValues(parsed, "--setup-address").length) errs.push(`${where}: --setup-interface without --setup-address`);
    } else if ((caps.add ?? []).some((x) => x === "NET_ADMIN")) {
      errs.push(`${where}: adds NET_ADMIN without --setup-interface`);
    }
    const health = flagValues(parsed, "--health")[0] ?? cfg.health ?? "127.0.0.1:8080";
    const metrics = flagValues(parsed, "--metrics")[0] ?? cfg.metrics ?? "127.0.0.1:9253";
    const h = parseAddrPort(health);
    const portNum = (port) => (typeof port === "number" ? port : /^\d+$/.test(port) ? Number(port)
      : (c.ports ?? []).find((p) => p.name === port)?.containerPort);
    for (const [kind, path, required] of [["livenessProbe", "/health", true], ["readinessProbe", "/ready", true], ["startupProbe", null, false]]) {
      const probe = c[kind];
      if (!probe) {
        if (required) errs.push(`${where}: no ${kind}`);
        continue;
      }
      const g = probe.httpGet;
      if (!g) { errs.push(`${where}: ${kind} is not an httpGet on the health address`); continue; }
      if (path && g.path !== path) errs.push(`${where}: ${kind} asks ${g.path}, not ${path}`);
      if (!path && !["/health", "/ready"].includes(g.path)) errs.push(`${where}: ${kind} asks ${g.path}`);
      if (h && portNum(g.port) !== h.port) errs.push(`${where}: ${kind} port ${g.port} is not the health port ${h.port} (${health})`);
      const wildcard = h && ["0.0.0.0", "::"].includes(h.host);
      const podAddress = h && (c.args ?? []).some((a) => /^--health=.*\$\(/.test(a));
      if (h && !wildcard && !podAddress && g.host !== h.host) {
        errs.push(`${where}: ${kind} goes to ${g.host ?? "the pod IP"}, but readyns serves health on ${h.host}`);
      }
      if (podAddress && g.host) errs.push(`${where}: ${kind} sets host, but health is on the pod's address`);
    }
    const m = parseAddrPort(metrics);
    if (m && !(c.ports ?? []).some((p) => p.containerPort === m.port)) errs.push(`${where}: metrics port ${m.port} is not declared in ports`);
    const kubeMode = flagValues(parsed, "--kube")[0] ?? cfg.kube?.mode ?? "auto";
    if (kubeMode !== "off") {
      const missing = podRoleGrants(docs, ns, spec.serviceAccountName ?? "default",
        { group: "discovery.k8s.io", resource: "endpointslices", verbs: ["list", "watch"] });
      if (missing.length) errs.push(`${where}: Kubernetes mode ${kubeMode}, but ServiceAccount ${spec.serviceAccountName ?? "default"} may not ${missing.join("/")} endpointslices`);
    }
    if (w.kind === "DaemonSet" && spec.hostNetwork) errs.push(...nodeLocalErrors(w, c, cfg, parsed, docs, find, where));
  }
  return errs;
}

// The config a readyns container reads: from a ConfigMap volume, or from an emptyDir that the
// setup init container writes by rendering the ConfigMap's template with setup.sh.
function resolveConfig(cfgPath, c, spec, volumes, setupContainers, ns, find, docs, where, errs) {
  const mount = (c.volumeMounts ?? []).filter((m) => cfgPath.startsWith(m.mountPath.replace(/\/?$/, "/")))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) { errs.push(`${where}: --config ${cfgPath} is on no volume mount`); return null; }
  const vol = volumes.get(mount.name);
  const file = cfgPath.slice(mount.mountPath.replace(/\/?$/, "/").length);
  const parse = (text, what) => {
    try {
      return { cfg: YAML.parse(text, { uniqueKeys: true }) ?? {}, text };
    } catch (e) {
      errs.push(`${where}: ${what} is not YAML: ${e.message.split("\n")[0]}`);
      return null;
    }
  };
  if (vol?.configMap) {
    const cm = find("ConfigMap", ns, vol.configMap.name);
    const key = (vol.configMap.items ?? []).find((i) => i.path === file)?.key ?? file;
    if (!cm || !Object.hasOwn(cm.data ?? {}, key)) { errs.push(`${where}: ${cfgPath}: ConfigMap ${vol.configMap.name} has no key ${key}`); return null; }
    return parse(cm.data[key], `${cfgPath}`);
  }
  if (vol?.emptyDir) {
    const writer = setupContainers.find((s) => (s.volumeMounts ?? []).some((m) => m.name === mount.name && !m.readOnly));
    if (!writer) { errs.push(`${where}: ${cfgPath} is on an emptyDir no setup init container writes`); return null; }
    if (!(spec.initContainers ?? []).includes(writer)) errs.push(`${where}: ${writer.name} writes the config, but is not an init container`);
    // The script and the template: the ConfigMap volume mounted where the command's script is.
    const script = writer.command.find((a) => /setup\.sh$/.test(a));
    const tmount = (writer.volumeMounts ?? []).find((m) => script.startsWith(m.mountPath.replace(/\/?$/, "/")));
    const tvol = tmount && volumes.get(tmount.name);
    const cm = tvol?.configMap && find("ConfigMap", ns, tvol.configMap.name);
    if (!cm || !cm.data?.["setup.sh"] || !cm.data?.["readyns.yaml"]) {
      errs.push(`${where}: the setup container's ConfigMap (setup.sh and readyns.yaml) is not in this set`);
      return null;
    }
    const wenv = containerEnv(writer, ns, find, [], where);
    const upstreamSvc = find("Service", ns, "kube-dns-upstream");
    if (!upstreamSvc) errs.push(`${where}: no kube-dns-upstream Service in namespace ${ns}, so the kubelet sets no KUBE_DNS_UPSTREAM_SERVICE_HOST`);
    if (spec.enableServiceLinks === false) errs.push(`${where}: enableServiceLinks is false, so the kubelet sets no KUBE_DNS_UPSTREAM_SERVICE_HOST`);
    const r = renderWithScript(cm.data["setup.sh"], cm.data["readyns.yaml"], {
      ...wenv, KUBE_DNS_UPSTREAM_SERVICE_HOST: SAMPLE_UPSTREAM_IP, READYNS_SETUP_NETWORK: "false",
    });
    if (r.status !== 0 || r.output === null) {
      errs.push(`${where}: setup.sh failed to render the config: ${r.stderr.trim()}`);
      return null;
    }
    return parse(r.output, "the rendered config");
  }
  errs.push(`${where}: ${cfgPath} is on volume ${mount.name}, neither a ConfigMap nor an emptyDir`);
  return null;
}

// The node-local DaemonSet: what makes it NodeLocal DNSCache's design.
function nodeLocalErrors(ds, c, cfg, parsed, docs, find, where) {
  const errs = [];
  const spec = ds.spec.template.spec;
  const ns = nsOf(ds);
  const need = (cond, msg) => { if (!cond) errs.push(`${where}: ${msg}`); };
  need(spec.dnsPolicy === "Default", `dnsPolicy ${spec.dnsPolicy}: must be Default (the node's resolv.conf; the cluster DNS is readyns itself)`);
  need(spec.priorityClassName === "system-node-critical", "priorityClassName must be system-node-critical");
  need(ds.spec.updateStrategy?.type === "RollingUpdate" && ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable === "10%",
    "updateStrategy must be RollingUpdate with maxUnavailable 10%");
  need((spec.tolerations ?? []).some((t) => t.operator === "Exists" && !t.key && !t.effect), "must tolerate every taint (operator: Exists, no key, no effect)");
  for (const x of allContainers(spec)) {
    const r = x.resources ?? {};
    need(r.requests?.cpu && r.requests?.memory && r.limits?.memory, `container ${x.name}: needs cpu and memory requests and a memory limit`);
  }
  const envCm = docs.find((d) => d.kind === "ConfigMap" && nsOf(d) === ns && d.data?.LOCAL_DNS_IP !== undefined);
  if (!envCm) return [...errs, `${where}: no ConfigMap with LOCAL_DNS_IP in namespace ${ns}`];
  const local = envCm.data.LOCAL_DNS_IP;
  const kubeDns = envCm.data.KUBE_DNS_IP ?? "";
  need(isIP(local) && local.startsWith("169.254."), `LOCAL_DNS_IP ${local} must be a link-local IPv4 address (169.254.0.0/16)`);
  need(kubeDns === "" || isIP(kubeDns), `KUBE_DNS_IP "${kubeDns}" is not an address`);
  need(/^[a-zA-Z0-9_.-]{1,15}$/.test(envCm.data.READYNS_INTERFACE ?? ""), "READYNS_INTERFACE must be an interface name of 15 characters at most");
  const listen = flagValues(parsed, "--listen").length ? flagValues(parsed, "--listen") : cfg.listen ?? [];
  const hosts = listen.map((l) => parseAddrPort(l)?.host);
  need(hosts.includes(local), `does not listen on LOCAL_DNS_IP ${local} (listens on ${listen.join(", ")})`);
  if (kubeDns) need(hosts.includes(kubeDns), `does not listen on KUBE_DNS_IP ${kubeDns}`);
  need(listen.every((l) => parseAddrPort(l)?.port === 53), "listens on a port other than 53");
  const fwd = new Map((cfg.forward ?? []).map((f) => [f.zone, f.upstreams]));
  for (const zone of [cfg.kube?.cluster_domain ?? "cluster.local", "in-addr.arpa", "ip6.arpa"]) {
    need(sameJSON(fwd.get(zone), [`${SAMPLE_UPSTREAM_IP}:53`]), `zone ${zone} must be forwarded to kube-dns-upstream (got ${JSON.stringify(fwd.get(zone))})`);
  }
  const isResolvConf = (u) => /^resolv\.conf(:.+)?$/.test(String(u));  // "resolv.conf" or "resolv.conf:PATH"
  const defaultZone = Array.isArray(cfg.upstreams) ? cfg.upstreams : [cfg.upstreams];  // a lone item may stand alone
  need(defaultZone.length === 1 && isResolvConf(defaultZone[0]), "the default zone must go to resolv.conf");
  for (const u of [...(Array.isArray(cfg.upstreams) ? cfg.upstreams : []), ...[...fwd.values()].flat()]) {
    const host = parseAddrPort(u)?.host;
    need(!host || (host !== local && host !== kubeDns), `upstream ${u} is an address readyns answers on: a loop`);
  }
  const up = find("Service", ns, "kube-dns-upstream");
  if (up) {
    need(sameJSON(up.spec?.selector, { "k8s-app": "kube-dns" }), "kube-dns-upstream must select k8s-app: kube-dns");
    const protos = (up.spec?.ports ?? []).filter((p) => p.port === 53).map((p) => p.protocol ?? "TCP").sort();
    need(sameJSON(protos, ["TCP", "UDP"]), "kube-dns-upstream must serve port 53 over UDP and TCP");
  }
  const metricsSvc = docs.find((d) => d.kind === "Service" && nsOf(d) === ns && d.spec?.clusterIP === "None" &&
    selectorMatches({ matchLabels: d.spec?.selector ?? {} }, ds.spec.template.metadata?.labels) &&
    (d.spec?.ports ?? []).some((p) => p.port === 9253));
  need(metricsSvc && metricsSvc.metadata?.annotations?.["prometheus.io/scrape"] === "true", "no headless metrics Service on port 9253 with prometheus.io/scrape \"true\"");
  return errs;
}
