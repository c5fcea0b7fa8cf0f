# SIGHUP, and a changed file under --watch-config: readyns re-reads its config file.
#
# It applies it without losing the cache; a bad file is refused and the running settings keep
# serving.
import os
import shutil
import signal

import dns.rcode

import harness
from harness import udp

SVC0 = "svc0.ns0.svc.cluster.local"
SVC1 = "svc1.ns0.svc.cluster.local"


def log_count(server, text):
    return server.log_path.read_text(errors="replace").count(text)


def check_switched(server, first, second):
    """Once a reload from upstream `first` to `second` is done (SVC0 having been asked before it):
    new misses go to `second`, and the cache survived."""
    harness.wait_until(lambda: log_count(server, "reloaded settings") == 1, 5, "the reload")
    udp(server.port, harness.make_query(SVC1))
    assert second.count(SVC1) == 1 and first.count(SVC1) == 0, "new misses go to the new upstream"
    udp(server.port, harness.make_query(SVC0))
    assert first.count(SVC0) == 1 and second.count(SVC0) == 0, "the cache survived the reload"


def test_sighup_switches_upstreams_and_keeps_the_cache(fault, readyns, tmp_path):
    first, second = fault("ok"), fault("ok")
    config = tmp_path / "readyns.yaml"
    config.write_text(f"upstreams: ['{first.addr}']\n")
    server = readyns(args=["--config", str(config)])
    assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
    assert first.count(SVC0) == 1

    config.write_text(f"upstreams: ['{second.addr}']\n")
    server.proc.send_signal(signal.SIGHUP)
    check_switched(server, first, second)


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


# ---------------------------------------------------------------------------------------------
# --watch-config: the same reload, when the file's content changes


def watched(readyns, config, *extra):
    server = readyns(args=["--config", str(config), *extra])
    # The watch starts after the listeners are bound: a change made before it would be its baseline.
    harness.wait_until(lambda: log_count(server, f"watching {config} for changes") == 1, 5, "the watch to start")
    return server


def upstream_config(upstream, extra=""):
    return f"upstreams: ['{upstream.addr}']\nwatch_config: true\n{extra}"


def test_a_file_renamed_over_is_reloaded(fault, readyns, tmp_path):
    first, second = fault("ok"), fault("ok")
    config = tmp_path / "readyns.yaml"
    config.write_text(upstream_config(first))
    server = watched(readyns, config)
    udp(server.port, harness.make_query(SVC0))

    saved = tmp_path / ".readyns.yaml.swp"  # saved the way editors do: a new file renamed over
    saved.write_text(upstream_config(second))
    os.replace(saved, config)
    check_switched(server, first, second)


def test_a_file_written_in_place_is_reloaded_and_a_bad_edit_refused(fault, readyns, tmp_path):
    upstream = fault("ok")
    config = tmp_path / "readyns.yaml"
    config.write_text(upstream_config(upstream))
    server = watched(readyns, config)

    config.write_text(upstream_config(upstream, "cache: {max_ttl: 7}\n"))
    harness.wait_until(lambda: log_count(server, "reloaded settings") == 1, 5, "the reload")
    assert udp(server.port, harness.make_query(SVC0)).answer[0].ttl == 7  # the zone says 30

    config.write_text(upstream_config(upstream, "cache: {max_tll: 9}\n"))
    harness.wait_until(lambda: log_count(server, "reload refused") == 1, 5, "the refusal")
    assert "cache.max_tll: unknown key" in server.log()
    answer = udp(server.port, harness.make_query(SVC1))
    assert answer.rcode() == dns.rcode.NOERROR and answer.answer[0].ttl == 7, "the old settings serve"

    config.write_text(upstream_config(upstream, "cache: {max_ttl: 4}\n"))
    harness.wait_until(lambda: log_count(server, "reloaded settings") == 2, 5, "the reload of the mended file")
    assert udp(server.port, harness.make_query("svc2.ns0.svc.cluster.local")).answer[0].ttl == 4


def test_a_configmap_volume_update_is_reloaded(fault, readyns, tmp_path):
    # As the kubelet updates a ConfigMap volume: each version in its own directory, `..data` a
    # symlink to the current one, the file a symlink through `..data`; an update writes the new
    # version, then renames a new `..data` symlink over the old one and removes the old version.
    first, second = fault("ok"), fault("ok")
    volume = tmp_path / "config-volume"
    volume.mkdir()

    def publish(version, text):
        (volume / version).mkdir()
        (volume / version / "readyns.yaml").write_text(text)
        os.symlink(version, volume / "..data_tmp")
        os.replace(volume / "..data_tmp", volume / "..data")

    publish("..2026_11_29_06_00_00.1", upstream_config(first))
    os.symlink("..data/readyns.yaml", volume / "readyns.yaml")
    server = watched(readyns, volume / "readyns.yaml")
    udp(server.port, harness.make_query(SVC0))

    publish("..2026_11_29_06_05_00.2", upstream_config(second))
    shutil.rmtree(volume / "..2026_11_29_06_00_00.1")
    check_switched(server, first, second)
