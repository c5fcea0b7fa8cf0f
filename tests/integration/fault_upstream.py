# A programmable fake DNS upstream (UDP and TCP on 127.0.0.1) that answers, misbehaves and counts.
"""Modes (`FaultUpstream.mode`, changeable while running):

    ok                    answer from the zone table (sample zones unless others are given)
    drop                  read queries, never answer
    delay:MS              answer correctly after MS milliseconds
    hold                  answer correctly only when release() is called: a miss stays open for
                          as long as a test needs, with no clock involved
    servfail              answer SERVFAIL
    rcode:N               answer RCODE N and no records; an N over 15 puts its upper bits in the
                          OPT record (an extended RCODE, RFC 6891 6.1.3)
    tc                    UDP: TC=1 and no records; TCP: the full answer
    tc-always             TC=1 and no records, over TCP too
    wrong-id              only a forged answer whose ID differs from the query's
    wrong-question        only forged answers with the right ID: one for a same-length name one
                          letter off, one for the right name but another type
    garbage               UDP: a cut-off answer, a bare header, random bytes; TCP: random bytes
    tcp-close-mid-answer  UDP: TC=1; TCP: half an answer, then the connection closes
    flip-case             the right answer, but its question's name in the opposite case of the
                          query's (an upstream that does not echo case, or a 0x20-blind forger)
    forge-first:KIND      forged answers, then 50 ms later the right one; KIND is `id` (wrong ID),
                          `question` (as wrong-question) or `port` (right ID and question, sent
                          from another source port)

Every query is recorded (transport, source port, ID, name as sent, type, EDNS) before the mode
acts on it, so tests can count what reached the upstream. Forged answers carry FORGED_A.

Standalone: fault_upstream.py --port P --mode M [--counts FILE] [--zone ORIGIN=FILE ...]
runs until SIGTERM and rewrites FILE (JSON: lower-cased name -> queries) after every query.
"""
import argparse
import dataclasses
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

FORGED_A = "203.0.113.66"
FORGE_GAP = 0.05
MODES = ("ok", "drop", "delay:", "hold", "servfail", "rcode:", "tc", "tc-always", "wrong-id", "wrong-question",
         "flip-case", "garbage", "tcp-close-mid-answer", "forge-first:id", "forge-first:question", "forge-first:port")


@dataclasses.dataclass(frozen=True)
class Seen:
    transport: str  # "udp" or "tcp"
    src_port: int
    id: int
    qname: str  # as it arrived, case kept
    qtype: str
    edns: bool


class FaultUpstream:
    def __init__(self, mode="ok", zones=None, port=0):
        self.mode = mode
        texts = zones or {origin: text() for origin, text in harness.SAMPLE_ZONES.items()}
        self.zones = [dns.zone.from_text(text, origin, relativize=False) for origin, text in texts.items()]
        self._names = {z.origin: self._all_names(z) for z in self.zones}
        self._seen = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._held = []  # answers waiting for release(), as callables that send them
        self.on_query = None
        self.udp, self.tcp = self._bind(port)
        self.port = self.udp.getsockname()[1]

    @staticmethod
    def _bind(port):
        # The daemon reaches UDP and TCP at one address, so both must share the port.
        for _ in range(100):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((harness.HOST, port))
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((harness.HOST, u.getsockname()[1]))
            except OSError:
                u.close()
                t.close()
                if port:
                    raise
                continue
            t.listen(64)
            return u, t
        raise RuntimeError("no port free for both UDP and TCP")

    @staticmethod
    def _all_names(zone):
        # Every owner name and every ancestor up to the apex: empty non-terminals answer NODATA.
        names = set()
        for name in zone.nodes:
            while name.is_subdomain(zone.origin):
                names.add(name)
                if name == zone.origin:
                    break
                name = name.parent()
        return names

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        for target in (self._udp_loop, self._tcp_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()

    @property
    def addr(self):
        return f"{harness.HOST}:{self.port}"

    # --- what was seen -----------------------------------------------------------------------

    def seen(self, qname=None, transport=None):
        key = qname and dns.name.from_text(qname)
        with self._lock:
            return [s for s in self._seen
                    if (key is None or dns.name.from_text(s.qname) == key)
                    and (transport is None or s.transport == transport)]

    def count(self, qname=None, transport=None):
        return len(self.seen(qname, transport))

    def counts(self):
        with self._lock:
            out = {}
            for s in self._seen:
                out[s.qname.lower()] = out.get(s.qname.lower(), 0) + 1
            return out

    def reset(self):
        with self._lock:
            self._seen.clear()

    def release(self):
        """Sends the answers that mode `hold` kept back; returns how many."""
        with self._lock:
            held, self._held = self._held, []
        for send in held:
            send()
        return len(held)

    def _hold(self, send):
        with self._lock:
            self._held.append(send)

    def _record(self, transport, src_port, query):
        q = query.question[0]
        with self._lock:
            self._seen.append(Seen(transport, src_port, query.id, q.name.to_text(),
                                   dns.rdatatype.to_text(q.rdtype), query.edns >= 0))
        if self.on_query:
            self.on_query(self)

    # --- answers -----------------------------------------------------------------------------

    def _zone_for(self, name):
        best = None
        for z in self.zones:
            if name.is_subdomain(z.origin) and (best is None or len(z.origin) > len(best.origin)):
                best = z
        return best

    def _node(self, zone, name):
        node = zone.get_node(name)
        if node is not None:
            return node
        if name in self._names[zone.origin]:
            return dns.node.Node()
        if name != zone.origin:
            wildcard = dns.name.Name((b"*",) + name.parent().labels)
            return zone.get_node(wildcard)
        return None

    def answer(self, query):
        """The correct authoritative answer from the zone table, following in-zone CNAMEs."""
        resp = dns.message.make_response(query, recursion_available=True, our_payload=harness.EDNS_SIZE)
        q = query.question[0]
        zone = self._zone_for(q.name)
        if zone is None:
            resp.set_rcode(dns.rcode.REFUSED)
            return resp
        resp.flags |= dns.flags.AA
        name = q.name
        denial = False  # the chain ends in the zone without the asked type (or name)
        for _ in range(8):
            node = self._node(zone, name)
            if node is None:
                resp.set_rcode(dns.rcode.NXDOMAIN)  # RFC 6604: the last name's rcode
                denial = True
                break
            rds = node.get_rdataset(dns.rdataclass.IN, q.rdtype)
            if rds:
                resp.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                break
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if not cname:
                denial = True
                break
            resp.answer.append(dns.rrset.from_rdata_list(name, cname.ttl, list(cname)))
            name = cname[0].target
            if not name.is_subdomain(zone.origin):
                break
        if denial:
            # The SOA keeps its own TTL (as some servers send it), so a cache must apply the
            # MINIMUM field itself to get the negative TTL (RFC 2308 section 5).
            soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
            resp.authority.append(dns.rrset.from_rdata_list(zone.origin, soa.ttl, list(soa)))
        return resp

    def forgeries(self, query, kind):
        """Answers a resolver must not believe, all carrying FORGED_A.

        `id`: the right question under another ID. `question`: the right ID for a name of the
        same length but one letter changed (so only a real name comparison catches it), and for
        the right name with another type.
        """
        q = query.question[0]
        if kind == "id":
            questions, qid = [(q.name, q.rdtype)], (query.id + 1) & 0xFFFF
        elif kind == "question":
            first = q.name.labels[0]
            swapped = (b"y" if first[:1].lower() == b"x" else b"x") + first[1:]
            other_type = dns.rdatatype.AAAA if q.rdtype == dns.rdatatype.A else dns.rdatatype.A
            questions, qid = [(dns.name.Name((swapped,) + q.name.labels[1:]), q.rdtype), (q.name, other_type)], query.id
        else:
            questions, qid = [(q.name, q.rdtype)], query.id
        out = []
        for name, rdtype in questions:
            resp = dns.message.make_response(dns.message.make_query(name, rdtype, id=qid), recursion_available=True)
            resp.answer.append(dns.rrset.from_text(name, 300, "IN", "A", FORGED_A))
            out.append(resp.to_wire())
        return out

    def case_flipped(self, query):
        """The right answer with each letter of the question's name in the other case than sent."""
        resp = self.answer(query)
        q = query.question[0]
        flipped = dns.name.Name(tuple(label.swapcase() for label in q.name.labels))
        resp.question = [dns.rrset.RRset(flipped, q.rdclass, q.rdtype)]
        return resp

    @staticmethod
    def render(resp, limit):
        try:
            return resp.to_wire(max_size=limit)
        except dns.exception.TooBig:
            resp.answer.clear()
            resp.authority.clear()
            resp.additional.clear()
            resp.flags |= dns.flags.TC
            return resp.to_wire()

    def garbage_packets(self, query):
        real = self.answer(query).to_wire()
        header = struct.pack("!HHHHHH", query.id, 0x8180, 1, 0, 0, 0)
        return [real[: len(real) // 2], header, os.urandom(random.randrange(1, 300))]

    # --- transports --------------------------------------------------------------------------

    def _udp_loop(self):
        while not self._stop.is_set():
            if not select.select([self.udp], [], [], 0.05)[0]:
                continue
            try:
                wire, src = self.udp.recvfrom(65535)
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
                query.question[0]
            except Exception:
                continue
            self._record("udp", src[1], query)
            try:
                self._udp_respond(query, src)
            except Exception:
                traceback.print_exc()

    def _udp_respond(self, query, src):
        def send(wire):
            try:
                self.udp.sendto(wire, src)
            except OSError:
                pass

        limit = max(query.payload, 512) if query.edns >= 0 else 512
        mode = self.mode
        if mode == "ok":
            send(self.render(self.answer(query), limit))
        elif mode.startswith("delay:"):
            threading.Timer(int(mode[6:]) / 1000, lambda: send(self.render(self.answer(query), limit))).start()
        elif mode == "hold":
            self._hold(lambda: send(self.render(self.answer(query), limit)))
        elif mode == "servfail":
            send(self._empty(query, dns.rcode.SERVFAIL))
        elif mode.startswith("rcode:"):
            send(self._empty(query, int(mode[6:])))
        elif mode == "flip-case":
            send(self.render(self.case_flipped(query), limit))
        elif mode in ("tc", "tc-always", "tcp-close-mid-answer"):
            send(self._empty(query, flags=dns.flags.TC | dns.flags.AA))
        elif mode in ("wrong-id", "wrong-question"):
            for packet in self.forgeries(query, mode[6:]):
                send(packet)
        elif mode == "garbage":
            for packet in self.garbage_packets(query):
                send(packet)
        elif mode.startswith("forge-first:"):
            kind = mode.split(":", 1)[1]
            if kind == "port":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    for packet in self.forgeries(query, kind):
                        other.sendto(packet, src)
            else:
                for packet in self.forgeries(query, kind):
                    send(packet)
            threading.Timer(FORGE_GAP, lambda: send(self.render(self.answer(query), limit))).start()

    @staticmethod
    def _empty(query, rcode=dns.rcode.NOERROR, flags=0):
        resp = dns.message.make_response(query, recursion_available=True, our_payload=harness.EDNS_SIZE)
        resp.flags |= flags
        resp.set_rcode(rcode)
        return resp.to_wire()

    def _tcp_loop(self):
        while not self._stop.is_set():
            if not select.select([self.tcp], [], [], 0.05)[0]:
                continue
            try:
                conn, src = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn, src), daemon=True).start()

    def _tcp_conn(self, conn, src):
        lock = threading.Lock()

        def send(wire):
            with lock:
                try:
                    conn.sendall(struct.pack("!H", len(wire)) + wire)
                except OSError:
                    pass

        conn.settimeout(0.05)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65535)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    length = struct.unpack("!H", buf[:2])[0]
                    wire, buf = buf[2:2 + length], buf[2 + length:]
                    try:
                        query = dns.message.from_wire(wire)
                        query.question[0]
                    except Exception:
                        continue
                    self._record("tcp", src[1], query)
                    try:
                        if not self._tcp_respond(query, conn, send):
                            return
                    except Exception:
                        traceback.print_exc()

    def _tcp_respond(self, query, conn, send):
        """Acts on one TCP query; returns False once the connection has been closed on purpose."""
        mode = self.mode
        if mode in ("ok", "tc"):
            send(self.answer(query).to_wire())
        elif mode.startswith("delay:"):
            threading.Timer(int(mode[6:]) / 1000, lambda: send(self.answer(query).to_wire())).start()
        elif mode == "hold":
            self._hold(lambda: send(self.answer(query).to_wire()))
        elif mode == "servfail":
            send(self._empty(query, dns.rcode.SERVFAIL))
        elif mode.startswith("rcode:"):
            send(self._empty(query, int(mode[6:])))
        elif mode == "tc-always":
            send(self._empty(query, flags=dns.flags.TC | dns.flags.AA))
        elif mode == "flip-case":
            send(self.case_flipped(query).to_wire())
        elif mode in ("wrong-id", "wrong-question"):
            for packet in self.forgeries(query, mode[6:]):
                send(packet)
        elif mode == "garbage":
            send(os.urandom(random.randrange(1, 300)))
        elif mode == "tcp-close-mid-answer":
            wire = self.answer(query).to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire[: len(wire) // 2])
            conn.shutdown(socket.SHUT_RDWR)
            return False
        elif mode.startswith("forge-first:"):
            kind = mode.split(":", 1)[1]
            if kind != "port":
                for packet in self.forgeries(query, kind):
                    send(packet)
            threading.Timer(FORGE_GAP, lambda: send(self.answer(query).to_wire())).start()
        return True


def main(argv):
    parser = argparse.ArgumentParser(description="Fake DNS upstream for readyns tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--counts", help="JSON file of queries per name, rewritten after each query")
    parser.add_argument("--zone", action="append", default=[], metavar="ORIGIN=FILE")
    args = parser.parse_args(argv)
    if not any(args.mode == m or (m.endswith(":") and args.mode.startswith(m)) for m in MODES):
        parser.error(f"unknown mode {args.mode!r}")
    zones = {o: Path(f).read_text() for o, f in (z.split("=", 1) for z in args.zone)} or None
    upstream = FaultUpstream(args.mode, zones, args.port)
    if args.counts:
        def write_counts(up):
            tmp = args.counts + ".tmp"
            Path(tmp).write_text(json.dumps(up.counts(), sort_keys=True))
            os.replace(tmp, args.counts)
        upstream.on_query = write_counts
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    upstream.start()
    print(f"fault upstream on {upstream.addr}, mode {args.mode}", flush=True)
    while not done.wait(0.2):
        pass
    upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
