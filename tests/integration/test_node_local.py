# The node-local layout for real, in a network namespace of the test's own.
#
# deploy's setup.sh puts 169.254.20.10 and the kube-dns ClusterIP on the nodelocaldns interface and
# installs the NOTRACK/ACCEPT rules, readyns serves both addresses from the config setup.sh
# rendered, and a client in the namespace asks both over UDP and TCP. Needs root; nothing leaves the
# namespace (its only interfaces are lo and nodelocaldns, and it has no route out).
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import uuid
import warnings

import pytest

import harness

SETUP_SH = harness.REPO / "deploy" / "kubernetes" / "base" / "setup.sh"
TEMPLATE = harness.REPO / "deploy" / "kubernetes" / "base" / "readyns.yaml"
UPSTREAM_SCRIPT = harness.REPO / "tests" / "integration" / "fault_upstream.py"

LOCAL_DNS_IP = "169.254.20.10"
KUBE_DNS_IP = "10.96.0.10"
ADDRESSES = (LOCAL_DNS_IP, KUBE_DNS_IP)
INTERFACE = "nodelocaldns"
# The stand-in for the kube-dns-upstream Service: the fault upstream on the namespace's loopback,
# port 53 because the rendered config forwards cluster.local to __KUBE_DNS_UPSTREAM__:53.
UPSTREAM_IP = "127.0.0.1"
COMMENT = "readyns node-local: skip conntrack"

# A name of the forwarded cluster zone and one of the default upstream, with their answers.
SVC = "svc3.ns1.svc.cluster.local"
WWW = "www.example.org"
EXPECTED = {SVC: [harness.svc_ip(1, 3)], WWW: ["192.0.2.10"]}

# Run inside the namespace: argv[1] is a JSON list of [address, transport, name]; prints one
# JSON result per query (rcode, flags, A addresses, or the error).
CLIENT = r"""
import json, sys
import dns.flags, dns.message, dns.query, dns.rcode, dns.rdatatype
out = []
for addr, transport, name in json.loads(sys.argv[1]):
    q = dns.message.make_query(name, "A")
    try:
        r = (dns.query.udp if transport == "udp" else dns.query.tcp)(q, addr, port=53, timeout=2)
        out.append({"rcode": dns.rcode.to_text(r.rcode()), "flags": dns.flags.to_text(r.flags),
                    "a": sorted(rd.address for rr in r.answer if rr.rdtype == dns.rdatatype.A
                                for rd in rr)})
    except Exception as e:
        out.append({"error": f"{type(e).__name__}: {e}"})
print(json.dumps(out))
"""


def expected_raw_rules():
    return {f"-A {chain} {way} {addr}/32 -p {proto} -m {proto} --{port} 53 -j NOTRACK"
            for addr in ADDRESSES for proto in ("udp", "tcp")
            for chain, way, port in (("PREROUTING", "-d", "dport"), ("OUTPUT", "-d", "dport"),
                                     ("OUTPUT", "-s", "sport"))}


def expected_filter_rules():
    return {f'-A {chain} {way} {addr}/32 -p {proto} -m {proto} --{port} 53 -m comment --comment "{COMMENT}" -j ACCEPT'
            for addr in ADDRESSES for proto in ("udp", "tcp")
            for chain, way, port in (("INPUT", "-d", "dport"), ("OUTPUT", "-s", "sport"))}


def bound(pid, proto, addr, port):
    """Whether process `pid` (whatever its namespace) sees a UDP socket bound, or a TCP socket
    listening, at addr:port: /proc/PID/net shows the tables of the process's own namespace."""
    want = f"{struct.unpack('<I', socket.inet_aton(addr))[0]:08X}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/{proto}") as f:
            next(f)
            return any(fields[1] == want and (proto == "udp" or fields[3] == "0A")
                       for fields in (line.split() for line in f))
    except (FileNotFoundError, ProcessLookupError):
        return False


class Netns:
    def __init__(self, name, tmp):
        self.name, self.tmp = name, tmp
        self.procs = []

    def run(self, *argv, env=None, check=True, timeout=10):
        """Runs argv in the namespace; returns the CompletedProcess (text)."""
        r = subprocess.run(["ip", "netns", "exec", self.name, "env", *(env or []), *map(str, argv)],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} in {self.name} exited {r.returncode}:\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def start(self, argv, log_name):
        # `ip netns exec` execs the command itself, so the pid is the command's.
        proc = harness.Process(["ip", "netns", "exec", self.name, *map(str, argv)], self.tmp / log_name)
        self.procs.append(proc)
        return proc


@pytest.fixture
def netns(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace, an interface and iptables rules")
    name = f"readyns-it-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        add = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("`ip` (iproute2) not installed: cannot create a network namespace")
    if add.returncode != 0:
        pytest.skip(f"`ip netns add` failed: {add.stderr.strip()}")
    ns = Netns(name, tmp_path)
    try:
        yield ns
    finally:
        for proc in ns.procs:
            proc.kill()
        # Anything else still in the namespace was started by this test inside it.
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        # Deleting the namespace takes its interface and rules with it.
        assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def run_setup(ns, config_out):
    env = [f"LOCAL_DNS_IP={LOCAL_DNS_IP}", f"KUBE_DNS_IP={KUBE_DNS_IP}",
           f"KUBE_DNS_UPSTREAM_SERVICE_HOST={UPSTREAM_IP}", f"READYNS_INTERFACE={INTERFACE}",
           f"READYNS_CONFIG_TEMPLATE={TEMPLATE}", f"READYNS_CONFIG_OUT={config_out}"]
    # -u IPTABLES: let setup.sh pick the backend as in a pod, even if the caller has one set.
    r = ns.run("sh", SETUP_SH, env=["-u", "IPTABLES", *env])
    backend = re.search(r"iptables backend: (iptables-(?:nft|legacy))", r.stderr)
    assert backend, f"setup.sh named no iptables backend:\n{r.stderr}"
    return backend.group(1), r.stderr


def rules(ns, backend, table, counters=False):
    """The table's -A lines, as a set; with counters, {rule: packets}."""
    out = ns.run(f"{backend}-save", "-c", "-t", table).stdout if counters else ns.run(backend, "-t", table, "-S").stdout
    if not counters:
        return {line for line in out.splitlines() if line.startswith("-A ")}
    found = {}
    for line in out.splitlines():
        m = re.match(r"\[(\d+):\d+\] (-A .*)", line)
        if m:
            found[m.group(2)] = int(m.group(1))
    return found


def test_node_local_addresses_in_a_netns(netns, readyns_bin, tmp_path):
    if not (shutil.which("iptables-nft") or shutil.which("iptables-legacy")):
        pytest.fail("iptables-nft/iptables-legacy missing: install the Debian package `iptables` "
                    "(setup.sh needs it; ./run's DEPS should list it)")
    ns = netns
    ns.run("ip", "link", "set", "lo", "up")

    # setup.sh creates a dummy interface; kernels built without CONFIG_DUMMY (some VM kernels)
    # cannot, and then the interface is made here as an ifb, which setup.sh finds and reuses.
    made_here = None
    if ns.run("ip", "link", "add", "readyns-probe", "type", "dummy", check=False).returncode == 0:
        ns.run("ip", "link", "del", "readyns-probe")
    else:
        for kind in ("ifb", "bridge"):
            if ns.run("ip", "link", "add", INTERFACE, "type", kind, check=False).returncode == 0:
                made_here = kind
                break
        assert made_here, "the kernel can create neither a dummy nor an ifb/bridge interface"
        warnings.warn(f"kernel without dummy interfaces: {INTERFACE} created as {made_here} "
                      "before setup.sh ran, so its `ip link add ... type dummy` went untested")

    config = tmp_path / "readyns.yaml"
    backend, setup_log = run_setup(ns, config)

    # The interface holds both addresses and is up; the namespace has no route anywhere else.
    (link,) = json.loads(ns.run("ip", "-j", "-d", "addr", "show", "dev", INTERFACE).stdout)
    assert link["linkinfo"]["info_kind"] == (made_here or "dummy")
    assert "UP" in link["flags"]
    assert sorted((a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet") == \
        sorted((a, 32) for a in ADDRESSES)
    links = {entry["ifname"] for entry in json.loads(ns.run("ip", "-j", "link", "show").stdout)}
    assert links == {"lo", INTERFACE}
    assert ns.run("ip", "-4", "route", "show").stdout.strip() == ""

    # The rules NodeLocal DNSCache installs, exactly: raw NOTRACK both ways, filter ACCEPT.
    assert rules(ns, backend, "raw") == expected_raw_rules()
    assert rules(ns, backend, "filter") == expected_filter_rules()

    # Running it again (a pod restart) adds nothing.
    _, again_log = run_setup(ns, config)
    assert "added:" not in again_log and "created dummy" not in again_log, again_log
    assert rules(ns, backend, "raw") == expected_raw_rules()
    assert rules(ns, backend, "filter") == expected_filter_rules()
    assert len(json.loads(ns.run("ip", "-j", "addr", "show", "dev", INTERFACE).stdout)[0]["addr_info"]) == \
        len(link["addr_info"])

    # The rendered config names both node-local addresses and forwards the cluster zone to the
    # kube-dns-upstream address.
    rendered = config.read_text()
    assert f'"{LOCAL_DNS_IP}:53"' in rendered and f'"{KUBE_DNS_IP}:53"' in rendered
    assert f'"{UPSTREAM_IP}:53"' in rendered and "__" not in rendered

    counts = tmp_path / "upstream-counts.json"
    upstream = ns.start(["/usr/bin/python3", UPSTREAM_SCRIPT, "--port", "53", "--mode", "ok", "--counts", counts],
                        "upstream.log")
    upstream.wait_ready(lambda: bound(upstream.pid, "udp", UPSTREAM_IP, 53)
                        and bound(upstream.pid, "tcp", UPSTREAM_IP, 53), 10, "fault upstream")

    # The rendered config as is, except: the default upstream (the node's resolv.conf there) is
    # the same loopback upstream, and no Kubernetes API is looked for, so nothing is sent out.
    argv = [readyns_bin, "--config", config, "--upstream", f"{UPSTREAM_IP}:53", "--kube", "off",
            "--log-level", "debug", *os.environ.get("READYNS_TEST_ARGS", "").split()]
    readyns = ns.start(argv, "readyns.log")
    try:
        readyns.wait_ready(lambda: all(bound(readyns.pid, proto, addr, 53)
                                       for addr in ADDRESSES for proto in ("udp", "tcp")), 10, "readyns")

        plan = [[addr, transport, name] for addr in ADDRESSES for transport in ("udp", "tcp")
                for name in (SVC, WWW)]
        client = ns.run("/usr/bin/python3", "-c", CLIENT, json.dumps(plan), timeout=30)
        results = json.loads(client.stdout)
        problems = []
        for (addr, transport, name), got in zip(plan, results, strict=True):
            want = {"rcode": "NOERROR", "a": EXPECTED[name]}
            if {k: got.get(k) for k in want} != want or "QR" not in got.get("flags", "").split():
                problems.append(f"{name} A from {addr} over {transport}: {got}, expected {want}")
        assert not problems, "\n".join(problems)

        # Each name went upstream once: all four listeners share the one cache.
        assert json.loads(counts.read_text()) == {SVC + ".": 1, WWW + ".": 1}

        # The queries and the answers, UDP and TCP, to and from both addresses, all went through
        # their NOTRACK and ACCEPT rules.
        for table, expected in (("raw", expected_raw_rules()), ("filter", expected_filter_rules())):
            packets = rules(ns, backend, table, counters=True)
            assert set(packets) == expected
            unused = sorted(rule for rule, n in packets.items() if n == 0)
            assert not unused, f"{table} rules no packet matched:\n" + "\n".join(unused)

        assert readyns.alive(), f"readyns exited with {readyns.proc.returncode}"
        rc, took = readyns.terminate()
        assert rc == 0, f"readyns exited with {rc} after SIGTERM ({took:.1f}s)"
        assert not [line for line in readyns.log().splitlines()
                    if any(m in line for m in harness.Readyns.SANITIZER_MARKERS)]
    finally:
        print(f"--- setup.sh\n{setup_log}--- {readyns.log_path} (last lines)\n{readyns.log_tail()}"
              f"\n--- {upstream.log_path}\n{upstream.log_tail()}")
