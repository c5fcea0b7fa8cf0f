# Wire-protocol behaviour of readyns toward clients, with a real knotd as the upstream.
import random
import socket
import struct
import time

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import pytest

import harness
from harness import EDNS_SIZE, tcp, udp, udp_exchange

SVC0 = "svc0.ns0.svc.cluster.local"
BIG = "big.ns0.svc.cluster.local"
BIGTXT = "bigtxt.ns0.svc.cluster.local"


@pytest.fixture
def server(knot, readyns):
    return readyns(upstreams=[knot.port])


def question_bytes(wire):
    """The raw question section of a one-question message: name, type and class."""
    end = 12
    while wire[end]:
        end += 1 + wire[end]
    return wire[12:end + 5]


def exchange(port, query, transport):
    if transport == "udp":
        wire = udp_exchange(port, query)
        assert wire is not None, "no UDP reply"
        return wire
    with harness.tcp_connect(port) as s:
        harness.tcp_send(s, query)
        return harness.tcp_recv(s)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_header_and_question_echo(server, transport):
    # Mixed case must survive byte for byte: some stub resolvers (and 0x20 clients) check it.
    # RD=0 is asked last, once the answer is cached, since a cache need not recurse for it.
    for attempt, rd in (("miss", True), ("hit", True), ("hit without RD", False)):
        query = harness.make_query("SvC0.Ns0.svc.CLUSTER.local", rd=rd)
        wire = exchange(server.port, query, transport)
        msg = dns.message.from_wire(wire)
        assert msg.id == query.id, attempt
        assert msg.flags & dns.flags.QR, attempt
        assert msg.flags & dns.flags.RA, attempt
        assert bool(msg.flags & dns.flags.RD) == rd, attempt
        assert msg.opcode() == dns.opcode.QUERY
        assert msg.rcode() == dns.rcode.NOERROR, attempt
        assert question_bytes(wire) == question_bytes(query.to_wire()), attempt
        assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)], attempt


def test_cache_hit_echoes_each_askers_case(server):
    first = harness.make_query("svc1.ns0.svc.cluster.local")
    udp(server.port, first)
    second = harness.make_query("SVC1.NS0.SVC.cluster.LOCAL")
    wire = udp_exchange(server.port, second)
    assert question_bytes(wire) == question_bytes(second.to_wire())


def test_cname_chain_as_upstream_gave_it(server, knot):
    name = "chain1.ns0.svc.cluster.local"
    direct = udp(knot.port, harness.make_query(name))
    via = udp(server.port, harness.make_query(name))
    assert via.rcode() == dns.rcode.NOERROR
    ordered = [(r.name.to_text().lower(), r.rdtype, sorted(x.to_text() for x in r)) for r in via.answer]
    expected = [(r.name.to_text().lower(), r.rdtype, sorted(x.to_text() for x in r)) for r in direct.answer]
    assert ordered == expected
    assert len(expected) == 4


@pytest.mark.parametrize("qname,qtype", [
    ("svc3.ns2.svc.cluster.local", "A"),
    ("hl0.ns0.svc.cluster.local", "A"),
    ("10-244-1-3.hl0.ns0.svc.cluster.local", "A"),
    ("_http._tcp.svc3.ns1.svc.cluster.local", "SRV"),
    ("_http._tcp.hl0.ns0.svc.cluster.local", "SRV"),
    ("anything.wild.ns0.svc.cluster.local", "A"),
    ("www.example.org", "AAAA"),
    ("txt.example.org", "TXT"),
    ("ext.ns0.svc.cluster.local", "CNAME"),
    ("missing.ns0.svc.cluster.local", "A"),
    ("svc0.ns0.svc.cluster.local", "AAAA"),
    ("ns0.svc.cluster.local", "A"),
])
def test_same_records_as_upstream(server, knot, qname, qtype):
    direct = udp(knot.port, harness.make_query(qname, qtype, edns=0))
    via = udp(server.port, harness.make_query(qname, qtype, edns=0))
    assert via.rcode() == direct.rcode()
    assert harness.rrsets_text(via.answer) == harness.rrsets_text(direct.answer)
    assert all(rr.ttl <= harness.DEFAULT_MAX_TTL for rr in via.answer)
    if not direct.answer:
        # Downstream caches need the SOA to cache the denial themselves (RFC 2308).
        assert harness.rrsets_text(via.authority) == harness.rrsets_text(direct.authority)
        assert all(rr.ttl <= harness.DEFAULT_NEG_TTL for rr in via.authority)


# --- EDNS ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_edns_answer_advertises_our_size(server, transport):
    for attempt in ("miss", "hit"):
        query = harness.make_query(SVC0, edns=0, payload=4096)
        msg = dns.message.from_wire(exchange(server.port, query, transport))
        assert msg.edns == 0, attempt
        assert msg.payload == EDNS_SIZE, attempt
        assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_no_opt_without_edns(server, transport):
    for attempt in ("miss", "hit"):
        query = harness.make_query(SVC0)
        wire = exchange(server.port, query, transport)
        msg = dns.message.from_wire(wire)
        assert msg.edns == -1, attempt
        assert struct.unpack("!H", wire[10:12])[0] == 0, f"ARCOUNT on {attempt}"
        assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_unknown_edns_version_gets_badvers(server, transport):
    query = harness.make_query(SVC0, edns=0, edns_version=1)
    msg = dns.message.from_wire(exchange(server.port, query, transport))
    assert msg.id == query.id
    assert msg.rcode() == dns.rcode.BADVERS
    assert msg.edns == 0, "BADVERS must name the version we speak"
    assert not msg.answer


# --- truncation -----------------------------------------------------------------------------------

def test_big_answer_truncated_over_plain_udp(server):
    for attempt in ("miss", "hit"):
        query = harness.make_query(BIG)
        wire = udp_exchange(server.port, query)
        assert wire is not None
        assert len(wire) <= 512, attempt
        msg = dns.message.from_wire(wire)
        assert msg.id == query.id
        assert msg.flags & dns.flags.TC, attempt
        assert question_bytes(wire) == question_bytes(query.to_wire())


def test_big_answer_truncated_for_small_edns_buffer(server):
    wire = udp_exchange(server.port, harness.make_query(BIG, edns=0, payload=512))
    assert len(wire) <= 512
    assert dns.message.from_wire(wire).flags & dns.flags.TC


def test_big_answer_complete_over_tcp(server):
    for attempt in ("miss", "hit"):
        msg = tcp(server.port, harness.make_query(BIG))
        assert not msg.flags & dns.flags.TC, attempt
        assert harness.answer_addresses(msg) == sorted(harness.big_a_ips()), attempt


def test_big_answer_fits_large_edns_buffer(server):
    for attempt in ("miss", "hit"):
        msg = udp(server.port, harness.make_query(BIG, edns=0, payload=4096))
        assert not msg.flags & dns.flags.TC, attempt
        assert harness.answer_addresses(msg) == sorted(harness.big_a_ips()), attempt


def test_answer_cached_for_one_client_sized_for_the_next(server):
    # The cache is shared between transports and buffer sizes: what fit a TCP or EDNS client
    # must still be truncated for a plain UDP one, and the reverse.
    assert len(tcp(server.port, harness.make_query(BIG)).answer[0]) == harness.BIG_A_COUNT
    plain = udp(server.port, harness.make_query(BIG))
    assert plain.flags & dns.flags.TC
    assert plain.edns == -1
    roomy = udp(server.port, harness.make_query(BIG, edns=0, payload=4096))
    assert not roomy.flags & dns.flags.TC
    assert harness.answer_addresses(roomy) == sorted(harness.big_a_ips())


def test_udp_answers_no_bigger_than_we_advertise(server):
    # A client offering 4096 still gets no UDP answer over 1232 bytes (DNS flag day 2020): such
    # an answer would be fragmented on the way. It gets TC and asks over TCP.
    for attempt in ("miss", "hit"):
        wire = udp_exchange(server.port, harness.make_query(BIGTXT, "TXT", edns=0, payload=4096))
        assert wire is not None, attempt
        assert len(wire) <= EDNS_SIZE, attempt
        assert dns.message.from_wire(wire).flags & dns.flags.TC, attempt


def test_answer_bigger_than_edns_udp_complete_over_tcp(server):
    # Knot truncates this 3 KB set over UDP even at 1232, so readyns must fetch it over TCP.
    msg = tcp(server.port, harness.make_query(BIGTXT, "TXT", edns=0))
    assert msg.rcode() == dns.rcode.NOERROR
    assert not msg.flags & dns.flags.TC
    strings = sorted(s.decode() for rrset in msg.answer for r in rrset for s in r.strings)
    assert strings == sorted(harness.big_txt_strings())


def test_longest_legal_name(server, knot):
    # 255 bytes on the wire, the most a name may have: exercises every name buffer's bound.
    labels = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 47, b"cluster", b"local", b""]
    name = dns.name.Name(labels)
    assert len(name.to_wire()) == 255
    for transport in ("udp", "tcp"):
        query = harness.make_query(name)
        wire = exchange(server.port, query, transport)
        msg = dns.message.from_wire(wire)
        assert msg.rcode() == udp(knot.port, harness.make_query(name)).rcode() == dns.rcode.NXDOMAIN
        assert question_bytes(wire) == question_bytes(query.to_wire())


# --- TCP (RFC 7766) ---------------------------------------------------------------------------------

def test_several_queries_on_one_connection(server):
    with harness.tcp_connect(server.port) as s:
        for n in range(5):
            query = harness.make_query(f"svc{n}.ns1.svc.cluster.local")
            harness.tcp_send(s, query)
            msg = dns.message.from_wire(harness.tcp_recv(s))
            assert msg.id == query.id
            assert harness.answer_addresses(msg) == [harness.svc_ip(1, n)]


def test_pipelined_queries_all_answered(server):
    queries = {}
    for n in range(10):
        q = harness.make_query(f"svc{n}.ns2.svc.cluster.local", qid=1000 + n)
        queries[q.id] = (q, harness.svc_ip(2, n))
    with harness.tcp_connect(server.port) as s:
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q, _ in queries.values())))
        answers = [dns.message.from_wire(harness.tcp_recv(s)) for _ in queries]
    assert sorted(a.id for a in answers) == sorted(queries)
    for a in answers:
        query, ip = queries[a.id]
        assert a.question == query.question
        assert harness.answer_addresses(a) == [ip]


def test_pipelined_answers_go_out_as_they_complete(fault, readyns):
    # RFC 7766 6.2.1.1: a hit behind a slow miss on the same connection is not held back by it.
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    hit_name = "svc1.ns0.svc.cluster.local"
    udp(server.port, harness.make_query(hit_name))  # cached
    upstream.mode = "hold"  # the next miss waits for release()
    slow = harness.make_query(SVC0, qid=1)
    fast = harness.make_query(hit_name, qid=2)
    with harness.tcp_connect(server.port) as s:
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (slow.to_wire(), fast.to_wire())))
        first = dns.message.from_wire(harness.tcp_recv(s))
        assert first.id == fast.id, "the hit waited for the miss queued before it"
        harness.wait_until(lambda: upstream.count(SVC0) == 1, 5, "the miss at the upstream")
        assert upstream.release() == 1
        second = dns.message.from_wire(harness.tcp_recv(s))
    assert second.id == slow.id
    assert harness.answer_addresses(second) == [harness.svc_ip(0, 0)]


def test_query_split_across_tcp_segments(server):
    query = harness.make_query(SVC0).to_wire()
    framed = struct.pack("!H", len(query)) + query
    with harness.tcp_connect(server.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (framed[:1], framed[1:7], framed[7:]):
            s.sendall(piece)
            time.sleep(0.05)  # separate segments: the server must reassemble
        msg = dns.message.from_wire(harness.tcp_recv(s))
    assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)]


def seconds_until_closed(sock, limit):
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        return None
    assert data == b"", "unexpected data on an idle connection"
    return time.monotonic() - start


def test_tcp_idle_timeout(knot, readyns):
    server = readyns(upstreams=[knot.port], args=["--tcp-idle-timeout", "500"])
    with harness.tcp_connect(server.port) as s:
        harness.tcp_send(s, harness.make_query(SVC0))
        harness.tcp_recv(s)
        took = seconds_until_closed(s, 3)
    assert took is not None, "connection still open 3 s after the last answer"
    assert 0.3 <= took <= 1.5
    with harness.tcp_connect(server.port) as s:
        assert seconds_until_closed(s, 3) is not None, "silent connection never closed"
    with harness.tcp_connect(server.port) as s:
        # Frames too short to be queries get no answer, so they must not hold the connection.
        start = time.monotonic()
        s.settimeout(0.2)
        try:
            while time.monotonic() - start < 3:
                s.sendall(b"\x00\x00" if int(time.monotonic() * 5) % 2 else b"\x00\x05hello")
                try:
                    if s.recv(1) == b"":
                        break
                except socket.timeout:
                    pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        took = time.monotonic() - start
    assert took <= 1.5, f"unanswerable frames kept the connection open {took:.1f} s"


# --- malformed and unusual queries --------------------------------------------------------------

def with_header(wire, *, flags=None, qdcount=None):
    hdr = bytearray(wire[:12])
    if flags is not None:
        hdr[2:4] = struct.pack("!H", flags)
    if qdcount is not None:
        hdr[4:6] = struct.pack("!H", qdcount)
    return bytes(hdr) + wire[12:]


def assert_silent(port, wire, seconds=0.4):
    assert udp_exchange(port, wire, timeout=seconds) is None


def test_response_bit_set_gets_no_reply(server):
    query = harness.make_query(SVC0).to_wire()
    assert_silent(server.port, with_header(query, flags=0x8100))
    assert udp(server.port, harness.make_query(SVC0)).rcode() == dns.rcode.NOERROR


def assert_opt_as_asked(reply, edns):
    """RFC 6891 7: an answer to a query with an OPT carries one, whatever its RCODE."""
    assert struct.unpack("!H", reply[10:12])[0] == (1 if edns else 0), "ARCOUNT"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("qdcount", [0, 2])
@pytest.mark.parametrize("edns", [False, True])
def test_bad_question_count_gets_formerr(server, transport, qdcount, edns):
    query = harness.make_query(SVC0, edns=0 if edns else None)
    wire = query.to_wire()
    question_end = 12 + len(question_bytes(wire))
    if qdcount == 0:
        wire = with_header(wire[:12], qdcount=0) + wire[question_end:]
    else:
        second = question_bytes(harness.make_query("svc1.ns0.svc.cluster.local").to_wire())
        wire = with_header(wire[:question_end], qdcount=2) + second + wire[question_end:]
    reply = exchange(server.port, wire, transport)
    assert struct.unpack("!H", reply[:2])[0] == query.id
    assert reply[2] & 0x80, "QR"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    assert_opt_as_asked(reply, edns)


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE])
@pytest.mark.parametrize("edns", [False, True])
def test_other_opcodes_get_notimp(server, opcode, edns):
    query = harness.make_query("cluster.local", "SOA", edns=0 if edns else None)
    wire = with_header(query.to_wire(), flags=(opcode << 11) | 0x0100)
    reply = udp_exchange(server.port, wire)
    assert reply is not None
    assert struct.unpack("!H", reply[:2])[0] == query.id
    assert reply[2] & 0x80, "QR"
    assert (reply[2] >> 3) & 0x0F == opcode
    assert reply[3] & 0x0F == dns.rcode.NOTIMP
    assert_opt_as_asked(reply, edns)


def test_zone_transfer_refused(server):
    # A cache has no zone to transfer, and forwarding AXFR would turn it into an open relay.
    msg = tcp(server.port, harness.make_query("cluster.local", "AXFR"))
    assert msg.rcode() == dns.rcode.REFUSED
    assert not msg.answer


def malformed_packets(randoms=30):
    header = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    good = harness.make_query(SVC0, qid=0x1234).to_wire()
    with_ar = good[:10] + b"\x00\x01" + good[12:]
    opt_head = b"\x00" + b"\x00\x29" + b"\x10\x00" + b"\x00\x00\x00\x00"
    rng = random.Random(7)
    return [
        b"",
        b"\x12",
        header[:11],
        header,  # QDCOUNT=1 but no question
        header + b"\x3fabc",  # label runs past the end
        header + b"\xc0\x0c\x00\x01\x00\x01",  # compression pointer to itself
        header + b"\xc0\xff\x00\x01\x00\x01",  # compression pointer past the end
        header + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",  # name over 255 bytes
        header + b"\x04svc0\x00\x00",  # question cut inside the type
        header + b"\x04svc0\x40abc\x00\x00\x01\x00\x01",  # reserved label type 0x40
        good[:-1],
        with_ar,  # ARCOUNT=1 with no record
        with_ar + opt_head + b"\x00\x08\x00\x0a\x00\x02",  # OPT rdata past the end
        with_ar + opt_head + b"\x00\x04\x00\x0a\x00\x10",  # option past the OPT rdata
        good[:6] + b"\xff\xff\xff\xff\xff\xff" + good[12:],  # huge record counts
    ] + [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))) for _ in range(randoms)]


def test_malformed_udp_packets_do_not_hurt(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((harness.HOST, server.port))
        sent = malformed_packets()
        for packet in sent:
            s.send(packet)
        s.settimeout(0.5)
        replies = []
        try:
            while True:
                replies.append(s.recv(65535))
        except socket.timeout:
            pass
    # Any reply must at least be a response to what was sent (FORMERR or similar), never a query.
    for reply in replies:
        assert len(reply) >= 12 and reply[2] & 0x80, reply
    assert server.alive()
    assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]


def test_malformed_tcp_streams_do_not_hurt(server):
    streams = [
        b"\x00\x00",  # zero-length message
        b"\x00\x05abc",  # length longer than what follows, then EOF
        b"\x00\x03\x00\x00\x00",  # shorter than a header
        b"\xff\xff" + bytes(random.Random(3).randrange(256) for _ in range(65535)),
    ] + [struct.pack("!H", len(p)) + p for p in malformed_packets(randoms=3) if p]
    for stream in streams:
        with harness.tcp_connect(server.port) as s:
            try:
                s.sendall(stream)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(0.3)
                while s.recv(65535):
                    pass
            except (ConnectionResetError, BrokenPipeError, socket.timeout):
                pass
    assert server.alive()
    assert harness.answer_addresses(tcp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]


def test_client_gone_before_its_answer(server):
    # Writing an answer to a reset connection must not kill the daemon (EPIPE, not SIGPIPE).
    for n in range(5):
        with harness.tcp_connect(server.port) as s:
            harness.tcp_send(s, harness.make_query(f"svc{n}.ns2.svc.cluster.local"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with harness.tcp_connect(server.port) as s:
        queries = [harness.make_query(f"svc{n}.ns1.svc.cluster.local") for n in range(5)]
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Asking the same names again returns once their resolutions have finished, which is
    # when the answers for the reset connections were written.
    with harness.tcp_connect(server.port) as s:
        for ns in (1, 2):
            for n in range(5):
                harness.tcp_send(s, harness.make_query(f"svc{n}.ns{ns}.svc.cluster.local"))
                msg = dns.message.from_wire(harness.tcp_recv(s))
                assert harness.answer_addresses(msg) == [harness.svc_ip(ns, n)]
    assert server.alive()
