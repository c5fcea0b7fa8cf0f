# Readyns' cache seen from outside: hits, TTL countdown and clamps, negative caching, coalescing.
import socket
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

import harness
from harness import tcp, udp

SVC0 = "svc0.ns0.svc.cluster.local"
MISSING = "missing.ns0.svc.cluster.local"

# Its SOA TTL is long but MINIMUM is 1 s: the negative TTL must come from MINIMUM (RFC 2308).
SHORT_NEG_ZONE = "\n".join([
    "$ORIGIN neg.test.",
    "@ 3600 IN SOA ns.neg.test. hostmaster.neg.test. 1 7200 3600 86400 1",
    "@ 3600 IN NS ns",
    "ns 3600 IN A 10.0.0.53",
]) + "\n"


def soa_ttls(msg):
    return [rrset.ttl for rrset in msg.authority if rrset.rdtype == dns.rdatatype.SOA]


def test_repeat_query_served_from_cache(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    first = udp(server.port, harness.make_query(SVC0))
    second = udp(server.port, harness.make_query(SVC0))
    third = tcp(server.port, harness.make_query(SVC0))
    for msg in (first, second, third):
        assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)]
    assert upstream.count(SVC0) == 1


def test_cache_key_ignores_case(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    for name in ("svc3.ns0.svc.cluster.local", "SVC3.NS0.SVC.CLUSTER.LOCAL", "sVc3.nS0.svc.cluster.local"):
        assert harness.answer_addresses(udp(server.port, harness.make_query(name))) == [harness.svc_ip(0, 3)]
    assert upstream.count("svc3.ns0.svc.cluster.local") == 1


def test_case_folding_only_for_ascii_letters(fault, readyns):
    # Bytes that differ only in bit 0x20 but are not A-Z/a-z are different names (RFC 4343):
    # '@' and '`', '[' and '{', 0xC1 and 0xE1. Folding them would mix up cache entries.
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    suffix = dns.name.from_text("ns0.svc.cluster.local").labels
    for pair in ((b"a@b", b"a`b"), (b"a[b", b"a{b"), (b"a\xc1b", b"a\xe1b")):
        for label in pair:
            name = dns.name.Name((label,) + suffix)
            query = harness.make_query(name)
            msg = udp(server.port, query)
            assert msg.rcode() == dns.rcode.NXDOMAIN, label
            assert msg.question[0].name.labels[0] == label
            assert upstream.count(name.to_text()) == 1, f"{label!r} was answered from another name's entry"


def test_cache_key_includes_type(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    a = udp(server.port, harness.make_query("www.example.org", "A"))
    aaaa = udp(server.port, harness.make_query("www.example.org", "AAAA"))
    assert harness.rrsets_text(a.answer) == [("www.example.org.", "A", ["192.0.2.10"])]
    assert harness.rrsets_text(aaaa.answer) == [("www.example.org.", "AAAA", ["2001:db8::10"])]
    assert upstream.count("www.example.org") == 2


def test_ttl_counts_down(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    first = udp(server.port, harness.make_query(SVC0)).answer[0].ttl
    time.sleep(2.1)  # the TTL must visibly age; nothing to sync on but the clock
    second = udp(server.port, harness.make_query(SVC0)).answer[0].ttl
    assert first <= 30
    assert first - second >= 2, f"TTL {first} then {second} after 2.1 s"
    assert upstream.count(SVC0) == 1


def test_max_ttl_clamps_and_expires(fault, readyns):
    upstream = fault("ok")
    long_name = "long.ns0.svc.cluster.local"  # zone TTL 300
    server = readyns(upstreams=[upstream.port])
    assert udp(server.port, harness.make_query(long_name)).answer[0].ttl <= harness.DEFAULT_MAX_TTL
    assert udp(server.port, harness.make_query("www.example.org")).answer[0].ttl <= harness.DEFAULT_MAX_TTL

    short = readyns(upstreams=[upstream.port], args=["--max-ttl", "1"])
    upstream.reset()
    assert udp(short.port, harness.make_query(long_name)).answer[0].ttl <= 1
    time.sleep(1.5)  # past the clamped lifetime
    assert udp(short.port, harness.make_query(long_name)).answer[0].ttl <= 1
    assert upstream.count(long_name) == 2, "entry outlived --max-ttl"


def test_min_ttl_raises_short_ttls(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--min-ttl", "10"])
    name = "short.ns0.svc.cluster.local"  # zone TTL 2
    ttl = udp(server.port, harness.make_query(name)).answer[0].ttl
    assert 9 <= ttl <= 10


def test_nxdomain_cached_with_clamped_soa_ttl(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    for attempt in ("miss", "hit"):
        msg = udp(server.port, harness.make_query(MISSING))
        assert msg.rcode() == dns.rcode.NXDOMAIN, attempt
        ttls = soa_ttls(msg)
        assert ttls and all(t <= harness.DEFAULT_NEG_TTL for t in ttls), f"{attempt}: SOA TTLs {ttls}"
    assert upstream.count(MISSING) == 1


def test_nodata_cached_with_clamped_soa_ttl(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    for attempt in ("miss", "hit"):
        msg = udp(server.port, harness.make_query(SVC0, "AAAA"))
        assert msg.rcode() == dns.rcode.NOERROR, attempt
        assert not msg.answer, attempt
        ttls = soa_ttls(msg)
        assert ttls and all(t <= harness.DEFAULT_NEG_TTL for t in ttls), f"{attempt}: SOA TTLs {ttls}"
    assert upstream.count(SVC0) == 1


def test_cname_chain_ending_in_nodata_cached_as_denial(fault, readyns):
    """RFC 2308 2.2: the chain's CNAMEs live no longer than the denial, and its SOA counts down."""
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    name = "chain1.ns0.svc.cluster.local"
    first = udp(server.port, harness.make_query(name, "AAAA"))
    assert first.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in first.answer] == [dns.rdatatype.CNAME] * 3
    time.sleep(1.1)  # a whole second passes on the cache's clock
    hit = udp(server.port, harness.make_query(name, "AAAA"))
    assert upstream.count(name) == 1
    for attempt, msg in (("miss", first), ("hit", hit)):
        ttls = [rrset.ttl for rrset in msg.answer + msg.authority]
        assert soa_ttls(msg) and all(t <= harness.DEFAULT_NEG_TTL for t in ttls), f"{attempt}: {ttls}"
    assert soa_ttls(hit)[0] < soa_ttls(first)[0], "the served SOA's TTL did not count down"


def test_neg_ttl_clamps_and_expires(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--neg-ttl", "1"])
    msg = udp(server.port, harness.make_query(MISSING))
    assert all(t <= 1 for t in soa_ttls(msg))
    time.sleep(1.5)  # past the clamped negative lifetime
    assert udp(server.port, harness.make_query(MISSING)).rcode() == dns.rcode.NXDOMAIN
    assert upstream.count(MISSING) == 2, "denial outlived --neg-ttl"


def test_negative_ttl_from_soa_minimum(fault, readyns):
    zones = {"neg.test": SHORT_NEG_ZONE}
    upstream = fault("ok", zones=zones)
    server = readyns(upstreams=[upstream.port], args=["--neg-ttl", "60"])
    name = "nothing.neg.test"
    msg = udp(server.port, harness.make_query(name))
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert soa_ttls(msg) and all(t <= 1 for t in soa_ttls(msg)), f"SOA TTLs {soa_ttls(msg)}, MINIMUM is 1"
    assert udp(server.port, harness.make_query(name)).rcode() == dns.rcode.NXDOMAIN
    assert upstream.count(name) == 1
    time.sleep(1.5)  # past the SOA MINIMUM
    udp(server.port, harness.make_query(name))
    assert upstream.count(name) == 2, "denial outlived its SOA MINIMUM"


def test_servfail_not_cached(fault, readyns):
    upstream = fault("servfail")
    server = readyns(upstreams=[upstream.port], args=["--upstream-timeout", "300", "--resolve-timeout", "1000"])
    assert udp(server.port, harness.make_query(SVC0)).rcode() == dns.rcode.SERVFAIL
    failed = upstream.count(SVC0)
    upstream.mode = "ok"
    msg = udp(server.port, harness.make_query(SVC0))
    assert harness.answer_addresses(msg) == [harness.svc_ip(0, 0)]
    assert upstream.count(SVC0) > failed


def test_cache_size_bounds_entries(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--cache-size", "2"])
    names = [f"svc{n}.ns{ns}.svc.cluster.local" for ns in range(2) for n in range(10)]
    for _ in range(2):
        for name in names:
            udp(server.port, harness.make_query(name))
    # At most 2 of the 20 answers can still be cached when they are asked again.
    assert upstream.count() >= len(names) * 2 - 2


def test_concurrent_misses_coalesce(fault, readyns):
    upstream = fault("delay:300")
    server = readyns(upstreams=[upstream.port])
    socks = []
    try:
        queries = []
        for i in range(30):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((harness.HOST, server.port))
            socks.append(s)
            queries.append(harness.make_query(SVC0, qid=2000 + i))
        for s, q in zip(socks, queries):
            s.send(q.to_wire())
        answers = [dns.message.from_wire(s.recv(65535)) for s in socks]
    finally:
        for s in socks:
            s.close()
    for q, a in zip(queries, answers):
        assert a.id == q.id
        assert harness.answer_addresses(a) == [harness.svc_ip(0, 0)]
    assert upstream.count(SVC0) == 1, f"{upstream.count(SVC0)} upstream queries for 30 identical misses"
