# 0x20 (--randomize-case) end to end.
#
# The case readyns sends upstream, what it echoes to clients, and which upstream replies it
# believes.
import time

import dns.rcode

import harness
from harness import udp

NAMES = [f"svc{n}.ns1.svc.cluster.local" for n in range(10)]
CLIENT_CASE = "SvC{n}.Ns1.sVc.Cluster.LOCAL"  # what clients ask: neither lower nor upper case


def letters_case(qname):
    """The case pattern of the letters of `qname` ("UlU..."), for telling randomization apart."""
    return "".join("U" if c.isupper() else "l" for c in qname if c.isalpha())


def ask(server, n):
    asked = CLIENT_CASE.format(n=n)
    return asked, udp(server.port, harness.make_query(asked))


def assert_echoes_client(asked, answer, n):
    # dnspython compares names case-blind: compare the text, letter for letter.
    assert answer.question[0].name.to_text() == asked + "."
    assert [rrset.name.to_text() for rrset in answer.answer] == [asked + "."]
    assert harness.answer_addresses(answer) == [harness.svc_ip(1, n)]


def test_randomized_case_goes_upstream_and_client_case_comes_back(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port], args=["--randomize-case"])
    for n in range(len(NAMES)):
        asked, answer = ask(server, n)
        assert answer.rcode() == dns.rcode.NOERROR
        assert_echoes_client(asked, answer, n)
    sent = [upstream.seen(name)[0].qname for name in NAMES]
    assert all(len(upstream.seen(name)) == 1 for name in NAMES)
    # Each name mixes cases (all letters alike by chance: 2^-21 per name), and each query its own
    # way (a fixed pattern, such as the client's, would not be 0x20).
    for qname in sent:
        assert qname.lower() != qname and qname.upper() != qname, f"{qname} was not randomized"
    assert len({letters_case(q.split(".", 1)[1]) for q in sent}) > 1, f"one pattern for all: {sent}"
    assert all(letters_case(q) != letters_case(CLIENT_CASE.format(n=n) + ".") for n, q in enumerate(sent))


def test_without_the_switch_the_name_goes_as_the_cache_key(fault, readyns):
    upstream = fault("ok")
    server = readyns(upstreams=[upstream.port])
    for n in range(3):
        asked, answer = ask(server, n)
        assert_echoes_client(asked, answer, n)
    # One case for every client (the key the cache and the coalescing share): lower.
    assert [upstream.seen(NAMES[n])[0].qname for n in range(3)] == [NAMES[n] + "." for n in range(3)]


def test_reply_in_another_case_is_not_believed(fault, readyns):
    upstream = fault("flip-case")
    server = readyns(upstreams=[upstream.port],
                     args=["--randomize-case", "--upstream-timeout", "200", "--resolve-timeout", "600"])
    start = time.monotonic()
    asked, answer = ask(server, 0)
    took = time.monotonic() - start
    # Ignored like a forgery: readyns waits on for the real reply, tries again (each attempt's
    # reply flipped too), and gives up at the resolution deadline.
    assert answer.rcode() == dns.rcode.SERVFAIL
    assert not answer.answer
    assert 0.5 <= took < 1.5, f"SERVFAIL after {took:.2f}s, expected the 0.6 s resolution deadline"
    assert upstream.count(NAMES[0]) >= 2, "the flipped reply was taken as the answer"
    # Nothing of it was cached: once the upstream echoes case, the next query goes there and gets
    # the real answer.
    upstream.mode = "ok"
    before = upstream.count(NAMES[0])
    asked, answer = ask(server, 0)
    assert_echoes_client(asked, answer, 0)
    assert upstream.count(NAMES[0]) == before + 1


def test_without_the_switch_a_reply_in_another_case_is_taken(fault, readyns):
    # Names compare case-blind then (RFC 1035 2.3.3): an upstream that does not echo case works.
    upstream = fault("flip-case")
    server = readyns(upstreams=[upstream.port], args=["--upstream-timeout", "200", "--resolve-timeout", "600"])
    asked, answer = ask(server, 0)
    assert answer.rcode() == dns.rcode.NOERROR
    assert_echoes_client(asked, answer, 0)  # the client's case, not the upstream's
    assert upstream.count(NAMES[0]) == 1
