# Readyns under abuse: slow TCP clients (slowloris) and per-client response rate limiting.
#
# Slow clients against the read deadline and the connection caps; rate limiting over UDP.
import select
import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

import harness
from harness import metric, scrape, tcp, udp

SVC0 = "svc0.ns0.svc.cluster.local"
IDLE_MS = 1500
CAP = 40
TRICKLE_EVERY = 0.1  # a byte this often: a whole query would take about 5 s
STYLES = ("silent", "half-prefix", "trickle")


class SlowClients(threading.Thread):
    """Connections that never complete a query, watched from a thread of their own so that the
    moment readyns closes each one is seen as it happens: `silent` sends nothing, `half-prefix`
    one byte of the length prefix, `trickle` a real query one byte every TRICKLE_EVERY."""

    class Conn:
        def __init__(self, port, style):
            self.style = style
            self.sock = harness.tcp_connect(port)
            self.opened = time.monotonic()
            self.closed = None
            self.got = b""  # anything readyns sent: it never should
            wire = harness.make_query(SVC0).to_wire()
            self.unsent = struct.pack("!H", len(wire)) + wire if style == "trickle" else b""
            self.sent = 0
            if style == "half-prefix":
                self.sock.send(b"\0")
            self.sock.setblocking(False)

        def lifetime(self):
            return self.closed - self.opened

    def __init__(self):
        super().__init__(daemon=True)
        self.conns = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.start()

    def open(self, port, count):
        new = [self.Conn(port, STYLES[i % len(STYLES)]) for i in range(count)]
        with self.lock:
            self.conns += new
        return new

    def open_ones(self):
        with self.lock:
            return [c for c in self.conns if c.closed is None]

    def run(self):
        next_trickle = time.monotonic()
        while not self.done.is_set():
            conns = self.open_ones()
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_EVERY
                for c in conns:
                    if c.unsent:
                        try:
                            c.sock.send(c.unsent[:1])
                            c.unsent, c.sent = c.unsent[1:], c.sent + 1
                        except (BlockingIOError, ConnectionError):
                            pass  # a closed connection shows as readable below
            if not conns:
                time.sleep(0.01)
                continue
            readable = select.select([c.sock for c in conns], [], [], 0.01)[0]
            for c in conns:
                if c.sock in readable:
                    try:
                        c.got += c.sock.recv(512)
                    except ConnectionError:
                        pass
                    c.closed = time.monotonic()

    def stop(self):
        self.done.set()
        self.join(2)
        for c in self.conns:
            c.sock.close()


@pytest.fixture
def slow_clients():
    clients = SlowClients()
    yield clients
    clients.stop()


@pytest.mark.parametrize("cap", ["total", "per_client"])
def test_slowloris_clients_are_capped_and_cut_at_the_deadline(knot, readyns, slow_clients, cap):
    mport = harness.free_port()
    caps = {"total": ["--tcp-max-connections", CAP, "--tcp-max-connections-per-client", 1000],
            "per_client": ["--tcp-max-connections", 1000, "--tcp-max-connections-per-client", CAP]}
    server = readyns(upstreams=[knot.port],
                     args=["--tcp-idle-timeout", IDLE_MS, f"--metrics=127.0.0.1:{mport}", *caps[cap]])

    def open_connections():
        return metric(scrape(mport), "readyns_tcp_connections")

    def refused():
        return metric(scrape(mport), "readyns_tcp_refused_total", reason=cap)

    def served(n):
        name = f"svc{n}.ns1.svc.cluster.local"
        start = time.monotonic()
        assert harness.answer_addresses(udp(server.port, harness.make_query(name))) == [harness.svc_ip(1, n)]
        assert time.monotonic() - start < 0.5, "UDP slowed down by the slow TCP clients"

    # Under the cap, slow clients hold their connections and everyone else is served.
    first = slow_clients.open(server.port, CAP - 5)
    harness.wait_until(lambda: open_connections() == CAP - 5, 5, "readyns to accept the slow clients")
    served(0)
    assert harness.answer_addresses(tcp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    harness.wait_until(lambda: open_connections() == CAP - 5, 5, "the served TCP client's connection to close")

    # Over the cap: 5 more get in, the other 20 are closed on accept, and so is a real client's.
    second = slow_clients.open(server.port, 25)
    harness.wait_until(lambda: refused() == 20, 5, "readyns to refuse the connections over the cap")
    assert open_connections() == CAP
    with pytest.raises(ConnectionError):
        tcp(server.port, harness.make_query(SVC0))
    assert refused() == 21
    served(1)

    harness.wait_until(lambda: not slow_clients.open_ones(), IDLE_MS / 1000 + 3, "readyns to close every slow client")
    refused_at_once = [c for c in second if c.lifetime() < IDLE_MS / 2000]
    assert len(refused_at_once) == 20
    cut = [c for c in first + second if c not in refused_at_once]
    assert len(cut) == CAP
    assert not [c.got for c in first + second if c.got], "a slow client got an answer"
    for c in cut:
        # Trickled bytes do not put the deadline off: only a complete query would.
        assert IDLE_MS / 1000 * 0.9 <= c.lifetime() <= IDLE_MS / 1000 + 1.0, f"{c.style}: {c.lifetime():.2f}s"
    assert min(c.sent for c in cut if c.style == "trickle") >= 10
    harness.wait_until(lambda: open_connections() == 0, 3, "the connection count to drop back")
    assert harness.answer_addresses(tcp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    served(2)


def test_udp_answers_over_the_rate_limit_are_dropped_or_slip_truncated(knot, readyns):
    rate, count = 10, 100
    mport = harness.free_port()
    server = readyns(upstreams=[knot.port], args=["--rrl-rate", rate, f"--metrics=127.0.0.1:{mport}"])

    def counts():
        text = scrape(mport)
        return (metric(text, "coredns_dns_responses_total", absent=0, rcode="NOERROR"),
                metric(text, "readyns_rate_limited_total", action="slip"),
                metric(text, "readyns_rate_limited_total", action="drop"))

    def all_judged():
        sent, _, dropped = counts()
        return sent + dropped == count

    queries = {q.id: q for q in (harness.make_query(SVC0, qid=i) for i in range(count))}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((harness.HOST, server.port))
        start = time.monotonic()
        for q in queries.values():
            s.send(q.to_wire())
        harness.wait_until(all_judged, 5, "readyns to answer or drop every query")
        refilled = (time.monotonic() - start) * rate  # answers the bucket may have regained meanwhile
        sent, slipped, dropped = counts()
        s.setblocking(False)
        answers = []
        while select.select([s], [], [], 0)[0]:
            answers.append(dns.message.from_wire(s.recv(65535)))
    full = [a for a in answers if not a.flags & dns.flags.TC]
    truncated = [a for a in answers if a.flags & dns.flags.TC]
    assert len(answers) == sent
    assert rate <= len(full) <= rate + refilled + 1
    assert all(harness.answer_addresses(a) == [harness.svc_ip(0, 0)] for a in full)
    # Of the answers over the rate, every second one slips out truncated (--rrl-slip 2).
    assert slipped + dropped == count - len(full)
    assert abs(slipped - dropped) <= 1
    assert len(truncated) == slipped
    for a in truncated:
        assert a.rcode() == dns.rcode.NOERROR and not a.answer
        assert a.question == queries[a.id].question
    # TCP is not limited: a client told to retry there gets its answers.
    with harness.tcp_connect(server.port) as t:
        for n in range(30):
            harness.tcp_send(t, harness.make_query(SVC0))
        for n in range(30):
            assert harness.answer_addresses(dns.message.from_wire(harness.tcp_recv(t))) == [harness.svc_ip(0, 0)]

    def answered_in_full():
        reply = harness.udp_exchange(server.port, harness.make_query(SVC0), timeout=0.1)
        return reply is not None and not dns.message.from_wire(reply).flags & dns.flags.TC

    # The bucket refills at the rate: a full answer again within about 1/rate seconds.
    harness.wait_until(answered_in_full, 1, "a full answer after the burst")
