# The README's first command: `./run demo` serves the sample zone and the lines it prints work.
#
# Ctrl-C leaves nothing behind.
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def lines_of(stream):
    """The stream's lines in a queue (None at its end), so that reading them can time out."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.skipif(Path(harness.readyns_bin()).resolve() != (harness.REPO / "build" / "readyns").resolve(),
                    reason="the demo runs build/readyns; this run tests another build")
def test_demo_answers_the_lines_it_prints_and_ctrl_c_cleans_up():
    ports = {"DEMO_DNS_PORT": harness.free_port(), "DEMO_UPSTREAM_PORT": harness.free_port(),
             "DEMO_METRICS_PORT": harness.free_port()}
    # Its own session, so that the test can send Ctrl-C's SIGINT to the whole group, as a terminal does.
    demo = subprocess.Popen(["./run", "demo"], cwd=harness.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, **{k: str(v) for k, v in ports.items()}})
    try:
        lines = lines_of(demo.stdout)
        output, tries, knot_pid = [], [], None
        deadline = time.monotonic() + 60  # build/ is built already: the demo's build has nothing to do
        while not any("readyns serving on" in line for line in output):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "./run demo ended early:\n" + "".join(output)
            output.append(line)
            if line.startswith("knotd (pid "):
                knot_pid = int(line.split()[2].rstrip(")"))
            if line.strip().startswith(("dig ", "curl ")):
                tries.append(line.strip())
        assert knot_pid and len(tries) == 3, "".join(output)
        # Where the demo keeps knotd's zone and configuration: the directory Ctrl-C must remove.
        knot_conf = [a for a in Path(f"/proc/{knot_pid}/cmdline").read_text().split("\0") if a.endswith(".conf")]
        assert len(knot_conf) == 1

        svc, headless = (sorted(subprocess.run([*shlex.split(cmd), "+short", "+time=2", "+tries=1"],
                                               capture_output=True, text=True, timeout=10).stdout.split())
                         for cmd in tries[:2])
        assert svc == [harness.svc_ip(0, 0)]
        assert headless == sorted(harness.HEADLESS_ENDPOINTS)
        counters = subprocess.run(tries[2], shell=True, capture_output=True, text=True, timeout=10).stdout
        assert harness.metric(counters, "coredns_cache_misses_total") == 2, counters

        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=10) == 0, "".join(output)
        harness.wait_until(lambda: not alive(knot_pid), 5, "knotd to stop")
        demo_dir = Path(knot_conf[0]).parent
        assert not demo_dir.exists(), f"{demo_dir} left behind"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
