# The config file: the real binary serving from --config, flags over the file, --check-config.
import re
import subprocess

import pytest

import harness
from harness import tcp, udp

SVC0 = "svc0.ns0.svc.cluster.local"
WWW = "www.example.org"
NODE_LOCAL_CONFIG = harness.REPO / "deploy" / "kubernetes" / "base" / "readyns.yaml"


def run(readyns_bin, *args):
    return subprocess.run([readyns_bin, *map(str, args)], capture_output=True, text=True, timeout=5)


def write(path, text):
    path.write_text(text)
    return path


def admin_lines():
    # Free ports for the HTTP endpoints, so that instances never contend for the defaults.
    return f'health: "{harness.HOST}:{harness.free_port()}"\nmetrics: "{harness.HOST}:{harness.free_port()}"\n'


@pytest.fixture
def started():
    """Starts readyns with exactly the given arguments (no --listen added): start(argv, port)."""
    servers = []

    def start(argv, port, log_path):
        server = harness.Process(argv, log_path)
        servers.append(server)
        server.wait_ready(lambda: harness.udp_port_bound(port) and harness.tcp_accepts(port), 10, "readyns")
        return server

    yield start
    problems = []
    for server in servers:
        if not server.alive():
            problems.append(f"readyns exited with {server.proc.returncode} during the test")
            continue
        rc, took = server.terminate()
        if rc != 0:
            problems.append(f"readyns exited with {rc} after SIGTERM ({took:.1f}s)")
        print(f"--- {server.log_path} (last lines)\n{server.log_tail()}")
    assert not problems, "\n".join(problems)


def test_serves_from_the_config_file_alone(readyns_bin, knot, started, tmp_path):
    port = harness.free_port()
    config = write(tmp_path / "readyns.yaml", f"""\
# Everything from the file: listen address, upstreams, zones, cache and TCP settings.
listen: ["{harness.HOST}:{port}"]
upstreams: ["{harness.HOST}:{knot.port}"]
forward:
  - zone: cluster.local
    upstreams: ["{harness.HOST}:{knot.port}"]
cache: {{size: 1000, max_ttl: 10, neg_ttl: 2}}
upstream: {{timeout_ms: 500, resolve_timeout_ms: 2000}}
tcp: {{idle_timeout_ms: 3000, max_connections: 10, max_pipelined: 4}}
kube: {{mode: "off"}}
threads: 2
log_level: debug
{admin_lines()}""")
    started([readyns_bin, "--config", config], port, tmp_path / "readyns.log")
    for transport in (udp, tcp):
        assert harness.answer_addresses(transport(port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]
        assert harness.answer_addresses(transport(port, harness.make_query(WWW))) == ["192.0.2.10"]
    # cache.max_ttl from the file caps the TTL handed out.
    answer = udp(port, harness.make_query(WWW))
    assert 0 < answer.answer[0].ttl <= 10


def test_flags_override_the_file(readyns_bin, knot, readyns, tmp_path):
    unused = harness.free_port()
    file_listen = harness.free_port()
    config = write(tmp_path / "readyns.yaml", f"""\
listen: ["{harness.HOST}:{file_listen}"]
upstreams: ["{harness.HOST}:{unused}"]
cache: {{max_ttl: 3}}
{admin_lines()}""")
    # The harness adds --listen; --upstream replaces the file's (silent) upstream list.
    server = readyns(upstreams=[knot.port], args=["--config", config])
    answer = udp(server.port, harness.make_query(WWW))
    assert harness.answer_addresses(answer) == ["192.0.2.10"]
    assert 0 < answer.answer[0].ttl <= 3  # the file's setting the flags left alone
    assert not harness.udp_port_bound(file_listen), "the file's listen address was bound too"


def test_check_config_accepts_a_valid_file(readyns_bin, tmp_path):
    config = write(tmp_path / "ok.yaml", "listen: [127.0.0.1:5353]\nupstreams: [192.0.2.1]\n")
    result = run(readyns_bin, "--check-config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config OK"
    # Nothing was served: the check is over before any socket is bound.
    assert "serving" not in result.stderr


@pytest.mark.parametrize("text,where", [
    ("upstreams: [192.0.2.1]\ncache:\n  size: 10\n  max_tll: 5\n", ":4: cache.max_tll: unknown key"),
    ("upstreams: [192.0.2.1]\nthreads: many\n", ":2: threads: expected a number"),
    ("upstreams: [192.0.2.1]\ncache:\n  size: -3\n", ":3: cache.size: expected a number from 1"),
    ("upstreams: [192.0.2.1]\nlisten:\n  - 127.0.0.1:53\n  - 300.0.0.1:53\n", ":4: listen[1]: bad address"),
    ("upstreams: [192.0.2.1]\nkube:\n  mode: sometimes\n", ":3: kube.mode: expected off, auto or on"),
    ("upstreams: [192.0.2.1]\nkube:\n  ttl: 3601\n", ":3: kube.ttl: expected a number from 0 to 3600"),
    ("listen: [127.0.0.1:5353]\n", ": upstreams: no upstream for the default zone"),
    ("upstreams: [192.0.2.1\n", ":2: bad YAML"),
])
def test_check_config_refuses_with_file_and_line(readyns_bin, tmp_path, text, where):
    config = write(tmp_path / "bad.yaml", text)
    result = run(readyns_bin, "--check-config", config)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"readyns: {config}{where}"), lines[0]
    assert result.stdout == ""


def test_a_bad_file_stops_the_daemon_before_it_serves(readyns_bin, tmp_path):
    config = write(tmp_path / "bad.yaml", "upstreams: [192.0.2.1]\nupstream:\n  timeout: 5\n")
    result = run(readyns_bin, "--config", config, "--listen", f"{harness.HOST}:{harness.free_port()}")
    assert result.returncode == 2
    assert re.fullmatch(rf"readyns: {re.escape(str(config))}:3: upstream\.timeout: unknown key.*\n", result.stderr)


def test_check_config_names_a_bad_flag_not_the_file(readyns_bin, tmp_path):
    config = write(tmp_path / "ok.yaml", "upstreams: [192.0.2.1]\ncache: {min_ttl: 20}\n")
    result = run(readyns_bin, "--check-config", config, "--max-ttl", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == "readyns: --max-ttl: 10 is below the minimum TTL 20"
    assert run(readyns_bin, "--check-config", tmp_path / "missing.yaml").returncode == 2


def test_resolv_conf_upstreams_leave_out_our_own_address(readyns_bin, tmp_path):
    resolv = write(tmp_path / "resolv.conf", "search cluster.local\nnameserver 127.0.0.1\n")
    config = write(tmp_path / "readyns.yaml",
                   f"listen: [127.0.0.1:53]\nupstreams:\n  - resolv.conf:{resolv}\n")
    result = run(readyns_bin, "--check-config", config)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"readyns: {config}:3: upstreams[0]: no usable nameserver in {resolv} "
                                     "(127.0.0.1: one of our listen addresses)")
    write(resolv, "nameserver 127.0.0.1\nnameserver 2001:db8::53\n")
    assert run(readyns_bin, "--check-config", config).returncode == 0


def test_resolv_conf_upstreams_answer(readyns_bin, knot, readyns, tmp_path):
    # resolv.conf names servers on port 53, and knot is elsewhere: its zones go there through
    # forward, while the default zone's resolv.conf upstream is only read and checked.
    resolv = write(tmp_path / "resolv.conf", "nameserver 192.0.2.1\n")
    config = write(tmp_path / "readyns.yaml", f"""\
upstreams: resolv.conf:{resolv}
forward:
  - zone: cluster.local
    upstreams: ["{harness.HOST}:{knot.port}"]
{admin_lines()}""")
    server = readyns(args=["--config", config])
    assert harness.answer_addresses(udp(server.port, harness.make_query(SVC0))) == [harness.svc_ip(0, 0)]


@pytest.mark.parametrize("kube_dns_ip", ["10.96.0.10", ""])
def test_the_node_local_config_is_valid(readyns_bin, tmp_path, kube_dns_ip):
    # deploy/kubernetes/base/readyns.yaml as setup.sh fills it in (lines with an empty
    # __KUBE_DNS_IP__ dropped, as in IPVS mode), resolv.conf pointed at a fixed file.
    resolv = write(tmp_path / "resolv.conf", "nameserver 10.0.0.2\nnameserver 169.254.20.10\n")
    lines = []
    for line in NODE_LOCAL_CONFIG.read_text().splitlines():
        if "__KUBE_DNS_IP__" in line and not line.lstrip().startswith("#"):
            if not kube_dns_ip:
                continue
            line = line.replace("__KUBE_DNS_IP__", kube_dns_ip)
        line = line.replace("__LOCAL_DNS_IP__", "169.254.20.10").replace("__KUBE_DNS_UPSTREAM__", "10.96.0.11")
        if line.strip() == "- resolv.conf":
            line = line.replace("resolv.conf", f"resolv.conf:{resolv}")
        lines.append(line)
    config = write(tmp_path / "readyns.yaml", "\n".join(lines) + "\n")
    result = run(readyns_bin, "--check-config", config)
    assert (result.returncode, result.stdout.strip()) == (0, "config OK"), result.stderr
