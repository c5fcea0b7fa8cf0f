// Writes the seed corpus of the fuzz targets. Deterministic: the same files every run.
//
// Real DNS queries and replies built with ldns, EndpointSlice JSON in the shapes of the Kubernetes
// API reference, and operation streams for the cache and the query handler.
//
//   tests/fuzz/gen_corpus.sh            (builds this with c++ and ldns, writes tests/fuzz/corpus)
#include <stdbool.h>  // before ldns: it defines true/false as macros otherwise

#include <ldns/ldns.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;
std::filesystem::path out_dir;

void write(const std::string& target, const std::string& name, const Bytes& bytes) {
  std::filesystem::path dir = out_dir / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_text(const std::string& target, const std::string& name, const std::string& text) {
  write(target, name, Bytes(text.begin(), text.end()));
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "gen_corpus: %s\n", what.c_str());
  std::exit(1);
}

void add16(Bytes& m, uint16_t v) {
  m.push_back(uint8_t(v >> 8));
  m.push_back(uint8_t(v));
}
void bump(Bytes& m, size_t offset) {
  uint16_t v = uint16_t(m[offset] << 8 | m[offset + 1]);
  m[offset] = uint8_t((v + 1) >> 8);
  m[offset + 1] = uint8_t(v + 1);
}

Bytes to_wire(ldns_pkt* pkt) {
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, pkt, &size) != LDNS_STATUS_OK) die("ldns_pkt2wire");
  Bytes out(wire, wire + size);
  LDNS_FREE(wire);
  ldns_pkt_free(pkt);
  return out;
}

ldns_rr* rr(const std::string& text) {
  ldns_rr* r = nullptr;
  if (ldns_rr_new_frm_str(&r, text.c_str(), 0, nullptr, nullptr) != LDNS_STATUS_OK) {
    die("bad record: " + text);
  }
  return r;
}

struct Query {
  std::string name;
  ldns_rr_type type = LDNS_RR_TYPE_A;
  ldns_rr_class rclass = LDNS_RR_CLASS_IN;
  uint16_t id = 0x1234;
  int edns_size = 0;  // 0: no EDNS
  bool do_bit = false;
  uint8_t edns_version = 0;
  ldns_pkt_opcode opcode = LDNS_PACKET_QUERY;
};

Bytes query(const Query& q) {
  ldns_pkt* pkt =
      ldns_pkt_query_new(ldns_dname_new_frm_str(q.name.c_str()), q.type, q.rclass, LDNS_RD);
  if (!pkt) die("query " + q.name);
  ldns_pkt_set_id(pkt, q.id);
  ldns_pkt_set_opcode(pkt, q.opcode);
  if (q.edns_size) {
    ldns_pkt_set_edns_udp_size(pkt, uint16_t(q.edns_size));
    ldns_pkt_set_edns_do(pkt, q.do_bit);
    ldns_pkt_set_edns_version(pkt, q.edns_version);
  }
  return to_wire(pkt);
}

struct Reply {
  std::string qname = "www.example.com.";
  ldns_rr_type qtype = LDNS_RR_TYPE_A;
  uint16_t id = 0x1234;
  uint8_t rcode = 0;
  bool tc = false, aa = true, edns = false;
  std::vector<std::string> answer, authority, additional;
};

Bytes reply(const Reply& r) {
  ldns_pkt* pkt = ldns_pkt_query_new(ldns_dname_new_frm_str(r.qname.c_str()), r.qtype,
                                     LDNS_RR_CLASS_IN, LDNS_RD);
  if (!pkt) die("reply " + r.qname);
  ldns_pkt_set_id(pkt, r.id);
  ldns_pkt_set_qr(pkt, true);
  ldns_pkt_set_ra(pkt, true);
  ldns_pkt_set_aa(pkt, r.aa);
  ldns_pkt_set_tc(pkt, r.tc);
  ldns_pkt_set_rcode(pkt, r.rcode);
  for (const std::string& t : r.answer) ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, rr(t));
  for (const std::string& t : r.authority) ldns_pkt_push_rr(pkt, LDNS_SECTION_AUTHORITY, rr(t));
  for (const std::string& t : r.additional) ldns_pkt_push_rr(pkt, LDNS_SECTION_ADDITIONAL, rr(t));
  if (r.edns) ldns_pkt_set_edns_udp_size(pkt, 1232);
  return to_wire(pkt);
}

// ---- fuzz_query ------------------------------------------------------------------------------

void queries() {
  const std::string t = "fuzz_query";
  write(t, "a", query({.name = "www.example.com."}));
  write(t, "a-edns-do", query({.name = "www.example.com.", .edns_size = 1232, .do_bit = true}));
  write(t, "aaaa-mixed-case-edns4096",
        query({.name = "WwW.ExAmPlE.CoM.", .type = LDNS_RR_TYPE_AAAA, .edns_size = 4096}));
  write(t, "srv-k8s",
        query({.name = "_http._tcp.hl0.ns0.svc.cluster.local.",
               .type = LDNS_RR_TYPE_SRV,
               .edns_size = 1232}));
  write(t, "root-ns", query({.name = ".", .type = LDNS_RR_TYPE_NS}));
  write(t, "axfr", query({.name = "example.com.", .type = LDNS_RR_TYPE_AXFR}));
  write(t, "ixfr", query({.name = "example.com.", .type = LDNS_RR_TYPE_IXFR}));
  write(t, "notify",
        query({.name = "example.com.", .type = LDNS_RR_TYPE_SOA, .opcode = LDNS_PACKET_NOTIFY}));
  write(t, "edns-version-1", query({.name = "example.com.", .edns_size = 1232, .edns_version = 1}));
  write(t, "chaos-version-bind",
        query({.name = "version.bind.", .type = LDNS_RR_TYPE_TXT, .rclass = LDNS_RR_CLASS_CH}));
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                        std::string(63, 'c') + "." + std::string(61, 'd') + ".";
  write(t, "name-255-bytes", query({.name = longest, .edns_size = 512}));

  Bytes m = query({.name = "www.example.com."});
  m[5] = 0;  // QDCOUNT 0
  write(t, "no-question", m);
  m = query({.name = "www.example.com."});
  m[2] |= 0x80;  // a response: dropped
  write(t, "qr-set", m);
  // Two OPT records (FORMERR), and an OPT carrying a COOKIE option.
  m = query({.name = "www.example.com.", .edns_size = 1232});
  const Bytes opt = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
  m.insert(m.end(), opt.begin(), opt.end());
  bump(m, 10);
  write(t, "two-opt", m);
  m = query({.name = "www.example.com."});
  const Bytes cookie = {0,  0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 12, 0,
                        10, 0, 8,  1,    2,    3, 4, 5,    6, 7, 8};
  m.insert(m.end(), cookie.begin(), cookie.end());
  bump(m, 10);
  write(t, "opt-cookie", m);
  // A compression pointer in the question (FORMERR) and a truncated question.
  m = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1};
  write(t, "question-pointer", m);
  m = query({.name = "www.example.com."});
  m.resize(m.size() - 3);
  write(t, "truncated-question", m);
}

// ---- fuzz_reply ------------------------------------------------------------------------------

// Reply seeds start with [flags][zone byte][render byte] (see fuzz_reply.cpp).
Bytes framed(uint8_t flags, uint8_t zone, uint8_t render, const Bytes& body,
             const std::string& zone_text = "") {
  Bytes m = {flags, zone, render};
  m.insert(m.end(), zone_text.begin(), zone_text.end());
  m.insert(m.end(), body.begin(), body.end());
  return m;
}

void replies() {
  const std::string t = "fuzz_reply";
  const std::string soa =
      "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 1800 86400 60";
  write(t, "a-opt",
        framed(0x00, 0, 0x01,
               reply({.edns = true, .answer = {"www.example.com. 300 IN A 192.0.2.1"}})));
  write(t, "cname-chain-and-junk",
        framed(
            0x01, 0, 0x03,
            reply({.answer = {"www.example.com. 3600 IN CNAME web.example.com.",
                              "web.example.com. 60 IN CNAME cdn.example.com.",
                              "cdn.example.com. 20 IN A 192.0.2.7", "evil.com. 86400 IN A 6.6.6.6"},
                   .authority = {"example.com. 3600 IN NS ns1.example.com.",
                                 "com. 3600 IN NS a.gtld-servers.net."},
                   .additional = {"ns1.example.com. 3600 IN A 192.0.2.53",
                                  "a.gtld-servers.net. 3600 IN A 192.5.6.30"}})));
  write(t, "nxdomain-soa",
        framed(0x09, 0, 0x00, reply({.rcode = 3, .edns = true, .authority = {soa}})));
  write(t, "nodata-soa",
        framed(0x21, 0, 0x00, reply({.qtype = LDNS_RR_TYPE_A, .authority = {soa}})));
  write(t, "nodata-no-soa", framed(0x00, 0, 0x00, reply({})));
  write(t, "truncated", framed(0x04, 0, 0x00, reply({.tc = true})));
  write(t, "servfail", framed(0x00, 0, 0x00, reply({.rcode = 2, .edns = true})));
  write(t, "refused", framed(0x00, 0, 0x00, reply({.rcode = 5})));
  std::vector<std::string> many;
  for (int i = 0; i < 60; ++i)
    many.push_back("www.example.com. 300 IN A 192.0.2." + std::to_string(i));
  write(t, "sixty-a", framed(0x08, 0, 0x00, reply({.edns = true, .answer = many})));
  write(t, "mx-compressed",
        framed(0x41, 0, 0x02,
               reply({.qtype = LDNS_RR_TYPE_MX,
                      .answer = {"www.example.com. 300 IN MX 10 mail.example.com.",
                                 "www.example.com. 300 IN MX 20 mail2.example.com."},
                      .additional = {"mail.example.com. 300 IN A 192.0.2.25",
                                     "mail2.example.com. 300 IN AAAA 2001:db8::25"}})));
  write(t, "mixed-case-question",
        framed(0x04, 0, 0x00,
               reply({.qname = "WwW.eXaMpLe.CoM.",
                      .answer = {"WwW.eXaMpLe.CoM. 300 IN A 192.0.2.1"}})));
  const std::string svc = "hl0.ns0.svc.cluster.local.";
  write(t, "srv-k8s-suffix-zone",
        framed(0x62, 3, 0x00,
               reply({.qname = "_http._tcp." + svc,
                      .qtype = LDNS_RR_TYPE_SRV,
                      .answer = {"_http._tcp." + svc + " 5 IN SRV 0 50 8080 web-0." + svc,
                                 "_http._tcp." + svc + " 5 IN SRV 0 50 8080 web-1." + svc},
                      .additional = {"web-0." + svc + " 5 IN A 10.0.0.1",
                                     "web-1." + svc + " 5 IN A 10.0.0.2"}})));
  write(t, "zone-from-input",
        framed(0x83, 11, 0x00,
               reply({.answer = {"www.example.com. 300 IN A 192.0.2.1"},
                      .authority = {"example.com. 300 IN NS ns.example.net."},
                      .additional = {"ns.example.net. 300 IN A 192.0.2.2"}}),
               "example.com"));
  write(t, "ttl-top-bit",
        framed(0xe0, 0, 0x00,
               reply({.answer = {"www.example.com. 2147483648 IN A 192.0.2.1",
                                 "www.example.com. 4294967295 IN A 192.0.2.2"}})));
  std::vector<std::string> chain;
  for (int i = 0; i < 20; ++i) {
    chain.push_back((i ? "c" + std::to_string(i) + ".example.com." : "www.example.com.") +
                    std::string(" 300 IN CNAME c") + std::to_string(i + 1) + ".example.com.");
  }
  write(t, "cname-chain-20", framed(0x01, 0, 0x00, reply({.answer = chain})));
  // OPT in the middle of the additional section: removed by rebuilding.
  Bytes m = reply({.answer = {"www.example.com. 300 IN A 192.0.2.1"}});
  const Bytes opt = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
  m.insert(m.end(), opt.begin(), opt.end());
  const Bytes glue = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 9};
  m.insert(m.end(), glue.begin(), glue.end());
  bump(m, 10);
  bump(m, 10);
  write(t, "opt-not-last", framed(0x00, 0, 0x00, m));
  // An upstream that appends bytes after its last record.
  m = reply({.edns = false, .answer = {"www.example.com. 300 IN A 192.0.2.1"}});
  m.insert(m.end(), {0xde, 0xad, 0xbe, 0xef});
  write(t, "trailing-bytes", framed(0x08, 0, 0x00, m));
}

// ---- fuzz_cache ------------------------------------------------------------------------------

void cache_streams() {
  std::mt19937 rng(20240601);
  for (int i = 0; i < 8; ++i) {
    Bytes m(size_t(64 + 96 * i));
    for (uint8_t& b : m) b = uint8_t(rng());
    write("fuzz_cache", "random-" + std::to_string(i), m);
  }
}

// ---- fuzz_endpointslice ----------------------------------------------------------------------

void endpoint_slices() {
  const std::string t = "fuzz_endpointslice";
  // As the API reference shows a list and watch events (unknown fields included), one per line.
  const std::string slice_a =
      R"({"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"hl0-abc","namespace":"ns0","uid":"9a1c","resourceVersion":"4700","generateName":"hl0-","labels":{"kubernetes.io/service-name":"hl0","service.kubernetes.io/headless":"","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"},"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":"hl0","uid":"1"}]},"addressType":"IPv4","endpoints":[{"addresses":["10.244.1.2"],"conditions":{"ready":true,"serving":true,"terminating":false},"hostname":"web-0","targetRef":{"kind":"Pod","namespace":"ns0","name":"web-0"},"nodeName":"n1","zone":"z1"},{"addresses":["10.244.1.3"],"conditions":{"ready":false,"serving":true,"terminating":true},"hostname":"web-1"}],"ports":[{"name":"http","protocol":"TCP","port":8080,"appProtocol":"http"},{"name":"dns","protocol":"UDP","port":53}]})";
  const std::string slice_b =
      R"({"metadata":{"name":"hl0-def","namespace":"ns0","resourceVersion":"4711","labels":{"kubernetes.io/service-name":"hl0","service.kubernetes.io/headless":""}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.2.9"],"conditions":{"ready":true}},{"addresses":["10.244.2.10"]}],"ports":[{"name":"http","protocol":"TCP","port":8080}]})";
  const std::string slice_v6 =
      R"({"metadata":{"name":"db-v6","namespace":"data","resourceVersion":"12","labels":{"kubernetes.io/service-name":"db","service.kubernetes.io/headless":""}},"addressType":"IPv6","endpoints":[{"addresses":["2001:DB8::1"],"hostname":"db-0","conditions":{"ready":true}},{"addresses":["fd00::2","fd00::3"],"conditions":{"ready":null}}],"ports":[{"name":"pg","protocol":"TCP","port":5432},{"port":5433}]})";
  write_text(
      t, "api-reference-list-and-events",
      R"({"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"4711"},"items":[)" +
          slice_a + "]}\n" + R"({"type":"ADDED","object":)" + slice_b + "}\n" +
          R"({"type":"MODIFIED","object":)" + slice_a + "}\n" +
          R"({"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"4800","annotations":{"k8s.io/initial-events-end":"true"}}}})"
          "\n" +
          R"({"type":"DELETED","object":)" + slice_b + "}\n" +
          R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 4700 (4800)","reason":"Expired","code":410}})j"
          "\n");
  write_text(
      t, "ipv6-and-continue",
      R"({"metadata":{"resourceVersion":"99","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},"items":[)" +
          slice_v6 + "," + slice_b + "]}\n" + R"({"type":"ADDED","object":)" + slice_a + "}\n");
  write_text(
      t, "empty-list-then-events",
      R"({"metadata":{"resourceVersion":"1"},"items":[]})"
      "\n" +
          std::string(R"({"type":"ADDED","object":)") + slice_v6 + "}\n" +
          R"({"type":"MODIFIED","object":{"metadata":{"name":"db-v6","namespace":"data","labels":{"kubernetes.io/service-name":"db"}},"addressType":"IPv6","endpoints":[]}})"
          "\n" +
          R"({"type":"DELETED","object":{"metadata":{"name":"db-v6","namespace":"data"}}})"
          "\n");
  write_text(
      t, "odd-slices",
      R"({"metadata":{"resourceVersion":"5"},"items":[)"
      R"({"metadata":{"name":"f","namespace":"ns1","labels":{"kubernetes.io/service-name":"ext","service.kubernetes.io/headless":""}},"addressType":"FQDN","endpoints":[{"addresses":["db.example.com"]}]},)"
      R"({"metadata":{"name":"n","namespace":"ns1","labels":{"kubernetes.io/service-name":"plain"}},"addressType":"IPv4","endpoints":[{"addresses":["10.1.1.1"]}]},)"
      R"({"metadata":{"name":"bad-port","namespace":"ns1","labels":{"kubernetes.io/service-name":"x","service.kubernetes.io/headless":""}},"addressType":"IPv4","endpoints":[{"addresses":["10.1.1.2"],"hostname":"Not_A_Label"}],"ports":[{"port":70000}]},)"
      R"({"metadata":{"name":"UPPER","namespace":"ns1","labels":{"kubernetes.io/service-name":"Up","service.kubernetes.io/headless":""}},"addressType":"IPv4","endpoints":[{"addresses":["10.1.1.3"],"hostname":"WEB"}],"ports":[{"name":"HTTP","protocol":"TCP","port":80}]})"
      "]}\n");
}

// ---- fuzz_query_handler ----------------------------------------------------------------------

// Operation streams (see fuzz_query_handler.cpp): 4 setting bytes, then operations.
namespace op {
Bytes query(uint8_t name, uint8_t mask, uint8_t flags, bool second_worker = false) {
  return {uint8_t(second_worker ? 0x80 : 0x00), name, mask, flags};
}
Bytes reply(uint8_t which, uint8_t flags, uint8_t rcode, std::initializer_list<uint8_t> counts,
            std::initializer_list<uint8_t> records) {
  Bytes m = {0x02, which, flags, rcode};
  m.insert(m.end(), counts.begin(), counts.end());
  m.insert(m.end(), records.begin(), records.end());
  return m;
}
Bytes fail(uint8_t which) {
  return {0x04, which};
}
Bytes advance(uint8_t step) {
  return {0x05, step};
}
Bytes loop() {
  return {0x07};
}
Bytes close(uint8_t which) {
  return {0x06, which};
}
}  // namespace op

Bytes stream(std::initializer_list<Bytes> parts) {
  Bytes m;
  for (const Bytes& p : parts) m.insert(m.end(), p.begin(), p.end());
  return m;
}

void handler_streams() {
  const std::string t = "fuzz_query_handler";
  // s0: attempt 1000 ms (2<<2), resolve 4000 ms (3<<4), stale after 500 ms (2<<6) ; s1: no
  // limits to speak of (3 | 3<<2 | 3<<4); s2: cache of 16; s3: stale_max 3600 s.
  const Bytes settings = {0x08 | 0x30 | 0x80, 0x3f, 15, 2};
  const uint8_t rd_edns = 0x05, rd = 0x01;
  // A miss, an A answer (TTL 30), then hits and an expiry.
  write(t, "miss-answer-hit",
        stream({settings, op::query(0, 0, rd_edns), op::reply(0, 0, 0, {1, 0, 0}, {0x00, 3}),
                op::query(0, 0xff, rd_edns), op::advance(6), op::query(0, 0x0f, rd), op::advance(7),
                op::query(0, 0, rd_edns)}));
  // Three clients coalesce (two workers through the mesh), a CNAME chain answers them.
  write(t, "coalesce-cname",
        stream({settings, op::query(0, 0, rd), op::query(0, 0x55, rd), op::query(0, 0xaa, rd, true),
                op::reply(0, 0, 0, {3, 1, 1}, {0x02, 3, 1, 0x10, 3, 0x40, 4, 0x33, 3, 0, 0x00, 3}),
                op::loop(), op::query(0, 0, rd, true)}));
  // Truncated over UDP, then over TCP; a failure and a failover; an NXDOMAIN with SOA.
  write(t, "tc-failover-nxdomain",
        stream({settings, op::query(2, 0, rd_edns), op::reply(0, 0x01, 0, {0, 0, 0}, {}),
                op::reply(0, 0, 0, {1, 0, 0}, {0x00, 4}), op::query(1, 0, rd), op::fail(0),
                op::advance(5), op::reply(0, 0, 3, {0, 1, 0}, {0x03, 4, 4}), op::query(1, 0, rd)}));
  // Stale: an answer expires, upstream fails, the stale answer is served.
  write(t, "serve-stale",
        stream({settings, op::query(0, 0, rd), op::reply(0, 0, 0, {1, 0, 0}, {0x00, 2}),
                op::advance(6), op::query(0, 0, rd), op::advance(6), op::fail(0), op::advance(7),
                op::loop()}));
  // The endpoint table answers its names (s0 bit 1), the rest is forwarded; a client leaves.
  Bytes local = settings;
  local[0] |= 2;
  write(t, "local-table",
        stream({local, op::query(3, 0, rd_edns | 0x20), op::query(4, 0x0f, rd),
                op::query(7, 0, rd | 0x20), op::query(5, 0, rd), op::close(3),
                op::reply(0, 0, 2, {0, 0, 0}, {}), op::advance(7)}));
  // Raw bytes: a FORMERR query and a raw reply.
  Bytes raw = {0x01, 14, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0};
  Bytes raw_reply = ::reply({.edns = true, .answer = {"www.example.com. 300 IN A 192.0.2.1"}});
  Bytes raw_op = {0x03, 0, uint8_t(raw_reply.size() >> 8), uint8_t(raw_reply.size())};
  raw_op.insert(raw_op.end(), raw_reply.begin(), raw_reply.end());
  write(t, "raw", stream({settings, raw, op::query(0, 0, rd_edns), raw_op}));
}

// ---- fuzz_config ------------------------------------------------------------------------------

void configs() {
  const std::string t = "fuzz_config";
  // deploy/kubernetes/base/readyns.yaml with its placeholders filled in (resolv.conf references
  // name the test's own file: the fuzzer reads nothing outside its scratch directory).
  write_text(t, "daemonset",
             "listen:\n  - \"169.254.20.10:53\"\n  - \"10.96.0.10:53\"\n"
             "upstreams:\n  - resolv.conf:/tmp/readyns-fuzz-config/resolv.conf\n"
             "forward:\n  - zone: cluster.local\n    upstreams:\n      - \"10.96.0.11:53\"\n"
             "  - zone: in-addr.arpa\n    upstreams:\n      - \"10.96.0.11:53\"\n"
             "  - zone: ip6.arpa\n    upstreams: [\"[fd00::11]:53\"]\n"
             "cache:\n  size: 100000\n  min_ttl: 0\n  max_ttl: 30\n  neg_ttl: 5\n"
             "kube:\n  mode: auto\n  cluster_domain: cluster.local\n"
             "health: \"169.254.20.10:8080\"\nmetrics: \"0.0.0.0:9253\"\n"
             "log_level: info\nthreads: 2\n");
  write_text(
      t, "flow-style",
      "{listen: [\"127.0.0.1:5353\"], upstreams: [\"127.0.0.1:5300\", \"[::1]:5300\"], "
      "cache: {size: 10, stale_max: 3600}, upstream: {timeout_ms: 250, resolve_timeout_ms: 1500}, "
      "kube: {mode: \"off\"}, query_log: {enabled: true, sample: 10}}\n");
  write_text(t, "typo-and-duplicate",
             "upstreams: [10.0.0.1]\ncache:\n  max_tll: 30\n  max_ttl: 30\n  max_ttl: 60\n");
  write_text(t, "wrong-types",
             "upstreams: resolv.conf:/tmp/readyns-fuzz-config/empty.conf\ncache:\n  size: "
             "\"30\"\nthreads: [1, 2]\n"
             "forward: {zone: x}\nkube: on\n");
  write_text(t, "anchors-and-tags",
             "base: &b {zone: example.org, upstreams: [10.0.0.3]}\nforward: [*b, {zone: ., "
             "upstreams: [10.0.0.4]}]\n"
             "upstreams: !!str 10.0.0.1\nlisten: !!seq [\"127.0.0.1:53\"]\n");
  write_text(t, "empty", "");
}

// ---- fuzz_http --------------------------------------------------------------------------------

void http_streams() {
  const std::string t = "fuzz_http";
  // [limits byte][chunking seed] then what a client sends (see fuzz_http.cpp).
  auto stream = [](uint8_t limits, uint8_t seed, const std::string& text) {
    std::string m = {char(limits), char(seed)};
    return m + text;
  };
  write_text(
      t, "kubelet-probe",
      stream(0, 7,
             "GET /health HTTP/1.1\r\nHost: 169.254.20.10:8080\r\nUser-Agent: kube-probe/1.29\r\n"
             "Accept: */*\r\nConnection: close\r\n\r\n"));
  write_text(
      t, "prometheus-pipelined",
      stream(0, 3,
             "GET /metrics HTTP/1.1\r\nHost: node:9253\r\nAccept: application/openmetrics-text;"
             "version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\n\r\n"
             "HEAD /ready?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
             "POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
             "GET /throw HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n"));
  write_text(t, "chunked-body-over-limit",
             stream(0x80, 11,
                    "POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "10\r\n0123456789abcdef\r\n8\r\n01234567\r\n0\r\n\r\n"));
  write_text(t, "many-headers",
             stream(0x03, 5,
                    "GET http://host:8080/health?x=1#frag HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
                    "D: 4\r\nE: folded\r\n  more\r\n\r\n"));
  write_text(t, "bad-request", stream(0, 1, "GET /health HTTP/9.9\r\n\r\n"));
  write_text(t, "connect-upgrade",
             stream(0, 2,
                    "CONNECT host:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\nGET /health HTTP/1.1\r\n\r\n"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) die("usage: gen_corpus OUT_DIR");
  out_dir = argv[1];
  queries();
  replies();
  cache_streams();
  endpoint_slices();
  handler_streams();
  configs();
  http_streams();
  return 0;
}
