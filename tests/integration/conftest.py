# pytest fixtures: a shared knotd, fault upstreams, and readyns instances checked for clean exits.
import os

import pytest

import harness
from fault_upstream import FaultUpstream


@pytest.fixture(scope="session")
def readyns_bin():
    path = harness.readyns_bin()
    assert os.access(path, os.X_OK), f"readyns binary {path} missing: build it or set READYNS_BIN"
    return path


@pytest.fixture(scope="session")
def knot(tmp_path_factory):
    server = harness.Knot(tmp_path_factory.mktemp("knot"))
    yield server
    server.terminate()


@pytest.fixture
def fault():
    """Starts fault upstreams: fault(mode) -> FaultUpstream, stopped after the test."""
    started = []

    def start(mode="ok", zones=None):
        upstream = FaultUpstream(mode, zones).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def readyns(readyns_bin, tmp_path):
    """Starts the daemon: readyns(upstreams=[...], forward=[...], args=[...]) -> harness.Readyns.

    After the test every instance must still be running (no crash), exit 0 on SIGTERM within
    2 s, and have logged no sanitizer report; its log tail is printed for failing tests.
    """
    started = []

    def start(upstreams=(), forward=(), args=()):
        server = harness.Readyns(tmp_path / f"readyns{len(started)}.log", upstreams, forward, args)
        started.append(server)
        return server

    yield start
    problems = []
    for server in started:
        if server.stopped:
            pass  # the test stopped it and checked the exit itself
        elif not server.alive():
            problems.append(f"readyns exited with {server.proc.returncode} during the test")
        else:
            rc, took = server.terminate()
            if rc != 0:
                problems.append(f"readyns exited with {rc} after SIGTERM ({took:.1f}s)")
        problems += server.sanitizer_reports()
        print(f"--- {server.log_path} (last lines)\n{server.log_tail()}")
    assert not problems, "\n".join(problems)
