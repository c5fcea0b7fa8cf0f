# SIGHUP: readyns re-reads its config file and applies it without losing the cache; a bad file
# is refused and the running settings keep serving.
import signal

import dns.rcode

import harness
from harness import udp

SVC0 = "svc0.ns0.svc.cluster.local"
SVC1 = "svc1.ns0.svc.cluster.local"


def log_count(server, text):
    return server.log_path.read_text(errors="replace").count(text)


def test_sighup_switches_upstreams_and_keeps_the_cache(fault, readyns, tmp_path):
    first, second = fault("ok"), fault("ok")
    config = tmp_path / "readyns.yaml"
    config.write_text(f"upstreams: ['{first.addr}']\n")
    server = readyns(args=["--config", str(config)])
    assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    assert first.count(SVC0) == 1

    config.write_text(f"upstreams: ['{second.addr}']\n")
    server.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: log_count(server, "reloaded settings") == 1, 5, "the reload")

    udp(server.port, harness.make_query(SVC1))
    assert second.count(SVC1) == 1 and first.count(SVC1) == 0, "new misses go to the new upstream"
    udp(server.port, harness.make_query(SVC0))
    assert first.count(SVC0) == 1 and second.count(SVC0) == 0, "the cache survived the reload"


def test_bad_config_on_sighup_is_refused_and_old_settings_serve(fault, readyns, tmp_path):
    upstream = fault("ok")
    config = tmp_path / "readyns.yaml"
    config.write_text(f"upstreams: ['{upstream.addr}']\n")
    server = readyns(args=["--config", str(config)])
    config.write_text("upstreams: ['not an address']\ncache: {max_tll: 3}\n")
    server.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: log_count(server, "reload refused") == 1, 5, "the refusal")
    answer = udp(server.port, harness.make_query(SVC1))
    assert answer.rcode() == dns.rcode.NOERROR
    assert upstream.count(SVC1) == 1
