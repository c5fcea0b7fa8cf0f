# The README's first command: `./run demo` serves the sample zone, the dig lines it prints work, and
# Ctrl-C leaves nothing behind.
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import harness

DEMO_PORTS = (5300, 5353)  # fixed: the README and the printed lines name them


def port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((harness.HOST, port))
        except OSError:
            return True
    return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(Path(harness.readyns_bin()).resolve() != (harness.REPO / "build" / "readyns").resolve(),
                    reason="the demo runs build/readyns; this run tests another build")
def test_demo_answers_the_lines_it_prints_and_ctrl_c_cleans_up():
    assert not any(port_taken(p) for p in DEMO_PORTS), f"ports {DEMO_PORTS} are in use: is a demo running?"
    # Its own session, so that the test can send Ctrl-C's SIGINT to the whole group, as a terminal does.
    demo = subprocess.Popen(["./run", "demo"], cwd=harness.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, dig_lines, knot_pid = [], [], None
        deadline = time.monotonic() + 120  # the demo builds build/ first: nothing to do here
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "./run demo ended early:\n" + "".join(output)
            output.append(line)
            if line.startswith("knotd (pid "):
                knot_pid = int(line.split()[2].rstrip(")"))
            if line.strip().startswith("dig "):
                dig_lines.append(line.strip())
            if "readyns serving on" in line:
                break
        else:
            pytest.fail("readyns did not start:\n" + "".join(output))
        assert knot_pid and len(dig_lines) == 2, "".join(output)
        # Where the demo keeps knotd's zone and configuration: the directory Ctrl-C must remove.
        knot_conf = [a for a in Path(f"/proc/{knot_pid}/cmdline").read_text().split("\0") if a.endswith(".conf")]
        assert len(knot_conf) == 1

        answers = [subprocess.run([*shlex.split(cmd), "+short", "+time=2", "+tries=1"], capture_output=True,
                                  text=True, timeout=10).stdout.split() for cmd in dig_lines]
        assert answers == [[harness.svc_ip(0, 0)], harness.HEADLESS_ENDPOINTS]

        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=10) == 0, "".join(output) + demo.stdout.read()
        harness.wait_until(lambda: not alive(knot_pid), 5, "knotd to stop")
        demo_dir = Path(knot_conf[0]).parent
        assert not demo_dir.exists(), f"{demo_dir} left behind"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
