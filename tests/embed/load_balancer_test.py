#!/usr/bin/python3
"""Runs examples/cpp/load_balancer through a simulated rolling update and checks its output.

The update is driven by the fake API server (tests/k8s/fake_apiserver.py). The output must show that
after each change was delivered ("update" line) it never picked an endpoint that was not ready, that
every update it got was the ready set of that moment, and that it spread its picks over the whole
set.

Usage: load_balancer_test.py  (environment: LOAD_BALANCER, FAKE_APISERVER, PYTHON, OPENSSL)
"""
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]
FAKE_APISERVER = os.environ.get("FAKE_APISERVER", str(SOURCE_ROOT / "tests/k8s/fake_apiserver.py"))
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
OPENSSL = os.environ.get("OPENSSL", "openssl")
PORT = 8080
PODS = 3


def certificates(d):
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run([OPENSSL, *a], cwd=d, check=True, capture_output=True)  # noqa
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=readyns-test-ca")
    run("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.cnf")
    (d / "token").write_text("token-1\n")


class Api:
    def __init__(self, d):
        self.proc = subprocess.Popen(
            [PYTHON, FAKE_APISERVER, "--cert", str(d / "server.crt"), "--key",
             str(d / "server.key"), "--token", "token-1"], stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "READY":
            raise SystemExit(f"the fake API server did not start: {ready}")
        self.url = f"https://127.0.0.1:{ready[1]}"
        self.control = f"http://127.0.0.1:{ready[2]}"

    def post(self, path, body):
        request = urllib.request.Request(self.control + path, data=json.dumps(body).encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def slice(self, name, pods):
        """Replaces slice `name` of Service web in namespace shop; pods: {ip: state}, state
        one of "starting" (not ready), "ready", "terminating" (serving, not ready)."""
        endpoints = [{"addresses": [ip],
                      "conditions": {"ready": s == "ready", "serving": s != "starting",
                                     "terminating": s == "terminating"}}
                     for ip, s in sorted(pods.items())]
        self.post("/event", {"type": "MODIFIED", "object": {
            "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "protocol": "TCP", "port": PORT}]}})

    def close(self):
        try:
            self.post("/shutdown", {})
        except OSError:
            pass
        self.proc.wait(timeout=10)


class Balancer:
    """The example process, its output lines collected as they come."""

    def __init__(self, binary, api, d):
        self.proc = subprocess.Popen(
            [binary, "--upstream", "127.0.0.1:9", "--kube-api", api.url, "--kube-ca",
             str(d / "ca.crt"), "--kube-token", str(d / "token"), "web", "shop", "http"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.updates = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("update "):
                self.updates.put(line)

    def wait_update(self, expected):
        """Waits for the update line that delivers `expected` (a set of IPs)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                line = self.updates.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if update_set(line) == expected:
                return
            raise SystemExit(f"unexpected update {line!r}, waiting for {sorted(expected)}")
        raise SystemExit(f"no update to {sorted(expected)} came")

    def finish(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=20)
        self.reader.join(timeout=5)
        if rc != 0:
            raise SystemExit(f"the load balancer exited with {rc}")


def update_set(line):
    listed = line.split(" ", 2)[2]
    return set() if listed == "-" else {e.rsplit(":", 1)[0] for e in listed.split(",")}


def main():
    binary = os.environ["LOAD_BALANCER"]
    with tempfile.TemporaryDirectory(prefix="readyns-lb-") as d:
        d = Path(d)
        certificates(d)
        api = Api(d)
        try:
            old = {f"10.1.0.{i}": "ready" for i in range(1, PODS + 1)}
            new = {}
            api.slice("web-v1", old)
            api.slice("web-v2", new)
            lb = Balancer(binary, api, d)
            ready = lambda: {ip for ip, s in {**old, **new}.items() if s == "ready"}  # noqa
            expected = [ready()]  # each set the balancer must be told, in order
            not_ready_after = [set()]  # per update: what was known not ready when it was sent
            lb.wait_update(ready())
            time.sleep(0.2)

            def told(name, endpoints):
                # A change the balancer must be told of; the replay below checks it was, in order.
                api.slice(name, endpoints)
                lb.wait_update(ready())
                expected.append(ready())
                not_ready_after.append({ip for ip, s in {**old, **new}.items() if s != "ready"})
                time.sleep(0.2)

            for i in range(1, PODS + 1):
                # A new pod starts (not ready: no update), becomes ready, then an old one is
                # taken out: terminating first (while still serving), deleted later.
                new[f"10.2.0.{i}"] = "starting"
                api.slice("web-v2", new)
                time.sleep(0.1)
                new[f"10.2.0.{i}"] = "ready"
                told("web-v2", new)
                old[f"10.1.0.{i}"] = "terminating"
                told("web-v1", old)
                del old[f"10.1.0.{i}"]
                api.slice("web-v1", old)
            time.sleep(0.3)
            lb.finish()
        finally:
            api.close()

    # Replay the output: every pick comes from the set last delivered, and never from what was
    # not ready when that set was sent.
    updates = 0
    current, forbidden = None, set()
    picks_per_update = []
    for line in lb.lines:
        if line.startswith("update "):
            current = update_set(line)
            if current != expected[updates]:
                raise SystemExit(f"update {updates + 1} was {sorted(current)}, "
                                 f"expected {sorted(expected[updates])}")
            forbidden = not_ready_after[updates]
            updates += 1
            picks_per_update.append({})
        elif line.startswith("pick "):
            ip = line.split()[1].rsplit(":", 1)[0]
            if current is None or ip not in current:
                raise SystemExit(f"picked {ip} outside the delivered set {sorted(current or [])}")
            if ip in forbidden:
                raise SystemExit(f"picked {ip}, not ready since update {updates}")
            picks_per_update[-1][ip] = picks_per_update[-1].get(ip, 0) + 1
    if updates != len(expected):
        raise SystemExit(f"{updates} updates, expected {len(expected)}")
    for n, (picks, wanted) in enumerate(zip(picks_per_update, expected), 1):
        if set(picks) != wanted:
            raise SystemExit(f"after update {n} it picked {sorted(picks)}, not all of {sorted(wanted)}")
    total = sum(sum(p.values()) for p in picks_per_update)
    print(f"{updates} updates, {total} picks, none outside the ready set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
