// Deliberate breakages of the real manifests and Dockerfile, each failing the checks for its reason.
//
// They track the files as they change, where a fixture would go stale.
import YAML from "yaml";

const ds = (docs) => docs.find((d) => d.kind === "DaemonSet");
const pod = (docs) => ds(docs).spec.template.spec;
const ctr = (docs, name) => [...(pod(docs).initContainers ?? []), ...pod(docs).containers].find((c) => c.name === name);
const cm = (docs, key) => docs.find((d) => d.kind === "ConfigMap" && d.data?.[key] !== undefined);
const editConfig = (docs, f) => {
  const c = cm(docs, "readyns.yaml");
  const doc = YAML.parseDocument(c.data["readyns.yaml"]);
  const js = doc.toJS();
  f(js);
  c.data["readyns.yaml"] = YAML.stringify(js);
};

// Of the node-local set (a build of deploy/kubernetes/base). objects: validate each object too.
export const SET_MUTATIONS = [
  { name: "node-local DaemonSet with dnsPolicy ClusterFirstWithHostNet", expect: /must be Default/,
    apply: (d) => { pod(d).dnsPolicy = "ClusterFirstWithHostNet"; } },
  { name: "maxUnavailable 1 instead of 10%", expect: /maxUnavailable 10%/,
    apply: (d) => { ds(d).spec.updateStrategy.rollingUpdate.maxUnavailable = 1; } },
  { name: "no priorityClassName", expect: /system-node-critical/,
    apply: (d) => { delete pod(d).priorityClassName; } },
  { name: "tolerations for NoSchedule only", expect: /tolerate every taint/,
    apply: (d) => { pod(d).tolerations = [{ operator: "Exists", effect: "NoSchedule" }]; } },
  { name: "no memory limit", expect: /memory limit/,
    apply: (d) => { delete ctr(d, "readyns").resources.limits; } },
  { name: "ClusterRole without watch", expect: /may not watch endpointslices/,
    apply: (d) => { d.find((x) => x.kind === "ClusterRole").rules[0].verbs = ["list"]; } },
  { name: "ClusterRole on the wrong API group", expect: /may not list\/watch endpointslices/,
    apply: (d) => { d.find((x) => x.kind === "ClusterRole").rules[0].apiGroups = [""]; } },
  { name: "liveness probe on another host", expect: /livenessProbe goes to 127\.0\.0\.1/,
    apply: (d) => { ctr(d, "readyns").livenessProbe.httpGet.host = "127.0.0.1"; } },
  { name: "readiness probe on /health", expect: /readinessProbe asks \/health, not \/ready/,
    apply: (d) => { ctr(d, "readyns").readinessProbe.httpGet.path = "/health"; } },
  { name: "readyns without NET_BIND_SERVICE", expect: /drops NET_BIND_SERVICE/,
    apply: (d) => { ctr(d, "readyns").securityContext.capabilities.add = []; } },
  { name: "setup container without NET_RAW", expect: /lacks NET_RAW/,
    apply: (d) => { ctr(d, "setup").securityContext.capabilities.add = ["NET_ADMIN"]; } },
  { name: "image tagged latest", expect: /project version/,
    apply: (d) => { ctr(d, "readyns").image = "registry.example.com/readyns:latest"; } },
  { name: "config path on no volume", expect: /on no volume mount/,
    apply: (d) => { ctr(d, "readyns").args = ["--config=/etc/readyns/readyns.yaml"]; } },
  { name: "misspelt flag", expect: /unknown flag '--log-levle=debug'/,
    apply: (d) => { ctr(d, "readyns").args.push("--log-levle=debug"); } },
  { name: "no kube-dns-upstream Service", expect: /no kube-dns-upstream Service/,
    apply: (d) => { d.splice(d.findIndex((x) => x.kind === "Service" && x.metadata.name === "kube-dns-upstream"), 1); } },
  { name: "metrics Service selecting nothing", expect: /matches no pod template/,
    apply: (d) => { d.find((x) => x.metadata.name === "readyns-node-local-metrics").spec.selector = { app: "readyns" }; } },
  { name: "KUBE_DNS_IP not an address", expect: /KUBE_DNS_IP is not an address/,
    apply: (d) => { cm(d, "KUBE_DNS_IP").data.KUBE_DNS_IP = "10.96.0.300x"; } },
  { name: "env from a missing ConfigMap key", expect: /lacks/,
    apply: (d) => { delete cm(d, "KUBE_DNS_IP").data.READYNS_INTERFACE; } },
  { name: "config: cluster.local not forwarded", expect: /zone cluster\.local must be forwarded/,
    apply: (d) => editConfig(d, (c) => { c.forward = c.forward.filter((f) => f.zone !== "cluster.local"); }) },
  { name: "config: default zone to the kube-dns IP (a loop)", expect: /loop|resolv\.conf/,
    apply: (d) => editConfig(d, (c) => { c.upstreams = ["__KUBE_DNS_IP__:53"]; }) },
  { name: "config: unknown key", expect: /cache\.sizee: unknown key/,
    apply: (d) => editConfig(d, (c) => { c.cache.sizee = c.cache.size; }) },
  { name: "setup.sh that does not write the config", expect: /setup\.sh failed|not YAML|no config/,
    apply: (d) => { const c = cm(d, "setup.sh"); c.data["setup.sh"] = c.data["setup.sh"].replace(/^render_config$/m, "true"); } },
  { name: "unknown field in the pod spec", objects: true, expect: /^strict \/spec\/template\/spec\/hostNetwrok/,
    apply: (d) => { pod(d).hostNetwrok = true; } },
  { name: "port number as a string", objects: true, expect: /^schema .*containerPort: must be integer/,
    apply: (d) => { ctr(d, "readyns").ports[0].containerPort = "53"; } },
];

// Of deploy/Dockerfile's text.
export const DOCKERFILE_MUTATIONS = [
  { name: "no USER", expect: /no USER/, apply: (t) => t.replace(/^USER .*$/m, "") },
  { name: "USER root", expect: /is root/, apply: (t) => t.replace(/^USER .*$/m, "USER root") },
  { name: "one stage", expect: /multi-stage/, apply: (t) => t.slice(0, t.lastIndexOf("\nFROM ")) },
  { name: "another base image", expect: /must start from debian:bookworm-slim/, apply: (t) => t.replace(/^FROM debian:bookworm-slim$/m, "FROM debian:bookworm") },
  { name: "a build dependency dropped", expect: /lacks libldns-dev/, apply: (t) => t.replace(/ libldns-dev/, "") },
  { name: "a runtime library dropped", expect: /lacks libuv1/, apply: (t) => t.replace(/ libuv1 /, " ") },
  { name: "g++ in the final stage", expect: /build-only package g\+\+/, apply: (t) => t.replace(/ca-certificates iproute2/, "ca-certificates g++ iproute2") },
  { name: "NET_ADMIN as a file capability", expect: /setcap grants cap_net_admin/, apply: (t) => t.replace("setcap cap_net_bind_service=+ep", "setcap cap_net_bind_service,cap_net_admin=+ep") },
  { name: "no meson install", expect: /meson install/, apply: (t) => t.replace(/meson install[^\n]*/, "true") },
];

// Valid changes of the real node-local set that must still pass: settings readyns takes (which a
// hand-written copy of its schema once refused), so the config check stays the binary's own.
export const SET_VARIANTS = [
  { name: "config: every settings group readyns has",
    apply: (d) => editConfig(d, (c) => {
      c.upstream = { timeout_ms: 800, resolve_timeout_ms: 3000, randomize_case: true, stale_answer_timeout_ms: 500 };
      c.cache.stale_max = 3600;
      c.tcp = { idle_timeout_ms: 10000, max_connections: 1000, max_pipelined: 64 };
      c.rrl = { rate: 100, slip: 2 };
      c.query_log = { enabled: true, sample: 10 };
      c.watch_config = true;
      c.kube = { ...c.kube, api: "https://10.96.0.1:443", token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token",
        ca_file: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", namespaces: ["default", "kube-system"] };
    }) },
  { name: "config: the default zone to a resolv.conf at another path",
    apply: (d) => editConfig(d, (c) => { c.upstreams = ["resolv.conf:/etc/resolv.conf"]; }) },
  { name: "switches among the flags, with and without a value",
    apply: (d) => { ctr(d, "readyns").args.push("--query-log", "--watch-config", "--randomize-case=false", "--log-level=debug"); } },
];
