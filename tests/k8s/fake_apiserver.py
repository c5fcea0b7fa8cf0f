#!/usr/bin/python3
"""A fake Kubernetes API server for the watcher tests: EndpointSlice list and watch over HTTPS.

It serves GET /apis/discovery.k8s.io/v1[/namespaces/NS]/endpointslices, as a paged list
(limit/continue) or, with watch=1, as a chunked stream of newline-delimited watch events resumed
from resourceVersion. Every request must carry "Authorization: Bearer <token>" (401 otherwise).

The test steers it over a plain-HTTP control port (JSON in, JSON out):
  POST /event     {"type": "ADDED|MODIFIED|DELETED", "object": {...}, "silent": false}
                  changes the state; unless silent, watchers see the event (silent: one they missed);
                  answers {"version": V, "at": T}, T being time.monotonic() at the change (the
                  clock is system-wide, so another process on the host can compare with it)
  POST /raw       {"line": "..."} sends this text as one watch line to every open watch, whatever
                  its namespace (a malformed event, say); the state is left as it is
  POST /bookmark  sends a BOOKMARK at a new resourceVersion
  POST /drop      cuts every open watch connection without ending the HTTP stream
  POST /expire    {"how": "event" | "http"} forgets history up to now: a watch from an older
                  resourceVersion gets an ERROR event with a 410 Status ("event", which is what
                  the real server does) or an HTTP 410 ("http"); open watches are ended that way
  POST /fail      {"code": 500} ends every open watch with an ERROR event carrying a Status of
                  that code (as a server in trouble, or one that times a watch out, does)
  POST /token     {"token": "..."} the only token accepted from now on
  POST /down      closes the API's listening socket and cuts every API connection: connecting is
                  refused (an API server that went away); the state is kept
  POST /up        listens again on the same port
  GET  /state     counters: lists, watches, unauthorized, open_watches, last_watch_version,
                  quiet_ends (watches ended by their timeoutSeconds with nothing to send) and
                  max_rewatch_gap_ms (the longest wait from such an end to the next watch), ...
  POST /wait      {"at_least": {"open_watches": 1, ...}, "timeout": 10} blocks until every named
                  counter has reached its value (or the timeout passed), then answers the state
                  with "ok": whether they all had
  POST /shutdown

Usage: fake_apiserver.py --cert CERT --key KEY --token TOKEN
Prints "READY <api port> <control port>" once both listen on 127.0.0.1.
"""

import argparse
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PREFIX = "/apis/discovery.k8s.io/v1"


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Watch:
    """One open watch connection, as the control port sees it."""

    def __init__(self):
        self.dropped = False
        self.expired = False
        self.fail = 0  # an ERROR event's Status code to end with


class State:
    def __init__(self, token):
        self.cond = threading.Condition()
        self.version = 1000
        self.slices = {}  # (namespace, name) -> object
        self.history = []  # (version, event), oldest first
        self.compacted = 0  # watches from before this version are too old
        self.expire_how = "event"
        self.token = token
        self.watches = set()
        self.counters = {"lists": 0, "watches": 0, "unauthorized": 0, "expired": 0,
                         "quiet_ends": 0}
        self.quiet_end_at = None
        self.max_rewatch_gap_ms = 0.0
        self.last_watch_version = ""
        self.last_token = ""

    def change(self, event, silent):
        with self.cond:
            self.version += 1
            at = time.monotonic()
            obj = event["object"]
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"].get("name", ""))
            if event["type"] == "DELETED":
                self.slices.pop(key, None)
            else:
                self.slices[key] = obj
            if not silent:
                self.history.append((self.version, {"type": event["type"], "object": obj}))
            self.cond.notify_all()
            return self.version, at

    def raw(self, line):
        with self.cond:
            self.version += 1
            self.history.append((self.version, {"raw": line}))
            self.cond.notify_all()
            return self.version

    def snapshot(self):
        """The counters and versions, as /state and /wait answer them; the caller holds cond."""
        body = dict(self.counters)
        body.update(open_watches=len(self.watches), version=self.version,
                    max_rewatch_gap_ms=self.max_rewatch_gap_ms,
                    last_watch_version=self.last_watch_version, last_token=self.last_token)
        return body

    def wait(self, at_least, timeout):
        with self.cond:
            ok = self.cond.wait_for(
                lambda: all(self.snapshot().get(k, 0) >= v for k, v in at_least.items()), timeout)
            return dict(self.snapshot(), ok=ok)

    def bookmark(self):
        with self.cond:
            self.version += 1
            self.history.append((self.version, {
                "type": "BOOKMARK",
                "object": {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                           "metadata": {"resourceVersion": str(self.version)}}}))
            self.cond.notify_all()
            return self.version

    def expire(self, how):
        with self.cond:
            self.compacted = self.version
            self.expire_how = how
            self.history = [h for h in self.history if h[0] > self.version]
            for watch in self.watches:
                watch.expired = True
            self.cond.notify_all()

    def drop(self):
        with self.cond:
            for watch in self.watches:
                watch.dropped = True
            self.cond.notify_all()
            return len(self.watches)

    def fail(self, code):
        with self.cond:
            for watch in self.watches:
                watch.fail = code
            self.cond.notify_all()
            return len(self.watches)


class ApiListener:
    """The API server's HTTPS listener, which /down closes and /up opens again on its port."""

    def __init__(self, context):
        self.context = context
        self.port = 0
        self.server = None
        self.lock = threading.Lock()

    def up(self):
        with self.lock:
            if self.server:
                return
            server = ApiServer(("127.0.0.1", self.port), ApiHandler)
            server.socket = self.context.wrap_socket(server.socket, server_side=True)
            self.port = server.server_address[1]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.server = server

    def down(self):
        with self.lock:
            server, self.server = self.server, None
        if server:
            server.shutdown()  # no more accept()s; then nothing listens: connecting is refused
            server.server_close()
            server.cut_connections()


class ApiServer(ThreadingHTTPServer):
    """Keeps its connections, so that going down can cut them all (a kept-alive one too)."""

    daemon_threads = True

    def __init__(self, *args):
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self):
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                # The plain socket's shutdown: the handler thread still owns the TLS state.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass


def namespace_of(path):
    """The namespace a collection path is scoped to ("" for all), or None if not ours."""
    if path == PREFIX + "/endpointslices":
        return ""
    parts = path[len(PREFIX):].split("/")
    if path.startswith(PREFIX + "/namespaces/") and len(parts) == 4 and parts[3] == "endpointslices":
        return parts[2]
    return None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, format, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        state = self.state
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        token = self.headers.get("Authorization", "")
        with state.cond:
            authorized = token == "Bearer " + state.token
            if authorized:
                state.last_token = token[len("Bearer "):]
            else:
                state.counters["unauthorized"] += 1
            state.cond.notify_all()  # a /wait may be on last_token or on the counter
        if not authorized:
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        namespace = namespace_of(url.path)
        if namespace is None:
            return self.send_json(404, status(404, "NotFound", "the server could not find it"))
        if query.get("watch") in ("1", "true"):
            return self.watch(namespace, query)
        return self.list(namespace, query)

    def list(self, namespace, query):
        state = self.state
        limit = int(query.get("limit", "0"))
        start = int(query.get("continue", "0"))
        with state.cond:
            state.counters["lists"] += 1
            state.cond.notify_all()
            items = [obj for key, obj in sorted(state.slices.items())
                     if not namespace or key[0] == namespace]
            version = state.version
        page = items[start:start + limit] if limit else items[start:]
        metadata = {"resourceVersion": str(version)}
        if limit and start + limit < len(items):
            metadata["continue"] = str(start + limit)
        self.send_json(200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                             "metadata": metadata, "items": page})

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, namespace, query):
        state = self.state
        version = int(query.get("resourceVersion") or "0")
        timeout = float(query.get("timeoutSeconds", "300"))
        watch = Watch()
        with state.cond:
            state.counters["watches"] += 1
            state.last_watch_version = query.get("resourceVersion", "")
            if state.quiet_end_at is not None:
                gap_ms = (time.monotonic() - state.quiet_end_at) * 1000
                state.max_rewatch_gap_ms = max(state.max_rewatch_gap_ms, gap_ms)
                state.quiet_end_at = None
            too_old = version < state.compacted
            if too_old:
                state.counters["expired"] += 1
            state.cond.notify_all()
            how = state.expire_how
        if too_old and how == "http":
            return self.send_json(410, status(410, "Expired", "too old resource version"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        expired_event = json.dumps({"type": "ERROR", "object": status(
            410, "Expired", "too old resource version: %d (%d)" % (version, state.compacted))})
        if too_old:
            self.write_chunk(expired_event.encode() + b"\n")
            self.write_chunk(b"")
            return
        with state.cond:
            state.watches.add(watch)
            state.cond.notify_all()
        try:
            while True:
                with state.cond:
                    state.cond.wait_for(
                        lambda: watch.dropped or watch.expired or watch.fail or
                        (state.history and state.history[-1][0] > version), timeout)
                    events = [(v, e) for v, e in state.history if v > version]
                    dropped, expired, fail = watch.dropped, watch.expired, watch.fail
                # What was queued before a drop or an expiry still goes out first, in order.
                for v, event in events:
                    version = v
                    if "raw" in event:
                        self.write_chunk(event["raw"].encode() + b"\n")
                        continue
                    meta = event["object"].get("metadata", {})
                    if namespace and event["type"] != "BOOKMARK" and meta.get("namespace") != namespace:
                        continue
                    self.write_chunk(json.dumps(event).encode() + b"\n")
                if dropped or (expired and state.expire_how == "http"):
                    # Cut the TCP connection mid-stream: no TLS close, no last chunk.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if expired or fail:
                    event = expired_event if expired else json.dumps({"type": "ERROR", "object": status(
                        fail, "InternalError", "the fake server fails this watch")})
                    self.write_chunk(event.encode() + b"\n")
                    self.write_chunk(b"")
                    return
                if not events:  # timeoutSeconds passed: end the stream cleanly
                    with state.cond:  # first: the client may be back before the last chunk is
                        state.counters["quiet_ends"] += 1
                        state.quiet_end_at = time.monotonic()
                    self.write_chunk(b"")
                    return
        except OSError:
            self.close_connection = True
        finally:
            with state.cond:
                state.watches.discard(watch)
                state.cond.notify_all()


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    api = None  # the ApiListener
    servers = []

    def log_message(self, format, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with self.state.cond:
            body = self.state.snapshot()
        self.reply(body)

    def do_POST(self):
        state = self.state
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/event":
            version, at = state.change(body, body.get("silent", False))
            return self.reply({"version": version, "at": at})
        if self.path == "/raw":
            return self.reply({"version": state.raw(body["line"])})
        if self.path == "/wait":
            return self.reply(state.wait(body.get("at_least", {}), float(body.get("timeout", 10))))
        if self.path == "/bookmark":
            return self.reply({"version": state.bookmark()})
        if self.path == "/drop":
            return self.reply({"dropped": state.drop()})
        if self.path == "/fail":
            return self.reply({"failed": state.fail(int(body.get("code", 500)))})
        if self.path == "/expire":
            state.expire(body.get("how", "event"))
            return self.reply({})
        if self.path == "/token":
            with state.cond:
                state.token = body["token"]
            return self.reply({})
        if self.path == "/down":
            self.api.down()
            state.drop()  # the watch handlers wait on the state, not the socket: wake them to end
            return self.reply({"port": self.api.port})
        if self.path == "/up":
            self.api.up()
            return self.reply({"port": self.api.port})
        if self.path == "/shutdown":
            self.reply({})
            threading.Thread(target=self.api.down, daemon=True).start()
            for server in self.servers:
                threading.Thread(target=server.shutdown, daemon=True).start()
            return None
        self.send_error(404)
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()

    state = State(args.token)
    ApiHandler.state = ControlHandler.state = state
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    api = ApiListener(context)
    api.up()
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    ControlHandler.api = api
    ControlHandler.servers = [control]

    print("READY %d %d" % (api.port, control.server_address[1]), flush=True)
    control.serve_forever()
    api.down()
    control.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
