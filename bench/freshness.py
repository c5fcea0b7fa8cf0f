#!/usr/bin/python3
# Measures how long an endpoint marked not-ready keeps being answered.
#
# readyns' watcher vs a plain TTL cache.
"""Usage: bench/freshness.py [--trials 50] [--interval-ms 5] [--ttl 30] [--out FILE]

For each of `--trials` headless Services (one trial each, two ready endpoints), clients ask the
Service's A record every `--interval-ms`; a watch event then marks one endpoint not ready, and the
trial's figure is the time from that event (the fake API server's own clock at the change) to the
first DNS answer received without the endpoint. Two setups, same clients, same upstream:

  watcher    readyns --kube on, watching the fake API server (tests/k8s/fake_apiserver.py)
  ttl-cache  readyns --kube off --max-ttl TTL: a plain TTL cache, as NodeLocal DNSCache is, in front
             of a CoreDNS-like upstream that answers each query from the API server's state at
             that moment with TTL 30 (CoreDNS's default behind NodeLocal DNSCache)

In the TTL cache a trial can last up to TTL seconds, so trials run side by side: every Service is
asked all along, and the events are spread over one TTL period in random order (the cache's
refresh phase is then uniform under them, as for events that come at any time). Prints a markdown
table; writes the figures to bench/out/freshness.json. Takes about a minute with the defaults.

Environment: READYNS overrides the binary (default: build-release/readyns, else build/readyns,
the first that has --kube).
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import random
import select
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
import fake_kube  # noqa: E402  (the fake API server's driver, shared with tests/integration/test_kube.py)
import harness  # noqa: E402

HOST = "127.0.0.1"
NAMESPACE = "bench"
DOMAIN = "cluster.local"


def service_name(i):
    return f"svc{i}"


def qname(i):
    return f"{service_name(i)}.{NAMESPACE}.svc.{DOMAIN}"


def addresses_of(i):
    # The second one is the endpoint that each trial marks not ready.
    return [f"10.245.{i // 200}.{(i % 200) + 1}", f"10.246.{i // 200}.{(i % 200) + 1}"]


# ---------------------------------------------------------------------------------------------
# The CoreDNS-like upstream: a separate process, so that its work never delays the clients.


def coredns_like(args):
    """Answers <svc>.bench.svc.cluster.local A from the API server's state at the time of the query."""
    token = Path(args.token_file).read_text().strip()
    context = ssl.create_default_context(cafile=args.ca_file)
    local = threading.local()
    path = "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % NAMESPACE

    def slices():
        # A kept-alive HTTPS connection per thread: a list is then a millisecond or two.
        for attempt in range(2):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPSConnection(HOST, args.api_port, context=context, timeout=5)
            try:
                conn.request("GET", path, headers={"Authorization": "Bearer " + token})
                reply = conn.getresponse()
                body = reply.read()
                return json.loads(body)["items"]
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
                if attempt:
                    raise
        return []

    def ready_addresses(service):
        # CoreDNS's rule: ready endpoints; none ready, then the serving-terminating ones.
        endpoints = [e for s in slices() if s["metadata"]["labels"].get("kubernetes.io/service-name") == service
                     for e in s.get("endpoints", [])]
        ready = [e for e in endpoints if e.get("conditions", {}).get("ready", True)]
        if not ready:
            ready = [e for e in endpoints if e.get("conditions", {}).get("serving") and
                     e.get("conditions", {}).get("terminating")]
        return [a for e in ready for a in e["addresses"]]

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    suffix = f".{NAMESPACE}.svc.{DOMAIN}."
    soa = dns.rrset.from_text(DOMAIN + ".", args.ttl, "IN", "SOA",
                              f"ns.dns.{DOMAIN}. hostmaster.{DOMAIN}. 1 7200 1800 86400 {args.ttl}")

    def handle(wire, source):
        try:
            query = dns.message.from_wire(wire)
            question = query.question[0]
        except Exception:
            return
        reply = dns.message.make_response(query, recursion_available=True)
        reply.flags |= dns.flags.AA
        name = question.name.to_text().lower()
        found = []
        if name.endswith(suffix) and name.count(".") == suffix.count("."):  # one label: the Service
            found = ready_addresses(name[: -len(suffix)])
        if found and question.rdtype == 1:
            reply.answer.append(dns.rrset.from_text(question.name, args.ttl, "IN", "A", *found))
        else:
            if not found:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(soa)
        sock.sendto(reply.to_wire(), source)

    print(f"READY {sock.getsockname()[1]}", flush=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while True:
            wire, source = sock.recvfrom(65535)
            pool.submit(handle, wire, source)


# ---------------------------------------------------------------------------------------------
# Clients: one thread asks every Service every interval over one socket, and notes what came back.


def build_query(i):
    """A query (no EDNS) whose ID is the Service's index, with the length of its question."""
    labels = qname(i).split(".")
    name = b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"
    header = i.to_bytes(2, "big") + b"\x01\x00" + b"\x00\x01" + b"\x00\x00" * 3
    return header + name + b"\x00\x01\x00\x01"


def skip_name(wire, at):
    while True:
        length = wire[at]
        if length >= 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length


def a_records(wire):
    """The IPv4 addresses in an answer's answer section, or None if it is not a usable answer."""
    if len(wire) < 12 or not wire[2] & 0x80 or wire[3] & 0x0F not in (0, 3):
        return None
    qdcount, ancount = int.from_bytes(wire[4:6], "big"), int.from_bytes(wire[6:8], "big")
    at = 12
    for _ in range(qdcount):
        at = skip_name(wire, at) + 4
    out = []
    for _ in range(ancount):
        at = skip_name(wire, at)
        rtype, rdlength = int.from_bytes(wire[at:at + 2], "big"), int.from_bytes(wire[at + 8:at + 10], "big")
        at += 10
        if rtype == 1 and rdlength == 4:
            out.append(socket.inet_ntoa(wire[at:at + 4]))
        at += rdlength
    return out


class Trial:
    def __init__(self, i):
        self.i = i
        self.query = build_query(i)
        self.gone = addresses_of(i)[1]
        self.event_at = None  # the API server's monotonic time of the change
        self.last_with = None  # receive time of the last answer still holding `gone`
        self.first_without = None  # receive time of the first answer without it
        self.answers_after = 0  # answers after first_without
        self.reappeared = 0  # of those, how many had `gone` again
        self.warm = False  # an answer with both endpoints has come


class Clients:
    def __init__(self, port, trials, interval):
        self.port = port
        self.trials = trials
        self.interval = interval
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((HOST, port))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.stop = threading.Event()
        self.sent = self.received = self.bad = 0
        self.warm = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        next_tick = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                for t in self.trials:
                    try:
                        self.sock.send(t.query)
                        self.sent += 1
                    except (BlockingIOError, ConnectionRefusedError):
                        pass  # counted as unanswered; a readyns that died shows in its log
                next_tick += self.interval
                if next_tick < now:  # fell behind: skip ticks rather than burst
                    next_tick = now + self.interval
            # Waiting for answers is what paces the loop: select wakes on one or at the next tick.
            if select.select([self.sock], [], [], max(0.0, next_tick - time.monotonic()))[0]:
                self.drain()

    def drain(self):
        while True:
            try:
                wire = self.sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return
            received = time.monotonic()
            self.received += 1
            i = int.from_bytes(wire[:2], "big")
            found = a_records(wire) if i < len(self.trials) else None
            if found is None:
                self.bad += 1
                continue
            self.note(self.trials[i], found, received)

    def note(self, t, found, received):
        if not t.warm:
            t.warm = set(found) == set(addresses_of(t.i))
            if t.warm and all(x.warm for x in self.trials):
                self.warm.set()
        if t.gone in found:
            if t.first_without is None:
                t.last_with = received
            else:
                t.reappeared += 1
        elif t.warm:
            # Not waiting for event_at to be set: with the watcher the answer can come before the
            # event's POST has returned. An answer without it before the event shows as an error.
            if t.first_without is None:
                t.first_without = received
                if all(x.first_without is not None for x in self.trials):
                    self.done.set()
        if t.first_without is not None and received > t.first_without:
            t.answers_after += 1


# ---------------------------------------------------------------------------------------------
# One setup, start to end


def readyns_binary():
    if os.environ.get("READYNS"):
        return os.environ["READYNS"]
    for candidate in (REPO / "build-release" / "readyns", REPO / "build" / "readyns"):
        if candidate.exists():
            out = subprocess.run([str(candidate), "--help"], capture_output=True, text=True).stdout
            if "--kube" in out:
                return str(candidate)
    sys.exit("freshness.py: no readyns binary with --kube found; build one or set READYNS")


def start_readyns(binary, upstream_port, extra, log_path):
    port = harness.free_port()
    argv = [binary, "--listen", f"{HOST}:{port}", "--upstream", f"{HOST}:{upstream_port}", "--max-ttl", "30",
            "--health=", "--metrics=", "--log-level", "info", *extra]
    proc = harness.Process(argv, log_path)
    # Bound is enough: the clients' first queries are answered once the loop runs.
    proc.wait_ready(lambda: harness.udp_port_bound(port), 10, "readyns")
    return proc, port


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_setup(label, api, readyns_args, upstream_port, binary, args, work):
    # Every trial's Service back to two ready endpoints, whatever the previous setup left.
    for i in range(args.trials):
        api.push("MODIFIED", fake_kube.endpoint_slice(
            f"{service_name(i)}-a", NAMESPACE, service_name(i), [fake_kube.endpoint(a) for a in addresses_of(i)]))
    watches = api.state()["watches"]
    proc, port = start_readyns(binary, upstream_port, readyns_args, work / f"readyns-{label}.log")
    try:
        if label == "watcher":
            api.wait(watches=watches + 1, open_watches=1)  # listed and watching: the table is synced
        trials = [Trial(i) for i in range(args.trials)]
        clients = Clients(port, trials, args.interval_ms / 1000)
        clients.thread.start()
        if not clients.warm.wait(30):
            raise RuntimeError(f"{label}: not every Service answered with both endpoints")
        # Spread over the window, in random order, each event a trial's, each at a random point
        # of its slot: events in step with the clients' ticks would all wait the same part of one.
        window = args.watcher_window if label == "watcher" else args.ttl
        order = list(range(args.trials))
        random.shuffle(order)
        start = time.monotonic() + 0.2
        for n, i in enumerate(order):
            due = start + window * (n + random.random()) / args.trials
            delay = due - time.monotonic()
            if delay > 0:
                clients.stop.wait(delay)  # the schedule itself: nothing to await but the time
            ready, gone = addresses_of(i)
            reply = api.push("MODIFIED", fake_kube.endpoint_slice(
                f"{service_name(i)}-a", NAMESPACE, service_name(i),
                [fake_kube.endpoint(ready), fake_kube.endpoint(gone, ready=False, serving=False, terminating=True)]))
            trials[i].event_at = reply["at"]
        bound = args.ttl + 10 if label != "watcher" else 10
        finished = clients.done.wait(bound)
        # A little more asking after the last change, so that an answer going back would be seen.
        clients.stop.wait(0.5)
        clients.stop.set()
        clients.thread.join()
    finally:
        proc.terminate(timeout=5)

    latencies = [(t.first_without - t.event_at) * 1000 for t in trials if t.first_without is not None]
    early = [t.i for t in trials if t.first_without is not None and t.first_without < t.event_at]
    result = {
        "trials": args.trials,
        "completed": len(latencies),
        "finished_in_bound": finished,
        "latencies_ms": [round(x, 3) for x in latencies],
        # The last answer still with the endpoint, by the same clock: the change took effect
        # between it and the first without, so these and the latencies bracket it.
        "last_with_ms": [round((t.last_with - t.event_at) * 1000, 3) for t in trials
                         if t.first_without is not None and t.last_with is not None],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "mean_ms": statistics.fmean(latencies) if latencies else None,
        "answers_after_change": sum(t.answers_after for t in trials),
        "reappeared": sum(t.reappeared for t in trials),
        "gone_before_event": early,
        "queries_sent": clients.sent,
        "answers": clients.received,
        "unusable_answers": clients.bad,
    }
    return result


def fmt_ms(value):
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    upstream = sub.add_parser("coredns-like", help="(internal) the CoreDNS-like upstream")
    upstream.add_argument("--api-port", type=int, required=True)
    upstream.add_argument("--token-file", required=True)
    upstream.add_argument("--ca-file", required=True)
    upstream.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--trials", type=int, default=50, help="Services, one trial each (at most 1000)")
    parser.add_argument("--interval-ms", type=float, default=5, help="how often each Service is asked")
    parser.add_argument("--ttl", type=int, default=30, help="the upstream's TTL, and readyns' --max-ttl")
    parser.add_argument("--watcher-window", type=float, default=5,
                        help="seconds over which the watcher setup's events are spread")
    parser.add_argument("--out", default=str(HERE / "out" / "freshness.json"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs) and print it")
    args = parser.parse_args()
    if args.command == "coredns-like":
        return coredns_like(args)

    random.seed(args.seed)
    binary = readyns_binary()
    procs = []
    work = Path(tempfile.mkdtemp(prefix="readyns-freshness."))
    if args.keep:
        print(f"freshness: scratch directory {work}", file=sys.stderr)
    try:
        api = fake_kube.FakeApi(work / "api")
        try:
            for i in range(args.trials):
                api.push("ADDED", fake_kube.endpoint_slice(
                    f"{service_name(i)}-a", NAMESPACE, service_name(i), [fake_kube.endpoint(a) for a in addresses_of(i)]))
            up = subprocess.Popen(
                [sys.executable, __file__, "coredns-like", "--api-port", str(api.api_port), "--token-file",
                 str(api.token_file), "--ca-file", str(api.ca_file), "--ttl", str(args.ttl)],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            procs.append(up)
            line = up.stdout.readline().decode()
            if not line.startswith("READY "):
                raise RuntimeError(f"the CoreDNS-like upstream did not start: {line!r}")
            upstream_port = int(line.split()[1])

            results = {}
            setups = [("watcher", api.readyns_args("on")), ("ttl-cache", ["--kube", "off"])]
            for label, readyns_args in setups:
                print(f"freshness: {label} ...", file=sys.stderr, flush=True)
                results[label] = run_setup(label, api, readyns_args, upstream_port, binary, args, work)
        finally:
            for p in procs:
                p.kill()
                p.wait()
            api.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    out = {
        "what": "ms from a watch event marking an endpoint not ready to the first DNS answer without it",
        "readyns": binary,
        "trials": args.trials,
        "query_interval_ms": args.interval_ms,
        "upstream_ttl_s": args.ttl,
        "max_ttl_s": 30,
        "setups": {
            "watcher": "readyns --kube on (EndpointSlice watch)",
            "ttl-cache": f"readyns --kube off --max-ttl 30 in front of a CoreDNS-like upstream (TTL {args.ttl})",
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")

    print(f"Time from a watch event marking an endpoint not ready to the first answer without it "
          f"({args.trials} trials, each Service asked every {args.interval_ms:g} ms):\n")
    print("| setup | p50 | p99 | max | trials done | answers after the change | of those with it again |")
    print("|---|---|---|---|---|---|---|")
    names = {"watcher": "readyns, EndpointSlice watcher",
             "ttl-cache": f"TTL cache (readyns --kube off, upstream TTL {args.ttl} s)"}
    for label, r in results.items():
        print(f"| {names[label]} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | {fmt_ms(r['max_ms'])} | "
              f"{r['completed']}/{r['trials']} | {r['answers_after_change']} | {r['reappeared']} |")
    print(f"\nwritten: {args.out}")
    bad = [label for label, r in results.items() if r["completed"] < r["trials"] or r["reappeared"]
           or r["gone_before_event"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
