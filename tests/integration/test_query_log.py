# --query-log: one JSON object per line for each sampled query, saying how it was answered.
import json

import harness
from harness import udp

SVC0 = "svc0.ns0.svc.cluster.local"


def query_lines(server):
    lines = server.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"ts"')]


def test_query_log_lines_are_json_and_say_how_each_query_was_answered(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--query-log"])
    udp(server.port, harness.make_query("SvC0.ns0.svc.cluster.local"))
    udp(server.port, harness.make_query(SVC0, "A"))
    harness.wait_until(lambda: len(query_lines(server)) == 2, 2, "two query log lines")
    first, second = (line["query"] for line in query_lines(server))
    assert first["name"] == "SvC0.ns0.svc.cluster.local." and first["type"] == 1
    assert first["answer"] == "upstream" and second["answer"] == "cache"
    assert first["client"].startswith("127.0.0.1:")


def test_query_log_samples_one_in_n(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--query-log", "--query-log-sample", "5"])
    for _ in range(20):
        udp(server.port, harness.make_query(SVC0))
    harness.wait_until(lambda: len(query_lines(server)) == 4, 2, "4 sampled lines of 20 queries")


def test_no_query_log_by_default(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    udp(server.port, harness.make_query(SVC0))
    assert query_lines(server) == []
