# Integration-test helpers: sample zones, knotd and readyns processes, raw DNS client exchanges.
"""Helpers shared by the integration tests, also usable from a shell:

    /usr/bin/python3 tests/integration/harness.py zone DIR        # write the sample zone files
                                                                  # (also: demo-zone DIR)
    /usr/bin/python3 tests/integration/harness.py knot DIR PORT   # start knotd, print its pid
"""
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype

REPO = Path(__file__).resolve().parents[2]
KNOTD = "/usr/sbin/knotd"
HOST = "127.0.0.1"

# The version meson.build gives the project (readyns_build_info carries it).
PROJECT_VERSION = re.search(r"version\s*:\s*'([^']+)'", (REPO / "meson.build").read_text()).group(1)

# Readyns' documented defaults, repeated here so tests say which value they rely on.
DEFAULT_MAX_TTL = 30
DEFAULT_NEG_TTL = 5
EDNS_SIZE = 1232


def readyns_bin():
    return os.environ.get("READYNS_BIN", str(REPO / "build" / "readyns"))


# ---------------------------------------------------------------------------------------------
# Sample zones

NAMESPACES = 3
SERVICES_PER_NAMESPACE = 10
HEADLESS_ENDPOINTS = ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"]
BIG_A_COUNT = 40  # about 700 bytes of answer: over 512, under 1232
BIG_TXT_STRINGS = 24  # about 3 KB: over 1232, so even EDNS UDP truncates
LONG_TTL = 300
SHORT_TTL = 2


def svc_ip(ns, n):
    return f"10.96.{ns}.{n + 10}"


def big_a_ips():
    return [f"10.244.2.{i + 1}" for i in range(BIG_A_COUNT)]


def big_txt_strings():
    return [f"chunk{i:02d}-" + "x" * 110 for i in range(BIG_TXT_STRINGS)]


def cluster_zone_text():
    # Shaped like CoreDNS' kubernetes plugin output: SOA minimum 30, short TTLs, per-endpoint
    # names for headless services, SRV for named ports.
    lines = [
        "$ORIGIN cluster.local.",
        "$TTL 30",
        "@ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30",
        "@ IN NS ns.dns.cluster.local.",
        "ns.dns IN A 10.96.0.10",
    ]
    for ns in range(NAMESPACES):
        for n in range(SERVICES_PER_NAMESPACE):
            lines.append(f"svc{n}.ns{ns}.svc IN A {svc_ip(ns, n)}")
            lines.append(f"_http._tcp.svc{n}.ns{ns}.svc IN SRV 0 100 80 svc{n}.ns{ns}.svc.cluster.local.")
    for ip in HEADLESS_ENDPOINTS:
        host = ip.replace(".", "-")
        lines.append(f"hl0.ns0.svc IN A {ip}")
        lines.append(f"{host}.hl0.ns0.svc IN A {ip}")
        lines.append(f"_http._tcp.hl0.ns0.svc IN SRV 0 25 8080 {host}.hl0.ns0.svc.cluster.local.")
    lines += [
        "chain1.ns0.svc IN CNAME chain2.ns0.svc.cluster.local.",
        "chain2.ns0.svc IN CNAME chain3.ns0.svc.cluster.local.",
        "chain3.ns0.svc IN CNAME svc0.ns0.svc.cluster.local.",
        "ext.ns0.svc IN CNAME www.example.org.",
        f"long.ns0.svc {LONG_TTL} IN A 10.96.200.1",
        f"short.ns0.svc {SHORT_TTL} IN A 10.96.200.2",
        "*.wild.ns0.svc IN A 10.96.99.1",
    ]
    lines += [f"big.ns0.svc IN A {ip}" for ip in big_a_ips()]
    lines += [f'bigtxt.ns0.svc IN TXT "{s}"' for s in big_txt_strings()]
    return "\n".join(lines) + "\n"


def example_zone_text():
    return "\n".join([
        "$ORIGIN example.org.",
        "$TTL 3600",
        "@ IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60",
        "@ IN NS ns1",
        "ns1 IN A 192.0.2.1",
        f"www {LONG_TTL} IN A 192.0.2.10",
        f"www {LONG_TTL} IN AAAA 2001:db8::10",
        "alias IN CNAME www",
        'txt IN TXT "hello from example.org"',
    ]) + "\n"


SAMPLE_ZONES = {"cluster.local": cluster_zone_text, "example.org": example_zone_text}


def write_zones(directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for origin, text in SAMPLE_ZONES.items():
        (directory / f"{origin}.zone").write_text(text())
    return directory


# ---------------------------------------------------------------------------------------------
# Ports and raw exchanges

def free_port():
    """A port free for both UDP and TCP on HOST (a DNS server needs both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def make_query(qname, qtype="A", *, rd=True, edns=None, payload=4096, edns_version=0, qid=None):
    """A query message; `edns=None` means no OPT record at all."""
    q = dns.message.make_query(qname, qtype, use_edns=False)
    q.id = random.randrange(65536) if qid is None else qid
    if not rd:
        q.flags &= ~dns.flags.RD
    if edns is not None:
        q.use_edns(edns_version, 0, payload)
    return q


def to_wire(msg):
    return msg if isinstance(msg, (bytes, bytearray)) else msg.to_wire()


def udp_exchange(port, query, timeout=3.0):
    """Sends one datagram and returns the first reply's bytes, or None if nothing came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((HOST, port))
        s.send(to_wire(query))
        try:
            return s.recv(65535)
        except (socket.timeout, ConnectionRefusedError):
            return None


def udp(port, query, timeout=3.0):
    wire = udp_exchange(port, query, timeout)
    assert wire is not None, f"no UDP reply within {timeout}s"
    return dns.message.from_wire(wire)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def tcp_send(sock, query):
    wire = to_wire(query)
    sock.sendall(struct.pack("!H", len(wire)) + wire)


def tcp_recv(sock):
    (length,) = struct.unpack("!H", recv_exact(sock, 2))
    return recv_exact(sock, length)


def tcp_connect(port, timeout=3.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def tcp(port, query, timeout=3.0):
    with tcp_connect(port, timeout) as s:
        tcp_send(s, query)
        return dns.message.from_wire(tcp_recv(s))


def rrsets_text(section):
    """A section as comparable sets of (name, type, rdata), TTLs and case left out."""
    return sorted(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), sorted(r.to_text().lower() for r in rrset))
        for rrset in section)


def answer_addresses(msg):
    return sorted(r.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)


def wait_until(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def udp_port_bound(port):
    # A UDP listener cannot be probed without sending it a query, which a test may be counting
    # upstream; the kernel's socket table says whether it is bound without side effects.
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in f):
                    return True
        except FileNotFoundError:
            pass
    return False


def tcp_accepts(port):
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def http_get(port, path):
    """(status, body) of GET http://HOST:port/path."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """The Prometheus text exposition readyns serves at http://HOST:port/metrics."""
    status, text = http_get(port, "/metrics")
    assert status == 200, f"/metrics answered {status}:\n{text}"
    return text


def samples(text, name):
    """Every sample of `name` in a Prometheus text exposition, as (labels dict, value)."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            labels = dict(part.split("=", 1) for part in head[len(name) + 1:-1].split(",")) if "{" in head else {}
            out.append(({k: v.strip('"') for k, v in labels.items()}, float(value)))
    return out


def metric(text, name, absent=None, **labels):
    """The value of the first sample `name` that has these labels (and maybe others); `absent` if
    there is none and it is given (readyns leaves out an rcode's counter until it counts)."""
    for have, value in samples(text, name):
        if all(have.get(k) == str(v) for k, v in labels.items()):
            return value
    if absent is not None:
        return absent
    raise AssertionError(f"no {name} {labels} in\n{text}")


def _udp_table(pid):
    """(local port, remote port or 0, receive queue bytes, drops) for every UDP socket `pid` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    rows = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    # sl local remote st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                    fields = line.split()
                    if fields[9] in inodes:
                        rows.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                                     int(fields[4].split(":")[1], 16), int(fields[12])))
        except FileNotFoundError:
            pass
    return rows


def udp_sockets(pid):
    """{local port: (receive queue bytes, drops)} for every UDP socket process `pid` holds.

    The kernel's tables say whether a socket's datagrams have all been read (queue 0) and
    whether any were lost for want of buffer space (drops), without asking the process.
    """
    sockets = {}
    for port, _, queue, drops in _udp_table(pid):
        old_queue, old_drops = sockets.get(port, (0, 0))
        sockets[port] = (old_queue + queue, old_drops + drops)
    return sockets


def udp_peers(pid):
    """{local port: remote port} for every connected UDP socket process `pid` holds."""
    return {port: remote for port, remote, _, _ in _udp_table(pid) if remote}


def udp_no_ports():
    """The kernel's count of UDP datagrams that no socket would take (Udp NoPorts in /proc/net/snmp):
    among them those from any other source than the peer of the connected socket they were sent to."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("NoPorts")])


# ---------------------------------------------------------------------------------------------
# Processes

class Process:
    """A child process with its stderr and stdout in a log file."""

    def __init__(self, argv, log_path, detach=False):
        self.log_path = Path(log_path)
        self.stopped = None  # (exit code, seconds) once terminate() has run
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=detach)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines=80):
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, ready, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{what} exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"{what} not ready after {timeout}s:\n{self.log_tail()}")

    def terminate(self, sig=signal.SIGTERM, timeout=2.0):
        """Signals the process and returns (exit code, seconds to exit); kills it past `timeout`."""
        if not self.alive():
            return self.proc.returncode, 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self.stopped = (rc, time.monotonic() - start)
        return self.stopped

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


KNOT_CONF = """\
server:
    rundir: "{dir}"
    listen: {host}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{dir}/db"
template:
  - id: default
    storage: "{dir}"
    zonefile-sync: -1
    journal-content: none
zone:
{zones}log:
  - target: stderr
    any: info
"""


class Knot(Process):
    """knotd serving the sample zones on HOST:port."""

    def __init__(self, directory, port=None, detach=False):
        directory = write_zones(directory)
        self.port = port or free_port()
        zones = "".join(f"  - domain: {z}\n    file: {z}.zone\n" for z in SAMPLE_ZONES)
        conf = directory / "knot.conf"
        conf.write_text(KNOT_CONF.format(dir=directory, host=HOST, port=self.port, zones=zones))
        super().__init__([KNOTD, "-c", str(conf)], directory / "knotd.log", detach=detach)
        self.wait_ready(self._serves_all_zones, 10, "knotd")

    def _serves_all_zones(self):
        for zone in SAMPLE_ZONES:
            wire = udp_exchange(self.port, make_query(zone, "SOA"), timeout=0.2)
            if wire is None:
                return False
            msg = dns.message.from_wire(wire)
            if msg.rcode() != 0 or not msg.answer:
                return False
        return True


class Readyns(Process):
    """The daemon under test, listening on HOST:port (UDP and TCP)."""

    def __init__(self, log_path, upstreams=(), forward=(), args=()):
        self.port = free_port()
        # Admin HTTP off unless a test asks: many daemons run at once and would share ports.
        argv = [readyns_bin(), "--listen", f"{HOST}:{self.port}", "--log-level", "debug",
                "--health=", "--metrics="]
        # e.g. "--threads 2": the whole suite again with several workers (the TSan run does).
        argv += os.environ.get("READYNS_TEST_ARGS", "").split()
        for up in upstreams:
            argv += ["--upstream", up if isinstance(up, str) else f"{HOST}:{up}"]
        for zone, ups in forward:
            argv += ["--forward", f"{zone}=" + ",".join(u if isinstance(u, str) else f"{HOST}:{u}" for u in ups)]
        argv += [str(a) for a in args]
        super().__init__(argv, log_path)
        # The admin server starts listening after the DNS sockets: a test must not reach it first.
        admin_ports = [int(a.rsplit(":", 1)[1]) for a in argv
                       if a.startswith(("--health=", "--metrics=")) and a[-1].isdigit()]
        self.wait_ready(lambda: udp_port_bound(self.port) and tcp_accepts(self.port)
                        and all(tcp_accepts(p) for p in admin_ports), 10, "readyns")

    SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "ThreadSanitizer",
                         "runtime error:")

    def sanitizer_reports(self):
        return [line for line in self.log().splitlines() if any(m in line for m in self.SANITIZER_MARKERS)]


# ---------------------------------------------------------------------------------------------
# Command line, for shell demos

def main(argv):
    usage = "usage: harness.py zone DIR | harness.py knot DIR PORT"
    if len(argv) == 2 and argv[0] in ("zone", "demo-zone"):
        directory = write_zones(argv[1])
        print("\n".join(str(directory / f"{z}.zone") for z in SAMPLE_ZONES))
        return 0
    if len(argv) == 3 and argv[0] == "knot":
        # Detached so knotd outlives this script; the caller stops it with `kill PID`.
        knot = Knot(Path(argv[1]).resolve(), int(argv[2]), detach=True)
        print(knot.pid)
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
