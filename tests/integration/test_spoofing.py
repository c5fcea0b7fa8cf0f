# Cache poisoning by forged upstream answers: floods of them while a miss is open.
#
# They prove that only the answer from the right address and port, with the right ID and question,
# is believed.
#
# An off-path attacker can make readyns miss (by asking) and knows the upstream's address, port and
# the question; it must guess the query's source port and ID. The tests are told both by the
# upstream and send every near miss: if only an exact match gets in, the attacker's odds are one
# in 65536 per port it might be on, each query a new draw.
#
# readyns's upstream sockets are connected, each to one server: the kernel throws away a datagram
# from any other address or port before readyns could read it (counted in the kernel's UDP
# NoPorts), and readyns checks the source again itself (readyns_upstream_refused_replies_total
# with reason "source"). Forgeries from the right source reach readyns and are refused by ID or
# question.
import random
import select
import socket
import struct

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

import harness
from fault_upstream import FORGED_A
from harness import metric, udp

TARGET = "svc7.ns2.svc.cluster.local"
REAL_A = harness.svc_ip(2, 7)
BURST = 200  # forged datagrams in flight at once: well inside a socket's receive buffer
SPOOFED_SOURCE = "127.0.0.2"  # another host as far as readyns can tell (sent raw, never bound)


class OpenMiss:
    """readyns waiting on the upstream for TARGET, with what an attacker would aim at."""

    def __init__(self, fault, readyns):
        self.upstream = fault("hold")
        self.warm = warm = fault("ok")
        self.metrics_port = harness.free_port()
        # Long upstream timers: the whole flood lands within one attempt, and no retry (on
        # another port, with another ID) muddles what was aimed at. The attempt timer shrinks to
        # a few RTTs once a server has answered, so TARGET's upstream gets no query before it.
        self.server = readyns(upstreams=[warm.port], forward=[("cluster.local", [self.upstream.port])],
                              args=["--upstream-timeout", "30000", "--resolve-timeout", "40000",
                                    f"--metrics=127.0.0.1:{self.metrics_port}"])
        # Misses on other names open readyns's pool of upstream sockets: more ports to aim at.
        for n in range(30):
            udp(self.server.port, harness.make_query(f"warm{n}.example.org"))
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.connect((harness.HOST, self.server.port))
        self.query = harness.make_query(TARGET)
        self.client.send(self.query.to_wire())
        harness.wait_until(lambda: self.upstream.count(TARGET) == 1, 5, "the miss to reach the upstream")
        self.seen = self.upstream.seen(TARGET)[0]
        self.ports = sorted(set(harness.udp_sockets(self.server.pid)) - {self.server.port})
        # Which server each upstream socket is connected to: an attacker aiming at a port sends as
        # that server, or the kernel drops its datagrams unread.
        self.peers = harness.udp_peers(self.server.pid)
        assert self.seen.qtype == "A" and self.seen.transport == "udp"
        assert self.seen.src_port in self.ports
        assert self.peers[self.seen.src_port] == self.upstream.port
        self.drops_before = self.drops()

    def close(self):
        self.client.close()

    def drops(self):
        return sum(drops for _, drops in harness.udp_sockets(self.server.pid).values())

    def server_socket(self, port):
        """The socket of the server that readyns's upstream socket at `port` is connected to."""
        return {self.upstream.port: self.upstream.udp, self.warm.port: self.warm.udp}[self.peers[port]]

    def refused(self, reason):
        return metric(harness.scrape(self.metrics_port), "readyns_upstream_refused_replies_total", reason=reason)

    def forged_answer(self, qname=None, rdtype=dns.rdatatype.A):
        """A reply to the query as the upstream saw it (ID 0 for now) that says TARGET is FORGED_A."""
        name = dns.name.from_text(qname or self.seen.qname)
        resp = dns.message.make_response(dns.message.make_query(name, rdtype, id=0), recursion_available=True)
        resp.answer.append(dns.rrset.from_text(name, 300, "IN", "A", FORGED_A))
        return resp.to_wire()

    def flood(self, sock, port, ids, wire):
        """Sends `wire` under each of `ids` from `sock` to readyns's `port`, in bursts that readyns
        reads in full before the next (so none is lost to a full buffer and left unjudged)."""
        ids = list(ids)
        packet = bytearray(wire)
        for start in range(0, len(ids), BURST):
            for qid in ids[start:start + BURST]:
                packet[0:2] = struct.pack("!H", qid)
                sock.sendto(packet, (harness.HOST, port))
            self.wait_read(port)
        return len(ids)

    def wait_read(self, port):
        harness.wait_until(lambda: harness.udp_sockets(self.server.pid).get(port, (0, 0))[0] == 0, 10,
                           f"readyns to read the forgeries sent to port {port}", interval=0.002)

    def still_unanswered(self):
        return not select.select([self.client], [], [], 0)[0]

    def finish(self):
        """Lets the real answer go; checks the client's answer and the cached one are real."""
        assert self.still_unanswered(), "a forgery ended the miss"
        assert self.upstream.release() == 1
        self.upstream.mode = "ok"
        self.client.settimeout(5)
        answer = dns.message.from_wire(self.client.recv(65535))
        assert answer.id == self.query.id
        assert harness.answer_addresses(answer) == [REAL_A]
        for transport in (harness.udp, harness.tcp):
            cached = transport(self.server.port, harness.make_query(TARGET))
            assert harness.answer_addresses(cached) == [REAL_A], transport.__name__
        assert self.upstream.count(TARGET) == 1, "answered from the cache, after one upstream query"
        assert self.drops() == self.drops_before, "forgeries lost before readyns judged them"


@pytest.fixture
def open_miss(fault, readyns):
    miss = OpenMiss(fault, readyns)
    yield miss
    miss.close()


def test_forged_answer_flood_during_a_miss_is_never_believed(open_miss):
    m = open_miss
    wire = m.forged_answer()
    id_before, source_before = m.refused("id"), m.refused("source")
    # An attacker who spoofs the upstream's address and port perfectly (here: sends from the
    # upstream's own socket) and has found the query's port: every ID but the right one.
    sent_wrong_id = m.flood(m.upstream.udp, m.seen.src_port, (i for i in range(65536) if i != m.seen.id), wire)
    # The right ID, and random others, at every other port readyns has open toward upstreams, each
    # from the server that port is connected to.
    for port in m.ports:
        if port != m.seen.src_port:
            sent_wrong_id += m.flood(m.server_socket(port), port, [m.seen.id] + random.sample(range(65536), 255), wire)
    # The right ID and question at the right port, from another port of the upstream's host.
    no_ports_before = harness.udp_no_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((harness.HOST, 0))
        sent_wrong_source = m.flood(other, m.seen.src_port, [m.seen.id] * 50, wire)
    no_ports = harness.udp_no_ports() - no_ports_before
    # Everything right but the question: a name one letter off, and the right name's AAAA.
    first = m.seen.qname.split(".", 1)
    near_name = ("x" if first[0][0] != "x" else "y") + first[0][1:] + "." + first[1]
    m.flood(m.upstream.udp, m.seen.src_port, [m.seen.id], m.forged_answer(near_name))
    m.flood(m.upstream.udp, m.seen.src_port, [m.seen.id], m.forged_answer(rdtype=dns.rdatatype.AAAA))

    harness.wait_until(lambda: m.refused("id") - id_before == sent_wrong_id, 5,
                       f"readyns to refuse all {sent_wrong_id} forgeries with a wrong ID")
    # Each was refused by the kernel (the socket is connected to the upstream's port) or by readyns.
    assert no_ports + (m.refused("source") - source_before) >= sent_wrong_source
    m.finish()
    for qname in (near_name, TARGET):
        assert FORGED_A not in harness.answer_addresses(udp(m.server.port, harness.make_query(qname)))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_udp(src, src_port, dst, dst_port, payload):
    """An IPv4 datagram with any source address: what an off-path forger puts on the wire."""
    src_ip, dst_ip = socket.inet_aton(src), socket.inet_aton(dst)
    length = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    header = struct.pack("!HHHH", src_port, dst_port, length, 0)
    header = header[:6] + struct.pack("!H", checksum(pseudo + header + payload) or 0xFFFF)
    # Length and header checksum are filled in by the kernel.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, src_ip, dst_ip)
    return ip + header + payload


def test_right_answer_from_a_spoofed_address_is_not_believed(open_miss):
    m = open_miss
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        pytest.skip("sending from a forged source address needs CAP_NET_RAW")
    source_before, no_ports_before = m.refused("source"), harness.udp_no_ports()
    wire = bytearray(m.forged_answer())
    wire[0:2] = struct.pack("!H", m.seen.id)
    # Right ID, question and upstream port, to the right port: only the address is wrong.
    with raw:
        for _ in range(20):
            raw.sendto(raw_udp(SPOOFED_SOURCE, m.upstream.port, harness.HOST, m.seen.src_port, bytes(wire)),
                       (harness.HOST, 0))
    m.wait_read(m.seen.src_port)
    # Refused by the kernel (the socket is connected to the upstream's address) or by readyns.
    harness.wait_until(lambda: harness.udp_no_ports() - no_ports_before + m.refused("source") - source_before >= 20,
                       5, "the answers from the spoofed address to be refused")
    m.finish()
