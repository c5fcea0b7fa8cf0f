# The admin endpoints of the real daemon: /health, /ready and Prometheus /metrics with CoreDNS's
# metric names.
import urllib.request

import harness
from harness import udp

SVC0 = "svc0.ns0.svc.cluster.local"


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://{harness.HOST}:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in\n{text}")


def test_health_ready_and_metrics(fault, readyns):
    upstream = fault("ok")
    health, metrics = harness.free_port(), harness.free_port()
    server = readyns(upstreams=[upstream.port], args=[f"--health=127.0.0.1:{health}",
                                                      f"--metrics=127.0.0.1:{metrics}", "--kube", "off"])
    assert get(health, "/health") == (200, "ok\n")
    assert get(health, "/ready")[0] == 200
    assert get(health, "/nope")[0] == 404
    udp(server.port, harness.make_query(SVC0))
    udp(server.port, harness.make_query(SVC0))
    status, text = get(metrics, "/metrics")
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
    assert get(health, "/ready")[0] == 200  # nothing asked yet: no news is not bad news
    udp(server.port, harness.make_query(SVC0))
    harness.wait_until(lambda: get(health, "/ready")[0] == 503, 3, "/ready to turn 503")
