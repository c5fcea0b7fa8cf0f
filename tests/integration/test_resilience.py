# Readyns when upstreams fail or lag: serve-stale, prefetch, health probes, and coalescing.
#
# Serve-stale as in RFC 8767; coalescing across worker threads.
import socket
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import pytest

import harness
from harness import udp

SVC0 = "svc0.ns0.svc.cluster.local"


def ask_many(port, name, count, first_id):
    """Sends `count` identical queries from distinct sockets at once; returns the answers."""
    socks, queries = [], []
    try:
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((harness.HOST, port))
            socks.append(s)
            queries.append(harness.make_query(name, qid=first_id + i))
        for s, q in zip(socks, queries):
            s.send(q.to_wire())
        return queries, [dns.message.from_wire(s.recv(65535)) for s in socks]
    finally:
        for s in socks:
            s.close()


def cached_then_expired(upstream, readyns, *args, fresh_hits=0):
    """Starts readyns on `upstream` with --max-ttl 1 and `args`, has it cache SVC0's answer (asked
    1 + `fresh_hits` times while fresh) and lets that expire; returns the server."""
    server = readyns(upstreams=[upstream.port], args=["--max-ttl", "1", *args])
    for _ in range(1 + fresh_hits):
        assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    time.sleep(1.2)  # the entry's TTL (clamped to 1 s) runs out: only time can do that
    return server


def test_identical_misses_coalesce_across_worker_threads(fault, readyns):
    upstream = fault("delay:300")
    server = readyns(upstreams=[upstream.port], args=["--threads", "2"])
    # 30 source ports spread over both workers' SO_REUSEPORT sockets.
    queries, answers = ask_many(server.port, SVC0, 30, 3000)
    for q, a in zip(queries, answers):
        assert a.id == q.id
        assert harness.answer_addresses(a) == [harness.svc_ip(0, 0)]
    assert upstream.count(SVC0) == 1, f"{upstream.count(SVC0)} upstream queries across 2 workers"


def test_expired_answer_served_when_upstream_drops(fault, readyns):
    upstream = fault("ok")
    server = cached_then_expired(upstream, readyns, "--upstream-timeout", "300")
    upstream.mode = "drop"
    start = time.monotonic()
    answer = udp(server.port, harness.make_query(SVC0), timeout=4)
    took = time.monotonic() - start
    assert answer.rcode() == dns.rcode.NOERROR
    assert harness.answer_addresses(answer) == [harness.svc_ip(0, 0)]
    assert all(rrset.ttl == 30 for rrset in answer.answer), "RFC 8767: stale answers carry TTL 30"
    assert 1.5 <= took < 2.5, f"stale answer after {took:.2f}s, expected the 1.8 s client timer"


def test_expired_answer_served_at_once_when_upstream_fails(fault, readyns):
    upstream = fault("ok")
    server = cached_then_expired(upstream, readyns)
    upstream.mode = "servfail"
    start = time.monotonic()
    answer = udp(server.port, harness.make_query(SVC0))
    assert time.monotonic() - start < 1.0, "every upstream failed: no reason to wait"
    assert harness.answer_addresses(answer) == [harness.svc_ip(0, 0)]


def test_no_stale_answer_without_an_expired_entry(fault, readyns):
    upstream = fault("servfail")
    server = readyns(upstreams=[upstream.port])
    assert udp(server.port, harness.make_query(SVC0)).rcode() == dns.rcode.SERVFAIL


def test_popular_entry_is_refreshed_before_it_expires(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--max-ttl", "10", "--prefetch"])
    udp(server.port, harness.make_query(SVC0))
    assert upstream.count(SVC0) == 1
    time.sleep(9.1)  # into the last tenth of the 10 s TTL
    answer = udp(server.port, harness.make_query(SVC0))
    assert harness.answer_addresses(answer) == [harness.svc_ip(0, 0)]  # served from cache
    harness.wait_until(lambda: upstream.count(SVC0) == 2, 2, "the background refresh")
    time.sleep(1.2)  # past the original expiry: the refreshed entry answers, no miss
    answer = udp(server.port, harness.make_query(SVC0))
    assert answer.answer[0].ttl > 5, "the refreshed entry's TTL starts again from 10"
    assert upstream.count(SVC0) == 2


def test_failed_upstream_is_probed_before_it_gets_traffic_back(fault, readyns):
    bad, good = fault("drop"), fault("ok")
    server = readyns(upstreams=[bad.port, good.port], args=["--upstream-timeout", "200"])
    # The first miss tries `bad`, times out, and gets its answer from `good`.
    assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    assert bad.count(SVC0) == 1
    bad.mode = "ok"
    bad.reset()
    # Within its back-off, misses skip `bad` without waiting for it.
    start = time.monotonic()
    udp(server.port, harness.make_query("svc1.ns0.svc.cluster.local"))
    assert time.monotonic() - start < 0.15
    assert bad.count() == 0
    # After the back-off, the next miss sends `bad` a probe (the zone's SOA), not the query.
    time.sleep(1.1)
    udp(server.port, harness.make_query("svc2.ns0.svc.cluster.local"))
    harness.wait_until(lambda: bad.count() >= 1, 2, "a probe to the recovered upstream")
    first = bad.seen()[0]
    assert first.qtype == "SOA", f"first query to a recovering upstream was {first}"


@pytest.mark.parametrize("option", ["--stale-max", "--stale-answer-timeout"])
def test_zero_turns_serve_stale_off(fault, readyns, option):
    upstream = fault("ok")
    server = cached_then_expired(upstream, readyns, option, "0")
    upstream.mode = "servfail"  # every upstream failed: the case that would serve stale at once
    assert udp(server.port, harness.make_query(SVC0)).rcode() == dns.rcode.SERVFAIL


def stale_counts(metrics_port):
    """(readyns_stale_answers_total, coredns_cache_served_stale_total): one count, two names."""
    text = harness.scrape(metrics_port)
    return (harness.metric(text, "readyns_stale_answers_total"),
            harness.metric(text, "coredns_cache_served_stale_total"))


def test_stale_answers_are_counted(fault, readyns):
    upstream = fault("ok")
    metrics = harness.free_port()
    server = cached_then_expired(upstream, readyns, f"--metrics={harness.HOST}:{metrics}", fresh_hits=1)
    assert stale_counts(metrics) == (0, 0)  # a miss and a fresh hit: neither is stale
    upstream.mode = "servfail"
    for expected in (1, 2):
        answer = udp(server.port, harness.make_query(SVC0))
        assert harness.answer_addresses(answer) == [harness.svc_ip(0, 0)]
        assert answer.answer[0].ttl == 30  # stale, as RFC 8767 marks it
        assert stale_counts(metrics) == (expected, expected)
    # An answer that failed without a stale entry is no stale answer.
    assert udp(server.port, harness.make_query("svc1.ns0.svc.cluster.local")).rcode() == dns.rcode.SERVFAIL
    assert stale_counts(metrics) == (2, 2)


def test_stale_answer_timeout_then_the_refresh_fills_the_cache(fault, readyns):
    # A slow first answer (700 ms) sets the adaptive attempt timeout to 4 x RTT + 100 = 2.9 s (of
    # at most 3 s): the refresh below is one attempt, not retries every 250 ms.
    upstream = fault("delay:700")
    server = cached_then_expired(upstream, readyns, "--stale-answer-timeout", "500", "--upstream-timeout", "3000")
    upstream.mode = "hold"  # the refresh reaches the upstream, which answers only on release()
    start = time.monotonic()
    answer = udp(server.port, harness.make_query(SVC0), timeout=4)
    took = time.monotonic() - start
    assert harness.answer_addresses(answer) == [harness.svc_ip(0, 0)]
    assert answer.answer[0].ttl == 30
    # The 500 ms timeout (checked every 100 ms), not the 1.8 s default.
    assert 0.45 <= took < 1.0, f"stale answer after {took:.2f}s, expected about 0.5 s"
    assert upstream.count(SVC0) == 2

    # The upstream has new data by the time it answers the refresh that is still in flight.
    new_ip = "10.96.77.7"
    zone = next(z for z in upstream.zones if z.origin.to_text() == "cluster.local.")
    zone.replace_rdataset(dns.name.from_text(SVC0), dns.rdataset.from_text("IN", "A", 30, new_ip))
    upstream.mode = "ok"
    assert upstream.release() == 1
    # The refresh's answer is in the cache: the next client gets it fresh (the 1 s clamp, not the
    # stale 30), with no further upstream query and no stale wait.
    start = time.monotonic()
    answer = udp(server.port, harness.make_query(SVC0))
    assert time.monotonic() - start < 0.3
    assert harness.answer_addresses(answer) == [new_ip]
    assert answer.answer[0].ttl <= 1
    assert upstream.count(SVC0) == 2
