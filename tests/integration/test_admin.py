# The admin endpoints of the real daemon: /health, /ready and Prometheus /metrics with CoreDNS's
# metric names.
import harness
from harness import http_get, metric, udp

SVC0 = "svc0.ns0.svc.cluster.local"


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
    status, text = http_get(metrics, "/metrics")
    assert status == 200
    assert metric(text, "coredns_dns_requests_total", proto="udp") == 2
    assert metric(text, "coredns_dns_responses_total", rcode="NOERROR") == 2
    assert metric(text, "coredns_cache_hits_total") == 1
    assert metric(text, "coredns_cache_misses_total") == 1
    assert metric(text, "coredns_cache_entries") == 1
    assert metric(text, "coredns_forward_requests_total", to=upstream.addr) == 1


def test_not_ready_when_upstreams_fail_and_none_answered(fault, readyns):
    upstream = fault("drop")
    health = harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--health=127.0.0.1:{health}", "--metrics=",
                                                      "--upstream-timeout", "100", "--resolve-timeout", "300"])
    assert http_get(health, "/ready")[0] == 200  # nothing asked yet: no news is not bad news
    udp(server.port, harness.make_query(SVC0))
    harness.wait_until(lambda: http_get(health, "/ready")[0] == 503, 3, "/ready to turn 503")
