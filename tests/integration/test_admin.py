# The admin endpoints of the real daemon: /health, /ready and Prometheus /metrics.
#
# /metrics with CoreDNS's metric names.
import pytest

import harness
from fake_kube import FakeApi, endpoint, endpoint_slice
from harness import http_get, metric, samples, scrape, udp

SVC0 = "svc0.ns0.svc.cluster.local"
SVC1 = "svc1.ns0.svc.cluster.local"


def total(text, name):
    return sum(value for _, value in samples(text, name))


def test_health_ready_and_metrics(fault, readyns):
    upstream = fault("ok")
    health, metrics = harness.free_port(), harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--health=127.0.0.1:{health}",
                                                      f"--metrics=127.0.0.1:{metrics}", "--kube", "off"])
    assert http_get(health, "/health") == (200, "ok\n")
    assert http_get(health, "/ready")[0] == 200
    assert http_get(health, "/nope")[0] == 404
    udp(server.port, harness.make_query(SVC0))
    udp(server.port, harness.make_query(SVC0))
    text = scrape(metrics)
    assert metric(text, "coredns_dns_requests_total", proto="udp") == 2
    assert metric(text, "coredns_dns_responses_total", rcode="NOERROR") == 2
    assert metric(text, "coredns_cache_requests_total") == 2
    assert metric(text, "coredns_cache_hits_total") == 1
    assert metric(text, "coredns_cache_misses_total") == 1
    assert metric(text, "coredns_cache_entries") == 1
    assert 60 < metric(text, "readyns_cache_bytes") < 300  # one A answer and its entry's header
    assert metric(text, "coredns_forward_requests_total", to=upstream.addr) == 1
    assert metric(text, "coredns_forward_healthcheck_broken_total") == 0
    assert metric(text, "readyns_build_info", version=harness.PROJECT_VERSION) == 1


def test_not_ready_when_upstreams_fail_and_none_answered(fault, readyns):
    upstream = fault("drop")
    health = harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--health=127.0.0.1:{health}", "--metrics=",
                                                      "--upstream-timeout", "100", "--resolve-timeout", "300"])
    assert http_get(health, "/ready")[0] == 200  # nothing asked yet: no news is not bad news
    udp(server.port, harness.make_query(SVC0))
    harness.wait_until(lambda: http_get(health, "/ready")[0] == 503, 3, "/ready to turn 503")


def test_requests_and_durations_by_protocol_family_and_type(fault, readyns):
    upstream = fault("ok")
    metrics = harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--metrics=127.0.0.1:{metrics}", "--kube", "off"])
    for _ in range(3):
        udp(server.port, harness.make_query(SVC0))  # one miss, then two hits
    harness.tcp(server.port, harness.make_query(SVC0, "AAAA"))  # NODATA
    udp(server.port, harness.make_query("nope.ns0.svc.cluster.local", "TXT"))  # NXDOMAIN
    udp(server.port, harness.make_query(SVC1, "NAPTR"))  # a type CoreDNS counts as "other"
    text = scrape(metrics)

    ours = {"server": f"dns://127.0.0.1:{server.port}", "zone": ".", "view": ""}
    assert metric(text, "coredns_dns_requests_total", **ours, proto="udp", family="1", type="A") == 3
    assert metric(text, "coredns_dns_requests_total", **ours, proto="tcp", family="1", type="AAAA") == 1
    assert metric(text, "coredns_dns_requests_total", **ours, proto="udp", family="1", type="TXT") == 1
    assert metric(text, "coredns_dns_requests_total", **ours, proto="udp", family="1", type="other") == 1
    assert total(text, "coredns_dns_requests_total") == 6
    assert len(samples(text, "coredns_dns_requests_total")) == 4, "only series that saw a query"

    duration = "coredns_dns_request_duration_seconds"
    assert metric(text, duration + "_count", **ours, type="A") == 3
    assert metric(text, duration + "_bucket", **ours, type="A", le="+Inf") == 3
    assert metric(text, duration + "_count", type="AAAA") == 1
    assert metric(text, duration + "_count", type="TXT") == 1
    assert metric(text, duration + "_count", type="other") == 1
    assert total(text, duration + "_count") == 6
    assert 0 < metric(text, duration + "_sum", type="A") < 3 * 8.192
    # CoreDNS's buckets, cumulative.
    les = [labels["le"] for labels, _ in samples(text, duration + "_bucket") if labels["type"] == "A"]
    assert les[0] == "0.00025" and les[-2] == "8.192" and les[-1] == "+Inf" and len(les) == 17
    counts = [v for labels, v in samples(text, duration + "_bucket") if labels["type"] == "A"]
    assert counts == sorted(counts)

    assert metric(text, "coredns_dns_responses_total", **ours, rcode="NOERROR", plugin="") == 5
    assert metric(text, "coredns_dns_responses_total", rcode="NXDOMAIN") == 1


def test_forward_responses_and_durations_by_rcode(fault, readyns):
    upstream = fault("ok")
    metrics = harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--metrics=127.0.0.1:{metrics}", "--kube", "off"])
    udp(server.port, harness.make_query(SVC0))
    udp(server.port, harness.make_query(SVC0))  # a hit: nothing upstream
    udp(server.port, harness.make_query(SVC1))
    udp(server.port, harness.make_query("nope.ns0.svc.cluster.local"))
    text = scrape(metrics)

    to = upstream.addr
    assert metric(text, "coredns_forward_requests_total", to=to) == 3
    assert metric(text, "coredns_forward_responses_total", to=to, rcode="NOERROR") == 2
    assert metric(text, "coredns_forward_responses_total", to=to, rcode="NXDOMAIN") == 1
    assert len(samples(text, "coredns_forward_responses_total")) == 2
    for name, labels in (("coredns_forward_request_duration_seconds", {}),
                         ("coredns_proxy_request_duration_seconds", {"proxy_name": "forward"})):
        assert metric(text, name + "_count", **labels, to=to, rcode="NOERROR") == 2
        assert metric(text, name + "_bucket", **labels, to=to, rcode="NXDOMAIN", le="+Inf") == 1
        assert metric(text, name + "_sum", **labels, to=to, rcode="NOERROR") > 0
    assert metric(text, "coredns_forward_healthcheck_failures_total", to=to) == 0
    assert metric(text, "coredns_proxy_healthcheck_failures_total", proxy_name="forward", to=to) == 0


@pytest.fixture
def api(tmp_path):
    server = FakeApi(tmp_path / "api")
    yield server
    server.stop()


def test_endpoints_watch_events_and_invalidations(api, fault, readyns):
    def slice_a(*ready):
        return endpoint_slice("hl-a", "ns", "hl", [endpoint(ip, ready=r) for ip, r in
                                                   zip(["10.244.1.2", "10.244.1.3", "10.244.1.4"], ready)])

    api.push("ADDED", slice_a(True, True, False))
    api.push("ADDED", endpoint_slice("plain-a", "ns", "plain", [endpoint("10.244.9.9")], headless=False))
    upstream = fault("ok")
    metrics = harness.free_port()
    watches = api.state()["watches"]
    readyns(upstreams=[upstream.port], args=[*api.readyns_args(), "--health=", f"--metrics=127.0.0.1:{metrics}"])
    api.wait(watches=watches + 1, open_watches=1)

    def events(kind):
        return metric(scrape(metrics), "readyns_watch_events_total", type=kind)

    def after(kind, count):
        harness.wait_until(lambda: events(kind) == count, 5, f"{count} {kind} watch event(s)")
        return scrape(metrics)

    text = scrape(metrics)
    # Listed, not watched: the headless Service's ready endpoints; its answers were published once.
    assert metric(text, "readyns_endpoints_ready") == 2
    assert [v for _, v in samples(text, "readyns_watch_events_total")] == [0] * 5
    assert metric(text, "readyns_invalidations_total") == 1

    api.push("MODIFIED", slice_a(True, True, True))
    text = after("MODIFIED", 1)
    assert metric(text, "readyns_endpoints_ready") == 3
    assert metric(text, "readyns_invalidations_total") == 2

    api.push("MODIFIED", slice_a(True, True, True))  # nothing changed: no invalidation
    text = after("MODIFIED", 2)
    assert metric(text, "readyns_invalidations_total") == 2

    api.push("ADDED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.5")]))
    text = after("ADDED", 1)
    assert metric(text, "readyns_endpoints_ready") == 4
    assert metric(text, "readyns_invalidations_total") == 3

    api.push("DELETED", slice_a(True, True, True))
    text = after("DELETED", 1)
    assert metric(text, "readyns_endpoints_ready") == 1
    assert metric(text, "readyns_invalidations_total") == 4

    api.call("/bookmark", {})
    text = after("BOOKMARK", 1)
    api.call("/expire", {"how": "event"})  # the watch ends with an ERROR (410), then a relist
    text = after("ERROR", 1)
    assert metric(text, "readyns_watch_events_total", type="ADDED") == 1
    assert metric(text, "readyns_watch_events_total", type="MODIFIED") == 2
    assert metric(text, "readyns_watch_events_total", type="DELETED") == 1
    assert metric(text, "readyns_watch_events_total", type="BOOKMARK") == 1
    assert metric(text, "readyns_endpoints_ready") == 1
