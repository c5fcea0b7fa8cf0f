# The fake Kubernetes API server (tests/k8s/fake_apiserver.py) from Python.
#
# Certificates, process, control calls.
"""Used by test_kube.py and bench/freshness.py:

    api = FakeApi(directory)          # makes a CA and a server certificate, a token file, starts it
    api.push("ADDED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.2")]))
    api.wait(open_watches=1)          # blocks until readyns has listed and is watching
    api.down(); api.up()              # an outage: connections refused, then back on the same port
    readyns_args = api.readyns_args() # --kube on --kube-api ... --kube-token-file ... --kube-ca-file ...
    api.stop()
"""
import json
import subprocess
import urllib.request
from pathlib import Path

import harness

FAKE_APISERVER = harness.REPO / "tests" / "k8s" / "fake_apiserver.py"
PYTHON = "/usr/bin/python3"
TOKEN = "token-1"


def make_certificates(directory):
    """A CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI."""
    d = Path(directory)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=readyns-test-ca"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "1", "-extfile", "san.cnf"],
    ):
        subprocess.run(["openssl", *argv], cwd=d, check=True, capture_output=True)
    return d


def endpoint(address, ready=True, serving=None, terminating=False, hostname=None):
    """An EndpointSlice endpoint; serving defaults to ready, as the API defines it."""
    conditions = {"ready": ready, "serving": ready if serving is None else serving, "terminating": terminating}
    out = {"addresses": [address] if isinstance(address, str) else list(address), "conditions": conditions}
    if hostname:
        out["hostname"] = hostname
    return out


def endpoint_slice(name, namespace, service, endpoints, *, headless=True, address_type="IPv4",
                   ports=(("http", "TCP", 8080),)):
    labels = {"kubernetes.io/service-name": service}
    if headless:
        labels["service.kubernetes.io/headless"] = ""
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports],
    }


class FakeApi:
    """The fake API server process, listening with TLS on 127.0.0.1, steered over its control port."""

    def __init__(self, directory, token=TOKEN):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.dir = make_certificates(directory)
        self.token_file = self.dir / "token"
        self.token_file.write_text(token + "\n")
        self.ca_file = self.dir / "ca.crt"
        self.log_path = self.dir / "fake_apiserver.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, str(FAKE_APISERVER), "--cert", str(self.dir / "server.crt"),
                 "--key", str(self.dir / "server.key"), "--token", token],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the fake API server did not start: {line!r}\n{self.log_path.read_text()}")
        self.api_port, self.control_port = map(int, line.split()[1:3])

    @property
    def url(self):
        return f"https://127.0.0.1:{self.api_port}"

    def readyns_args(self, mode="on"):
        return ["--kube", mode, "--kube-api", self.url, "--kube-token-file", str(self.token_file),
                "--kube-ca-file", str(self.ca_file)]

    def call(self, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data,
                                         method="GET" if body is None else "POST")
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())

    def state(self):
        return self.call("/state")

    def push(self, kind, obj, silent=False):
        """Changes the state; returns the server's reply: {"version": V, "at": monotonic time}."""
        return self.call("/event", {"type": kind, "object": obj, "silent": silent})

    def raw(self, line):
        return self.call("/raw", {"line": line})

    def wait(self, timeout=10, **at_least):
        """Blocks until each named counter has reached its value; returns the state, or raises."""
        state = self.call("/wait", {"at_least": at_least, "timeout": timeout}, timeout=timeout + 5)
        if not state["ok"]:
            raise TimeoutError(f"fake API server: {at_least} not reached in {timeout}s: {state}")
        return state

    def down(self):
        """Closes the API's listening socket and cuts its connections: connecting is refused
        until up(). The state is kept, and can still be changed. Returns the API port."""
        return self.call("/down", {})["port"]

    def up(self):
        """Listens again on the same port; returns it."""
        return self.call("/up", {})["port"]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.call("/shutdown", {}, timeout=5)
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
