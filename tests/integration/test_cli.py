# The readyns command line: help, usage errors, several listeners, and clean exits on signals.
import signal
import subprocess

import pytest

import harness
from harness import tcp, udp

SVC0 = "svc0.ns0.svc.cluster.local"
FLAGS = ["--listen", "--upstream", "--forward", "--cache-size", "--min-ttl", "--max-ttl", "--neg-ttl",
         "--upstream-timeout", "--resolve-timeout", "--tcp-idle-timeout", "--log-level", "--watch-config",
         "--kube-ttl", "--help"]


def run(readyns_bin, *args):
    return subprocess.run([readyns_bin, *args], capture_output=True, text=True, timeout=5)


def test_help_documents_every_flag(readyns_bin):
    result = run(readyns_bin, "--help")
    assert result.returncode == 0
    missing = [flag for flag in FLAGS if flag not in result.stdout]
    assert not missing, f"--help does not mention {missing}"


@pytest.mark.parametrize("args,named", [
    (["--bogus"], "--bogus"),
    (["--upstream", "127.0.0.1:53", "--listen"], "--listen"),
    (["--listen", "127.0.0.1:notaport", "--upstream", "127.0.0.1:53"], "127.0.0.1:notaport"),
    (["--listen", "not-an-ip:53", "--upstream", "127.0.0.1:53"], "not-an-ip:53"),
    (["--upstream", "999.1.1.1:53"], "999.1.1.1:53"),
    (["--upstream", "127.0.0.1:70000"], "127.0.0.1:70000"),
    (["--upstream", "127.0.0.1:53", "--forward", "cluster.local"], "cluster.local"),
    (["--upstream", "127.0.0.1:53", "--forward", "cluster.local=10.0.0.1:x"], "10.0.0.1:x"),
    (["--upstream", "127.0.0.1:53", "--cache-size", "lots"], "lots"),
    (["--upstream", "127.0.0.1:53", "--max-ttl", "-1"], "-1"),
    (["--upstream", "127.0.0.1:53", "--kube-ttl", "3601"], "--kube-ttl: expected a number from 0 to 3600"),
    (["--upstream", "127.0.0.1:53", "--watch-config"], "--watch-config"),
    (["--upstream", "127.0.0.1:0"], "127.0.0.1:0"),
    (["--upstream", "127.0.0.1:53", "--forward", "cluster.local=127.0.0.1:0"], "127.0.0.1:0"),
    # TEST-NET-1: no host has it, so it cannot be bound (nothing is sent there).
    (["--listen", "192.0.2.1:5353", "--upstream", "127.0.0.1:53", "--health=", "--metrics="], "192.0.2.1:5353"),
])
def test_usage_errors_exit_2_with_one_line(readyns_bin, args, named):
    result = run(readyns_bin, *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert named in lines[0]


def test_several_listen_addresses(knot, readyns):
    extra = harness.free_port()
    server = readyns(upstreams=[knot.port], args=["--listen", f"{harness.HOST}:{extra}"])
    harness.wait_until(lambda: harness.udp_port_bound(extra) and harness.tcp_accepts(extra), 5, "second listener")
    for port in (server.port, extra):
        for transport in (udp, tcp):
            assert harness.answer_addresses(transport(port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]


def test_a_port_in_use_is_refused_not_shared(knot, readyns, readyns_bin):
    # SO_REUSEPORT would let a second instance take part of the first one's queries unseen.
    server = readyns(upstreams=[knot.port])
    result = run(readyns_bin, "--listen", f"{harness.HOST}:{server.port}", "--upstream", f"{harness.HOST}:{knot.port}",
                 "--health=", "--metrics=")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{harness.HOST}:{server.port}" in lines[0], result.stderr
    assert all(harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
               for _ in range(8))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_quickly(knot, readyns, sig):
    server = readyns(upstreams=[knot.port])
    udp(server.port, harness.make_query(SVC0))
    rc, took = server.terminate(sig)
    assert rc == 0
    assert took < 2.0


def test_sigterm_with_queries_in_flight(fault, readyns):
    # Pending resolutions (here waiting on a silent upstream for 4 s) must not hold up the exit.
    upstream = fault("drop")
    server = readyns(upstreams=[upstream.port])
    with harness.tcp_connect(server.port) as conn:
        harness.tcp_send(conn, harness.make_query(SVC0))
        harness.udp_exchange(server.port, harness.make_query("svc1.ns0.svc.cluster.local"), timeout=0.01)
        harness.wait_until(lambda: upstream.count() >= 2, 3, "both queries to reach the upstream")
        rc, took = server.terminate(signal.SIGTERM)
    assert rc == 0
    assert took < 2.0, f"exit took {took:.2f}s after SIGTERM"
