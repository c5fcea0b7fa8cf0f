# Headless Services answered from EndpointSlices: the real binary against the fake API server.
#
# The binary is asked over DNS.
import signal
import socket
import threading
import time

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

import harness
from fake_kube import FakeApi, endpoint, endpoint_slice
from harness import udp

DOMAIN = "svc.cluster.local"
HL = f"hl.ns.{DOMAIN}"
TABLE_TTL = 5  # what the table answers with: CoreDNS's kubernetes plugin default
UPSTREAM_HL = "192.0.2.53"  # what the upstream says about hl: never seen while the table knows hl
PLAIN_IP = "10.96.5.5"

# The upstream stands in for the cluster's CoreDNS: it knows hl (with another address, so that an
# answer that went upstream is told apart), a ClusterIP Service, and example.org.
UPSTREAM_ZONES = {
    "cluster.local": "\n".join([
        "$ORIGIN cluster.local.",
        "$TTL 30",
        "@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30",
        "@ NS ns.dns.cluster.local.",
        "ns.dns A 10.96.0.10",
        f"hl.ns.svc A {UPSTREAM_HL}",
        f"plain.ns.svc A {PLAIN_IP}",
    ]) + "\n",
    "example.org": harness.example_zone_text(),
}

POLL = 0.005  # how often a "client" asks while waiting for a change
CHANGE_WITHIN = 1.0  # a watch event must show in answers within this
AFTER_CHANGE_QUERIES = 100  # answers checked after the first changed one, that none goes back


@pytest.fixture
def api(tmp_path):
    server = FakeApi(tmp_path / "api")
    yield server
    server.stop()


@pytest.fixture
def upstream(fault):
    return fault("ok", zones=UPSTREAM_ZONES)


@pytest.fixture
def watching(api, upstream, readyns):
    """start(*extra_args) -> readyns watching `api`, returned once its first list is in the table."""

    def start(*extra):
        watches = api.state()["watches"]
        server = readyns(upstreams=[upstream.port], args=[*api.readyns_args(), *admin_off(), *extra])
        # The watch is opened right after the first list has been put in the table and marked
        # synced, so a new watch on the server is the event that says readyns answers from it;
        # waiting until it is open too lets a test /drop it at once.
        api.wait(watches=watches + 1, open_watches=1)
        return server

    return start


def admin_off():
    # No HTTP endpoints: instances running side by side must not contend for the default ports.
    return ["--health=", "--metrics="]


def ask(server, name, qtype="A"):
    return udp(server.port, harness.make_query(name, qtype, edns=0, payload=harness.EDNS_SIZE))


def addresses(msg):
    return sorted(r.address for rrset in msg.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                  for r in rrset)


def a(server, name=HL):
    return addresses(ask(server, name))


def soa_only_authority(msg):
    return [rrset.rdtype for rrset in msg.authority] == [dns.rdatatype.SOA] and not msg.answer


def wait_for_answer(server, predicate, name=HL, qtype="A", timeout=5.0):
    """Asks every POLL until an answer satisfies `predicate`; returns (answer, seconds taken)."""
    start = time.monotonic()
    while True:
        msg = ask(server, name, qtype)
        if predicate(msg):
            return msg, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"no answer for {name}/{qtype} satisfied the condition in {timeout}s; last:\n{msg}")
        time.sleep(POLL)


def ready_three(name="hl-a"):
    return endpoint_slice(name, "ns", "hl", [endpoint("10.244.1.2"), endpoint("10.244.1.3"), endpoint("10.244.1.4")])


# ---------------------------------------------------------------------------------------------
# What is answered, and how


def test_ready_endpoints_only(api, upstream, watching):
    api.push("ADDED", endpoint_slice("hl-a", "ns", "hl", [
        endpoint("10.244.1.2"),
        endpoint("10.244.1.3", ready=False, serving=True, terminating=True),
        endpoint("10.244.1.4", ready=False),
    ]))
    api.push("ADDED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.5")]))
    server = watching()
    msg = ask(server, HL)
    assert msg.rcode() == dns.rcode.NOERROR
    assert addresses(msg) == ["10.244.1.2", "10.244.1.5"]  # both slices, ready ones only
    assert all(rrset.ttl <= TABLE_TTL for rrset in msg.answer)
    assert msg.flags & dns.flags.AA  # authoritative, as CoreDNS's kubernetes plugin
    assert upstream.count() == 0


def test_serving_terminating_when_none_ready(api, upstream, watching):
    # CoreDNS's rule: with no ready endpoint, those still serving while terminating are answered.
    api.push("ADDED", endpoint_slice("hl-a", "ns", "hl", [
        endpoint("10.244.1.2", ready=False, serving=True, terminating=True),
        endpoint("10.244.1.3", ready=False, serving=False, terminating=True),
        endpoint("10.244.1.4", ready=False, serving=False, terminating=False),
    ]))
    server = watching()
    assert a(server) == ["10.244.1.2"]
    # One ready endpoint anywhere in the Service, and the terminating one is dropped.
    api.push("ADDED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.9")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.9"])
    assert upstream.count() == 0


def test_no_usable_endpoint_is_nxdomain(api, upstream, watching):
    api.push("ADDED", endpoint_slice("down-a", "ns", "down", [
        endpoint("10.244.1.3", ready=False, serving=False, terminating=True),
        endpoint("10.244.1.4", ready=False),
    ]))
    api.push("ADDED", endpoint_slice("empty-a", "ns", "empty", []))
    server = watching()
    for name in (f"down.ns.{DOMAIN}", f"empty.ns.{DOMAIN}"):
        for qtype in ("A", "AAAA", "SRV"):
            msg = ask(server, name, qtype)
            assert msg.rcode() == dns.rcode.NXDOMAIN, (name, qtype)
            assert msg.flags & dns.flags.AA, (name, qtype)
            assert soa_only_authority(msg), msg
            assert msg.authority[0].name.to_text() == "cluster.local."
    assert upstream.count() == 0
    # A Service with no slice left is not the table's any more: the upstream is asked again.
    api.push("DELETED", endpoint_slice("down-a", "ns", "down", []))
    wait_for_answer(server, lambda m: upstream.count(f"down.ns.{DOMAIN}") >= 1, name=f"down.ns.{DOMAIN}")


def test_srv_shape(api, upstream, watching):
    api.push("ADDED", endpoint_slice("web-a", "ns", "web", [
        endpoint("10.244.2.1", hostname="web-0"),
        endpoint("10.244.2.2"),
        endpoint("10.244.2.3", ready=False),
    ], ports=[("http", "TCP", 8080), ("metrics", "TCP", 9090)]))
    server = watching()
    web = f"web.ns.{DOMAIN}."
    targets = {f"web-0.{web}": "10.244.2.1", f"10-244-2-2.{web}": "10.244.2.2"}

    def srv_of(msg):
        return sorted((r.priority, r.weight, r.port, r.target.to_text()) for rrset in msg.answer
                      if rrset.rdtype == dns.rdatatype.SRV for r in rrset)

    def extras(msg):
        return {rrset.name.to_text(): sorted(r.address for r in rrset) for rrset in msg.additional
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)}

    http = ask(server, f"_http._tcp.{web}", "SRV")
    assert http.rcode() == dns.rcode.NOERROR
    # Weight 100 split over the two targets; the not-ready endpoint is nowhere.
    assert srv_of(http) == sorted((0, 50, 8080, t) for t in targets)
    assert extras(http) == {t: [ip] for t, ip in targets.items()}
    assert sorted(r.port for rrset in ask(server, f"_metrics._tcp.{web}", "SRV").answer for r in rrset) == [9090, 9090]

    # The Service name itself: every (target, port) pair, weight 100/4; each address once.
    whole = ask(server, web, "SRV")
    assert srv_of(whole) == sorted((0, 25, port, t) for t in targets for port in (8080, 9090))
    assert extras(whole) == {t: [ip] for t, ip in targets.items()}

    # A port or protocol the Service does not have.
    assert ask(server, f"_http._udp.{web}", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(server, f"_grpc._tcp.{web}", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert upstream.count() == 0


def test_per_endpoint_names(api, upstream, watching):
    api.push("ADDED", endpoint_slice("web-a", "ns", "web", [
        endpoint("10.244.2.1", hostname="web-0"),
        endpoint("10.244.2.2"),
        endpoint("10.244.2.3", ready=False),
    ]))
    server = watching()
    assert a(server, f"web-0.web.ns.{DOMAIN}") == ["10.244.2.1"]
    assert a(server, "WEB-0.Web.NS.svc.cluster.local") == ["10.244.2.1"]  # case-insensitive
    assert a(server, f"10-244-2-2.web.ns.{DOMAIN}") == ["10.244.2.2"]
    for missing in ("10-244-2-3", "web-1", "10-244-2-9"):  # not ready, or no such endpoint
        msg = ask(server, f"{missing}.web.ns.{DOMAIN}")
        assert msg.rcode() == dns.rcode.NXDOMAIN, missing
        assert soa_only_authority(msg)
    # An endpoint's name has only its own address, so AAAA is NODATA with the SOA.
    msg = ask(server, f"web-0.web.ns.{DOMAIN}", "AAAA")
    assert msg.rcode() == dns.rcode.NOERROR and soa_only_authority(msg)
    assert upstream.count() == 0


def test_ipv6_slices(api, upstream, watching):
    api.push("ADDED", endpoint_slice("v6-a", "ns", "v6", [endpoint("fd00::1"), endpoint("fd00::2", hostname="db-0"),
                                                         endpoint("fd00::3", ready=False), endpoint("fd00:1::")],
                                     address_type="IPv6"))
    # Dual stack: one Service, a slice per family.
    api.push("ADDED", endpoint_slice("ds-v4", "ns", "ds", [endpoint("10.244.3.1")]))
    api.push("ADDED", endpoint_slice("ds-v6", "ns", "ds", [endpoint("fd00::31")], address_type="IPv6"))
    server = watching()
    v6 = f"v6.ns.{DOMAIN}"
    msg = ask(server, v6, "AAAA")
    assert [rrset.rdtype for rrset in msg.answer] == [dns.rdatatype.AAAA]
    assert addresses(msg) == ["fd00:1::", "fd00::1", "fd00::2"]
    no_a = ask(server, v6, "A")
    assert no_a.rcode() == dns.rcode.NOERROR and soa_only_authority(no_a)
    assert addresses(ask(server, f"fd00--1.{v6}", "AAAA")) == ["fd00::1"]
    assert addresses(ask(server, f"db-0.{v6}", "AAAA")) == ["fd00::2"]
    # CoreDNS's name for an address ending in "::": a '0' after the trailing '-'.
    assert addresses(ask(server, f"fd00-1--0.{v6}", "AAAA")) == ["fd00:1::"]
    srv = ask(server, f"_http._tcp.{v6}", "SRV")
    assert sorted(r.target.to_text() for rrset in srv.answer for r in rrset) == \
        [f"db-0.{v6}.", f"fd00--1.{v6}.", f"fd00-1--0.{v6}."]
    assert sorted(rrset.rdtype for rrset in srv.additional if rrset.rdtype != dns.rdatatype.OPT) == \
        [dns.rdatatype.AAAA] * 3
    assert a(server, f"ds.ns.{DOMAIN}") == ["10.244.3.1"]
    assert addresses(ask(server, f"ds.ns.{DOMAIN}", "AAAA")) == ["fd00::31"]
    assert upstream.count() == 0


def test_other_names_go_upstream(api, upstream, watching):
    api.push("ADDED", ready_three())
    # A Service with a ClusterIP: its slices carry no headless label, so CoreDNS answers for it.
    api.push("ADDED", endpoint_slice("plain-a", "ns", "plain", [endpoint("10.244.5.1")], headless=False))
    server = watching()
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert upstream.count() == 0
    forwarded = {
        f"plain.ns.{DOMAIN}": [PLAIN_IP],  # not headless
        f"unknown.ns.{DOMAIN}": [],  # a Service the table has never seen: NXDOMAIN from upstream
        f"ns.{DOMAIN}": [],  # a namespace
        "www.example.org": ["192.0.2.10"],  # another zone
        "hl.ns.svc.other.local": [],  # the same labels under another cluster domain
    }
    for name, expected in forwarded.items():
        msg = ask(server, name)
        assert addresses(msg) == expected, name
        assert not msg.flags & dns.flags.AA, name  # a cache's answer, not the table's
        assert upstream.count(name) == 1, name
    # Two labels in front that are not _port._proto: CoreDNS's to interpret, so forwarded.
    ask(server, f"x.y.hl.ns.{DOMAIN}")
    assert upstream.count(f"x.y.hl.ns.{DOMAIN}") == 1
    assert upstream.count(HL) == 0


def test_other_types_and_truncation(api, upstream, watching):
    many = [endpoint(f"10.244.8.{i}") for i in range(1, 61)]  # 60 A records: over 512 bytes
    api.push("ADDED", endpoint_slice("big-a", "ns", "big", many))
    api.push("ADDED", ready_three())
    server = watching()
    soa = ask(server, HL, "SOA")
    assert soa.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in soa.answer] == [dns.rdatatype.SOA]
    txt = ask(server, HL, "TXT")
    assert txt.rcode() == dns.rcode.NOERROR and soa_only_authority(txt)
    big = f"big.ns.{DOMAIN}"
    every = [f"10.244.8.{i}" for i in range(1, 61)]
    # As CoreDNS truncates: the whole records that fit, in order, with TC=1. Header and question
    # take 12 + 26 + 4 bytes, each A record 16 (its owner a pointer to the question).
    for edns, limit in ((None, 512), (0, 512), (0, 700)):
        query = harness.make_query(big, edns=edns, payload=limit)
        wire = harness.udp_exchange(server.port, query)
        assert wire is not None and len(wire) <= limit, (edns, limit)
        truncated = dns.message.from_wire(wire)
        assert truncated.flags & dns.flags.TC and truncated.flags & dns.flags.AA
        assert truncated.rcode() == dns.rcode.NOERROR
        fitting = (limit - 42 - (0 if edns is None else 11)) // 16
        assert [r.address for rrset in truncated.answer for r in rrset] == every[:fitting], (edns, limit)
        assert (truncated.edns >= 0) == (edns is not None)
    full = harness.tcp(server.port, harness.make_query(big))
    assert not full.flags & dns.flags.TC
    assert len(addresses(full)) == 60
    assert upstream.count() == 0


@pytest.mark.parametrize("given,ttl", [("flag", 0), ("flag", 60), ("file", 3600)])
def test_kube_ttl(api, upstream, watching, tmp_path, given, ttl):
    api.push("ADDED", endpoint_slice("web-a", "ns", "web", [endpoint("10.244.2.1", hostname="web-0")]))
    config = tmp_path / "readyns.yaml"
    if given == "flag":
        server = watching("--kube-ttl", str(ttl))
    else:
        config.write_text(f"kube: {{ttl: {ttl}}}\n")
        server = watching("--config", str(config))
    web = f"web.ns.{DOMAIN}"

    def check_ttls():
        for name, qtype in ((web, "A"), (f"web-0.{web}", "A"), (f"_http._tcp.{web}", "SRV")):
            msg = ask(server, name, qtype)
            records = [rrset for rrset in msg.answer + msg.additional if rrset.rdtype != dns.rdatatype.OPT]
            assert records and all(rrset.ttl == ttl for rrset in records), (name, qtype, msg)
        # The SOA as CoreDNS's plugin.SOA makes it: TTL the ttl up to 300, MINIMUM the ttl.
        for name, qtype in ((web, "TXT"), (f"nope.{web}", "A"), (web, "SOA")):
            msg = ask(server, name, qtype)
            soa = (msg.answer if qtype == "SOA" else msg.authority)[0]
            assert soa.rdtype == dns.rdatatype.SOA, (name, qtype)
            assert (soa.ttl, soa[0].minimum) == (min(ttl, 300), ttl), (name, qtype)

    check_ttls()
    if given == "file":
        # Like the other Kubernetes settings, a new TTL needs a restart, and a reload says so.
        config.write_text("kube: {ttl: 7}\n")
        server.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "reloaded settings" in server.log(), 5, "the reload")
        assert "reload: kube changes need a restart" in server.log()
        check_ttls()
    assert upstream.count() == 0


def test_namespaces_flag(api, upstream, watching):
    api.push("ADDED", ready_three())
    api.push("ADDED", endpoint_slice("hl-a", "elsewhere", "hl", [endpoint("10.244.9.1")]))
    server = watching("--kube-namespace", "ns")
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert a(server, f"hl.elsewhere.{DOMAIN}") == []  # not watched: the upstream's NXDOMAIN
    assert upstream.count(f"hl.elsewhere.{DOMAIN}") == 1
    api.push("MODIFIED", endpoint_slice("hl-a", "elsewhere", "hl", [endpoint("10.244.9.2")]))
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.2")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2"], timeout=CHANGE_WITHIN)
    assert a(server, f"hl.elsewhere.{DOMAIN}") == []


# ---------------------------------------------------------------------------------------------
# Changes


def assert_gone_and_stays_gone(server, gone_ip, keep):
    """Polls until `gone_ip` is out of hl's A answer (within CHANGE_WITHIN), then checks that the
    next answers never bring it back. Returns the seconds it took."""
    msg, took = wait_for_answer(server, lambda m: gone_ip not in addresses(m), timeout=CHANGE_WITHIN)
    assert addresses(msg) == keep
    for _ in range(AFTER_CHANGE_QUERIES):
        assert addresses(ask(server, HL)) == keep
    return took


def test_watch_event_invalidates_at_once(api, upstream, watching):
    api.push("ADDED", ready_three())
    server = watching()
    # Asked first, so that whatever readyns keeps about the name is warm.
    for qtype in ("A", "SRV"):
        ask(server, HL, qtype)
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert a(server, f"10-244-1-3.{HL}") == ["10.244.1.3"]

    # A client asks continuously from another thread while the event goes out: once an answer
    # without the endpoint has been seen, no later answer may have it again.
    seen = []  # (monotonic time, addresses), in the order the answers came
    stop = threading.Event()

    def client():
        while not stop.is_set():
            seen.append((time.monotonic(), addresses(ask(server, HL))))
            time.sleep(POLL)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        pushed = api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [
            endpoint("10.244.1.2"), endpoint("10.244.1.3", ready=False, terminating=True), endpoint("10.244.1.4")]))
        took = assert_gone_and_stays_gone(server, "10.244.1.3", ["10.244.1.2", "10.244.1.4"])
    finally:
        stop.set()
        thread.join()
    first_without = next(i for i, (_, ips) in enumerate(seen) if "10.244.1.3" not in ips)
    assert seen[first_without][0] >= pushed["at"]
    assert all("10.244.1.3" not in ips for _, ips in seen[first_without:]), seen[first_without:]
    print(f"endpoint gone from answers {took * 1000:.1f} ms after the event was pushed")

    # Every name of the Service changed with it, at the same moment.
    assert ask(server, f"10-244-1-3.{HL}").rcode() == dns.rcode.NXDOMAIN
    srv = ask(server, f"_http._tcp.{HL}", "SRV")
    assert sorted(r.target.to_text() for rrset in srv.answer for r in rrset) == [
        f"10-244-1-2.{HL}.", f"10-244-1-4.{HL}."]
    assert upstream.count() == 0

    # And back: ready again, then the slice deleted.
    api.push("MODIFIED", ready_three())
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"],
                    timeout=CHANGE_WITHIN)
    api.push("ADDED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.7")]))
    api.push("DELETED", ready_three())
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.7"], timeout=CHANGE_WITHIN)


def test_relist_after_410_event(api, upstream, watching):
    api.push("ADDED", ready_three())
    server = watching()
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    lists = api.state()["lists"]
    # Changes the watch never carried, then the history forgotten: only a relist can bring them.
    api.push("DELETED", ready_three(), silent=True)
    api.push("ADDED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.8")]), silent=True)
    api.push("ADDED", endpoint_slice("new-a", "ns", "new", [endpoint("10.244.6.1")]), silent=True)
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]  # not seen yet: as it should
    api.call("/expire", {"how": "event"})
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.8"])
    assert a(server, f"new.ns.{DOMAIN}") == ["10.244.6.1"]
    state = api.wait(open_watches=1)
    assert state["lists"] == lists + 1
    # Watching again from the relist's version: events flow as before.
    api.push("MODIFIED", endpoint_slice("hl-b", "ns", "hl", [endpoint("10.244.1.9")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.9"], timeout=CHANGE_WITHIN)
    assert upstream.count() == 0


def test_relist_after_http_410(api, upstream, watching):
    api.push("ADDED", ready_three())
    server = watching()
    lists = api.state()["lists"]
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.2")]), silent=True)
    # The open watch is cut, and watching again from the old version gets an HTTP 410.
    api.call("/expire", {"how": "http"})
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2"])
    state = api.wait(open_watches=1)
    assert state["expired"] >= 1 and state["lists"] == lists + 1
    assert upstream.count() == 0


def test_reconnect_after_dropped_connection(api, upstream, watching):
    api.push("ADDED", ready_three())
    server = watching()
    before = api.state()
    assert api.call("/drop", {})["dropped"] == 1
    # An event while no watch is open: the resumed watch must still bring it.
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.2"), endpoint("10.244.1.4")]))
    # Answers stay as they were while the watch is away (the table is kept, not dropped).
    assert a(server) in (["10.244.1.2", "10.244.1.3", "10.244.1.4"], ["10.244.1.2", "10.244.1.4"])
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2", "10.244.1.4"])
    state = api.wait(watches=before["watches"] + 1, open_watches=1)
    assert state["lists"] == before["lists"]  # resumed from its resourceVersion, not relisted
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.5")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.5"], timeout=CHANGE_WITHIN)
    assert upstream.count() == 0


def test_api_outage_keeps_the_table_then_catches_up(api, upstream, watching):
    # The API server goes away (connections refused) for several of readyns's retries: the table
    # keeps answering, as it was. Back on the same port with a change made meanwhile, readyns's
    # backed-off retry resumes the watch from its resourceVersion and the answers follow.
    api.push("ADDED", ready_three())
    metrics = harness.free_port()
    server = watching(f"--metrics={harness.HOST}:{metrics}")
    before = api.state()
    modified_before = harness.metric(harness.scrape(metrics), "readyns_watch_events_total", absent=0, type="MODIFIED")
    assert harness.metric(harness.scrape(metrics), "readyns_endpoints_ready") == 3

    port = api.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((harness.HOST, port), timeout=1).close()
    # Two refused reconnects seen by readyns: the outage spans its backed-off retries.
    refused = "Couldn't connect to server"
    harness.wait_until(lambda: server.log().count(refused) >= 2, 10, "readyns failing to reconnect twice")
    for _ in range(20):
        assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert harness.metric(harness.scrape(metrics), "readyns_endpoints_ready") == 3
    assert upstream.count(HL) == 0, "the table stays synced during an outage: nothing goes upstream"

    # A change while the API is away, past the resourceVersion readyns watches from: only the
    # resumed watch can bring it.
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [
        endpoint("10.244.1.2"), endpoint("10.244.1.3", ready=False), endpoint("10.244.1.4")]))
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert api.up() == port
    # The next retry is at most the backoff's current step away (a few seconds after 2+ failures).
    _, took = wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2", "10.244.1.4"], timeout=10)
    print(f"change seen {took:.2f} s after the API came back")
    state = api.wait(open_watches=1)
    assert state["lists"] == before["lists"], "resumed from its resourceVersion, not relisted"
    assert state["last_watch_version"] == str(before["version"])
    assert harness.metric(harness.scrape(metrics), "readyns_watch_events_total", type="MODIFIED") == modified_before + 1
    assert harness.metric(harness.scrape(metrics), "readyns_endpoints_ready") == 2
    # And the watch goes on from there.
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.5")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.5"], timeout=CHANGE_WITHIN)
    assert upstream.count(HL) == 0


def test_malformed_watch_lines_are_skipped(api, upstream, watching):
    api.push("ADDED", ready_three())
    server = watching()
    before = api.state()
    api.raw("{this is not json")
    api.raw('["an", "array"]')
    api.raw('{"type": "MODIFIED", "object": {"metadata": {"name": "hl-a", "namespace": "ns"}, '
            '"addressType": "IPv4", "endpoints": "not an array"}}')
    api.raw('{"type": "ADDED", "object": {"kind": "EndpointSlice", "metadata": "not an object"}}')
    # Events are applied in order: once this one shows, the malformed lines have been read.
    api.push("ADDED", endpoint_slice("mark-a", "ns", "mark", [endpoint("10.244.7.1")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.7.1"], name=f"mark.ns.{DOMAIN}")
    # The malformed MODIFIED was skipped whole: hl keeps its last good state.
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    api.push("MODIFIED", endpoint_slice("hl-a", "ns", "hl", [endpoint("10.244.1.2")]))
    wait_for_answer(server, lambda m: addresses(m) == ["10.244.1.2"], timeout=CHANGE_WITHIN)
    state = api.state()
    # Same watch all along: skipping a line is not a reason to reconnect or relist.
    assert (state["watches"], state["lists"]) == (before["watches"], before["lists"])
    assert server.alive()
    assert "skipping" in server.log()
    assert upstream.count(HL) == 0  # (mark was asked upstream until its event came)


# ---------------------------------------------------------------------------------------------
# Without a synced table


def test_unreachable_api_forwards(upstream, readyns, tmp_path):
    # Nothing listens there: the table never syncs, and every name goes to the upstream.
    closed = harness.free_port()
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    token = tmp_path / "token"
    token.write_text("t\n")
    server = readyns(upstreams=[upstream.port], args=[
        "--kube", "on", "--kube-api", f"https://127.0.0.1:{closed}", "--kube-token-file", token,
        "--kube-ca-file", ca, *admin_off()])
    assert a(server) == [UPSTREAM_HL]
    assert upstream.count(HL) == 1
    assert a(server, f"10-244-1-2.{HL}") == []  # the upstream's NXDOMAIN, not the table's
    assert upstream.count(f"10-244-1-2.{HL}") == 1
    harness.wait_until(lambda: "listing EndpointSlices in all namespaces failed" in server.log(), 10,
                       "the failed list in readyns' log")
    assert a(server) == [UPSTREAM_HL]  # still: a failed list leaves the table unsynced


def test_rejected_token_forwards_until_synced(api, upstream, readyns):
    api.push("ADDED", ready_three())
    api.call("/token", {"token": "another"})
    server = readyns(upstreams=[upstream.port], args=[*api.readyns_args(), *admin_off()])
    api.wait(unauthorized=1)
    assert a(server) == [UPSTREAM_HL]
    assert upstream.count(HL) == 1
    # Once the API lets it in, the table answers, the upstream's cached answer notwithstanding.
    api.call("/token", {"token": "token-1"})
    api.wait(open_watches=1, timeout=60)  # after a retry with backoff
    assert a(server) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert upstream.count(HL) == 1


def test_kube_off_never_contacts_the_api(api, upstream, readyns):
    api.push("ADDED", ready_three())
    off = readyns(upstreams=[upstream.port], args=[*api.readyns_args(mode="off"), *admin_off()])
    assert a(off) == [UPSTREAM_HL]
    assert upstream.count(HL) == 1
    # An instance that does watch, started after it and asked the same: by the time it has, the
    # first one would have had all the time it needed to reach the API too.
    on = readyns(upstreams=[upstream.port], args=[*api.readyns_args(), *admin_off()])
    api.wait(open_watches=1)
    assert a(on) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert a(off) == [UPSTREAM_HL]
    state = api.state()
    assert (state["lists"], state["watches"], state["unauthorized"]) == (1, 1, 0)
