// Unit tests of the Kubernetes module without a loop: EndpointSlice JSON into the table.
//
// The table's answers are checked against what CoreDNS's kubernetes plugin gives for headless
// Services.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "dns_probe.hpp"
#include "k8s/api_access.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/slice.hpp"

namespace readyns::k8s {
namespace {

using Catch::Matchers::StartsWith;
using nlohmann::json;
using testing::ask;
using testing::Reply;

constexpr uint16_t kTxt = 16;

// An EndpointSlice list exactly as the API reference shows one, unknown fields included.
constexpr char kListFromTheApi[] = R"({
  "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
  "metadata": {"resourceVersion": "4711"},
  "items": [{
    "metadata": {
      "name": "hl0-abc", "namespace": "ns0", "uid": "9a1c", "resourceVersion": "4700",
      "generateName": "hl0-", "generation": 3, "creationTimestamp": "2024-01-01T00:00:00Z",
      "labels": {"kubernetes.io/service-name": "hl0", "service.kubernetes.io/headless": "",
                 "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
      "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"},
      "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "hl0", "uid": "1"}],
      "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]
    },
    "addressType": "IPv4",
    "endpoints": [{
      "addresses": ["10.244.1.2"],
      "conditions": {"ready": true, "serving": true, "terminating": false},
      "hostname": "web-0",
      "targetRef": {"kind": "Pod", "namespace": "ns0", "name": "web-0", "uid": "77"},
      "nodeName": "n1", "zone": "z1", "hints": {"forZones": [{"name": "z1"}]}
    }],
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "http"}]
  }]
})";

json endpoint(const std::string& address, const std::string& hostname = "",
              json conditions = {{"ready", true}, {"serving", true}, {"terminating", false}}) {
  json e = {{"addresses", {address}}, {"conditions", conditions}, {"nodeName", "n1"}};
  if (!hostname.empty()) e["hostname"] = hostname;
  return e;
}

json not_ready_terminating(bool serving) {
  return {{"ready", false}, {"serving", serving}, {"terminating", true}};
}

json http_port() {
  return json::array({{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}}});
}

json slice(const std::string& name, std::vector<json> endpoints, json ports = http_port(),
           const std::string& service = "hl0", bool headless = true,
           const std::string& address_type = "IPv4", const std::string& ns = "ns0") {
  json labels = {{"kubernetes.io/service-name", service}};
  if (headless) labels["service.kubernetes.io/headless"] = "";
  return {{"metadata",
           {{"name", name}, {"namespace", ns}, {"labels", labels}, {"resourceVersion", "1"}}},
          {"addressType", address_type},
          {"endpoints", endpoints},
          {"ports", ports}};
}

std::string list_json(std::vector<json> items, const std::string& version = "10") {
  return json{{"kind", "EndpointSliceList"},
              {"apiVersion", "discovery.k8s.io/v1"},
              {"metadata", {{"resourceVersion", version}}},
              {"items", items}}
      .dump();
}

void relist(EndpointTable& table, std::vector<json> items, const std::string& namespace_name = "") {
  std::optional<SliceList> list = parse_slice_list(list_json(items));
  REQUIRE(list);
  table.replace_all(namespace_name, std::move(list->items));
  table.mark_synced();
}

WatchEvent event(const std::string& type, json object) {
  std::optional<WatchEvent> parsed =
      parse_watch_event(json{{"type", type}, {"object", object}}.dump());
  REQUIRE(parsed);
  return std::move(*parsed);
}

EndpointTable make_table() {
  return EndpointTable({.cluster_domain = "cluster.local", .ttl = 5});
}

const std::string kSvc = "hl0.ns0.svc.cluster.local";

std::string a(const std::string& owner, const std::string& address) {
  return owner + ". 5 A " + address;
}

std::string srv(const std::string& owner, int weight, int port, const std::string& target) {
  return owner + ". 5 SRV 0 " + std::to_string(weight) + " " + std::to_string(port) + " " + target +
         ".";
}

bool is_soa_authority(const Reply& r) {
  return r.answer.empty() && r.authority.size() == 1 &&
         r.authority[0].rfind(
             "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. ", 0) == 0 &&
         r.authority[0].ends_with(" 7200 1800 86400 5");
}

std::vector<uint8_t> wire_of(const std::string& name) {
  uint8_t buf[wire::kMaxNameLength];
  size_t len = wire::name_from_text(name.data(), name.size(), buf, sizeof buf);
  return {buf, buf + len};
}

TEST_CASE("a list shaped as in the API reference is served", "[k8s][table]") {
  EndpointTable table = make_table();
  std::optional<SliceList> list = parse_slice_list(kListFromTheApi);
  REQUIRE(list);
  CHECK(list->resource_version == "4711");
  CHECK(list->continue_token.empty());
  REQUIRE(list->items.size() == 1);
  const Slice& parsed = list->items[0];
  CHECK(parsed.name == "hl0-abc");
  CHECK(parsed.namespace_name == "ns0");
  CHECK(parsed.service == "hl0");
  CHECK(parsed.headless);
  CHECK(parsed.address_type == AddressType::kIPv4);
  REQUIRE(parsed.endpoints.size() == 1);
  CHECK(parsed.endpoints[0].hostname == "web-0");
  CHECK(parsed.endpoints[0].addresses[0].text == "10.244.1.2");
  CHECK(parsed.ports == std::vector<SlicePort>{{.name = "http", .port = 8080, .protocol = "tcp"}});

  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);  // not synced yet
  table.replace_all("", std::move(list->items));
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);
  table.mark_synced();

  Reply r = ask(table, "HL0.ns0.svc.Cluster.local", wire::kTypeA);
  REQUIRE(r.answered);
  CHECK(r.rcode == LDNS_RCODE_NOERROR);
  CHECK(r.id == 0xbeef);
  // The client's case is kept, in the question and in the owner names pointing to it.
  CHECK(r.question == "HL0.ns0.svc.Cluster.local.");
  CHECK(r.answer == std::vector<std::string>{a("HL0.ns0.svc.Cluster.local", "10.244.1.2")});
  CHECK(r.additional.empty());

  r = ask(table, kSvc, wire::kTypeSrv);
  CHECK(r.answer == std::vector<std::string>{srv(kSvc, 100, 8080, "web-0." + kSvc)});
  CHECK(r.additional == std::vector<std::string>{a("web-0." + kSvc, "10.244.1.2")});
  r = ask(table, "_http._tcp." + kSvc, wire::kTypeSrv);
  CHECK(r.answer ==
        std::vector<std::string>{srv("_http._tcp." + kSvc, 100, 8080, "web-0." + kSvc)});
  CHECK(r.additional == std::vector<std::string>{a("web-0." + kSvc, "10.244.1.2")});
  CHECK(ask(table, "web-0." + kSvc, wire::kTypeA).answer ==
        std::vector<std::string>{a("web-0." + kSvc, "10.244.1.2")});
  // CoreDNS gives a port name's endpoints as addresses too.
  CHECK(ask(table, "_http._tcp." + kSvc, wire::kTypeA).answer ==
        std::vector<std::string>{a("_http._tcp." + kSvc, "10.244.1.2")});
}

TEST_CASE("names the table does not know are left to the core to forward", "[k8s][table]") {
  EndpointTable table = make_table();
  relist(table, {slice("hl0-a", {endpoint("10.0.0.1", "web-0")}),
                 slice("svc1-a", {endpoint("10.0.0.9")}, http_port(), "svc1", false)});
  REQUIRE(ask(table, kSvc, wire::kTypeA).answered);
  for (const char* name :
       {"svc1.ns0.svc.cluster.local", "web-0.svc1.ns0.svc.cluster.local",
        "nope.ns0.svc.cluster.local", "hl0.ns1.svc.cluster.local", "ns0.svc.cluster.local",
        "svc.cluster.local", "cluster.local", "hl0.ns0.pod.cluster.local", "example.com",
        "hl0.ns0.svc.cluster.other", "hl0.ns0.svc.cluster.local.example.com",
        // Two labels without underscores: CoreDNS reads them as port and protocol anyway.
        "http.tcp.hl0.ns0.svc.cluster.local", "_.tcp.hl0.ns0.svc.cluster.local"}) {
    INFO(name);
    CHECK_FALSE(ask(table, name, wire::kTypeA).answered);
  }
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA, wire::kMaxMessageSize, false, 3 /* CH */).answered);

  EndpointTable unsynced = make_table();
  unsynced.replace_all(
      "", parse_slice_list(list_json({slice("hl0-a", {endpoint("10.0.0.1")})}))->items);
  CHECK_FALSE(ask(unsynced, kSvc, wire::kTypeA).answered);
  CHECK_FALSE(ask(unsynced, kSvc, wire::kTypeAny).answered);
}

TEST_CASE("ready endpoints are served, else the serving terminating ones", "[k8s][table]") {
  EndpointTable table = make_table();

  SECTION("only ready endpoints while any is ready") {
    relist(table, {slice("hl0-a",
                         {endpoint("10.0.0.1", "web-0"),
                          endpoint("10.0.0.2", "web-1", not_ready_terminating(true)),
                          endpoint("10.0.0.3", "web-2",
                                   {{"ready", false}, {"serving", false}, {"terminating", false}}),
                          endpoint("10.0.0.4", "web-3", json::object())})});
    // Conditions left out count as ready (the API: nil is unknown, take it as ready).
    CHECK(ask(table, kSvc, wire::kTypeA).answer ==
          std::vector<std::string>{a(kSvc, "10.0.0.1"), a(kSvc, "10.0.0.4")});
    Reply r = ask(table, "web-1." + kSvc, wire::kTypeA);
    CHECK(r.rcode == LDNS_RCODE_NXDOMAIN);
    CHECK(is_soa_authority(r));
  }
  SECTION("terminating endpoints still serving when none is ready") {
    relist(table, {slice("hl0-a", {endpoint("10.0.0.2", "web-1", not_ready_terminating(true)),
                                   endpoint("10.0.0.3", "web-2", not_ready_terminating(false))})});
    CHECK(ask(table, kSvc, wire::kTypeA).answer == std::vector<std::string>{a(kSvc, "10.0.0.2")});
    CHECK(ask(table, "web-1." + kSvc, wire::kTypeA).answer.size() == 1);
  }
  SECTION("serving left out follows ready") {
    relist(table, {slice("hl0-a", {endpoint("10.0.0.2", "web-1",
                                            {{"ready", false}, {"terminating", true}})})});
    CHECK(ask(table, kSvc, wire::kTypeA).rcode == LDNS_RCODE_NXDOMAIN);
  }
  SECTION("no endpoint at all: NXDOMAIN at and beneath the Service, as CoreDNS") {
    relist(table, {slice("hl0-a", {})});
    for (uint16_t type :
         {uint16_t(wire::kTypeA), uint16_t(wire::kTypeAaaa), uint16_t(wire::kTypeSrv), kTxt}) {
      Reply r = ask(table, kSvc, type);
      CHECK(r.rcode == LDNS_RCODE_NXDOMAIN);
      CHECK(is_soa_authority(r));
    }
    CHECK(ask(table, "_http._tcp." + kSvc, wire::kTypeSrv).rcode == LDNS_RCODE_NXDOMAIN);
    CHECK(ask(table, "http.tcp." + kSvc, wire::kTypeSrv).rcode == LDNS_RCODE_NXDOMAIN);
  }
}

TEST_CASE("SRV answers are shaped as CoreDNS shapes them", "[k8s][table]") {
  EndpointTable table = make_table();
  json ports = json::array({{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}},
                            {{"name", "metrics"}, {"protocol", "TCP"}, {"port", 9090}}});
  relist(
      table,
      {slice("hl0-a",
             {endpoint("10.0.0.1", "web-0"), endpoint("10.0.0.2", "web-1"), endpoint("10.0.0.3")},
             ports)});
  const std::string web0 = "web-0." + kSvc, web1 = "web-1." + kSvc, dashed = "10-0-0-3." + kSvc;

  // Six (address, port) pairs: weight floor(100/6) = 16.
  Reply r = ask(table, kSvc, wire::kTypeSrv);
  CHECK(r.rcode == LDNS_RCODE_NOERROR);
  CHECK(r.answer == std::vector<std::string>{srv(kSvc, 16, 8080, web0), srv(kSvc, 16, 9090, web0),
                                             srv(kSvc, 16, 8080, web1), srv(kSvc, 16, 9090, web1),
                                             srv(kSvc, 16, 8080, dashed),
                                             srv(kSvc, 16, 9090, dashed)});
  CHECK(r.additional ==
        std::vector<std::string>{a(web0, "10.0.0.1"), a(web1, "10.0.0.2"), a(dashed, "10.0.0.3")});

  const std::string metrics = "_METRICS._Tcp." + kSvc;  // owners follow the client's case
  r = ask(table, metrics, wire::kTypeSrv);
  CHECK(r.answer == std::vector<std::string>{srv(metrics, 33, 9090, web0),
                                             srv(metrics, 33, 9090, web1),
                                             srv(metrics, 33, 9090, dashed)});
  CHECK(r.additional.size() == 3);

  r = ask(table, web1, wire::kTypeSrv);
  CHECK(r.answer == std::vector<std::string>{srv(web1, 50, 8080, web1), srv(web1, 50, 9090, web1)});
  CHECK(r.additional == std::vector<std::string>{a(web1, "10.0.0.2")});

  CHECK(ask(table, dashed, wire::kTypeA).answer == std::vector<std::string>{a(dashed, "10.0.0.3")});
  CHECK(ask(table, kSvc, wire::kTypeA).answer ==
        std::vector<std::string>{a(kSvc, "10.0.0.1"), a(kSvc, "10.0.0.2"), a(kSvc, "10.0.0.3")});

  for (const std::string& name : {"_http._udp." + kSvc, "web-9." + kSvc, "a.b.c." + kSvc}) {
    INFO(name);
    r = ask(table, name, wire::kTypeSrv);
    CHECK(r.rcode == LDNS_RCODE_NXDOMAIN);
    CHECK(is_soa_authority(r));
  }
  for (uint16_t type :
       {uint16_t(wire::kTypeAaaa), kTxt, uint16_t(wire::kTypeCname), uint16_t(wire::kTypeAny)}) {
    r = ask(table, kSvc, type);
    CHECK(r.rcode == LDNS_RCODE_NOERROR);
    CHECK(is_soa_authority(r));
  }
  // CoreDNS gives the zone's SOA to an SOA query for any name in the zone, existing or not.
  for (const std::string& name : {web0, "nope." + kSvc}) {
    r = ask(table, name, wire::kTypeSoa);
    CHECK(r.rcode == LDNS_RCODE_NOERROR);
    REQUIRE(r.answer.size() == 1);
    CHECK_THAT(r.answer[0], StartsWith("cluster.local. 5 SOA ns.dns.cluster.local. "
                                       "hostmaster.cluster.local. "));
    CHECK(r.authority.empty());
  }

  SECTION("a slice without ports has addresses but no SRV records") {
    relist(table, {slice("hl0-a", {endpoint("10.0.0.1", "web-0")}, json::array())});
    CHECK(ask(table, kSvc, wire::kTypeA).answer.size() == 1);
    r = ask(table, kSvc, wire::kTypeSrv);
    CHECK(r.rcode == LDNS_RCODE_NOERROR);
    CHECK(is_soa_authority(r));
  }
}

TEST_CASE("every answer from the table is authoritative, as CoreDNS's", "[k8s][table]") {
  EndpointTable table = make_table();
  std::vector<json> many;
  for (int i = 0; i < 100; ++i) many.push_back(endpoint("10.0.1." + std::to_string(i)));
  relist(table, {slice("hl0-a", many)});
  struct Asked {
    std::string name;
    uint16_t type;
    size_t limit;
  };
  for (const Asked& asked : {Asked{kSvc, wire::kTypeA, wire::kMaxMessageSize},
                             Asked{kSvc, wire::kTypeSrv, wire::kMaxMessageSize},
                             Asked{kSvc, wire::kTypeA, 512},  // truncated
                             Asked{kSvc, kTxt, wire::kMaxMessageSize},
                             Asked{kSvc, wire::kTypeSoa, wire::kMaxMessageSize},
                             Asked{"nope." + kSvc, wire::kTypeA, wire::kMaxMessageSize},
                             Asked{"nope." + kSvc, wire::kTypeA, 40}}) {
    INFO(asked.name << " type " << asked.type << " limit " << asked.limit);
    Reply r = ask(table, asked.name, asked.type, asked.limit);
    REQUIRE(r.answered);
    CHECK(r.aa);
  }
}

TEST_CASE("IPv6 and dual-stack slices", "[k8s][table]") {
  EndpointTable table = make_table();
  relist(table, {slice("hl0-v4", {endpoint("10.0.0.1", "web-0")}),
                 slice("hl0-v6", {endpoint("fd00::1", "web-0"), endpoint("FD00::2")}, http_port(),
                       "hl0", true, "IPv6")});
  const std::string web0 = "web-0." + kSvc, dashed = "fd00--2." + kSvc;
  CHECK(ask(table, kSvc, wire::kTypeAaaa).answer ==
        std::vector<std::string>{kSvc + ". 5 AAAA fd00::1", kSvc + ". 5 AAAA fd00::2"});
  CHECK(ask(table, kSvc, wire::kTypeA).answer == std::vector<std::string>{a(kSvc, "10.0.0.1")});
  CHECK(ask(table, web0, wire::kTypeA).answer.size() == 1);
  CHECK(ask(table, web0, wire::kTypeAaaa).answer.size() == 1);
  CHECK(ask(table, dashed, wire::kTypeAaaa).answer ==
        std::vector<std::string>{dashed + ". 5 AAAA fd00::2"});
  // Three pairs (weight 33); web-0:8080 twice over is one SRV record, with both its addresses.
  Reply r = ask(table, kSvc, wire::kTypeSrv);
  CHECK(r.answer ==
        std::vector<std::string>{srv(kSvc, 33, 8080, web0), srv(kSvc, 33, 8080, dashed)});
  CHECK(r.additional == std::vector<std::string>{a(web0, "10.0.0.1"), web0 + ". 5 AAAA fd00::1",
                                                 dashed + ". 5 AAAA fd00::2"});

  SECTION("an address ending in '::' is named with a '0' after its trailing '-', as CoreDNS") {
    relist(table, {slice("hl0-v6", {endpoint("2001:db8::")}, http_port(), "hl0", true, "IPv6")});
    const std::string zero = "2001-db8--0." + kSvc;
    CHECK(ask(table, zero, wire::kTypeAaaa).answer ==
          std::vector<std::string>{zero + ". 5 AAAA 2001:db8::"});
    r = ask(table, kSvc, wire::kTypeSrv);
    CHECK(r.answer == std::vector<std::string>{srv(kSvc, 100, 8080, zero)});
    CHECK(r.additional == std::vector<std::string>{zero + ". 5 AAAA 2001:db8::"});
    CHECK(ask(table, "2001-db8--." + kSvc, wire::kTypeAaaa).rcode == LDNS_RCODE_NXDOMAIN);
  }
}

TEST_CASE("the TTL setting is every record's, and the SOA's up to 300, as CoreDNS's ttl",
          "[k8s][table]") {
  for (uint32_t ttl : {0u, 30u, 3600u}) {
    INFO("ttl " << ttl);
    EndpointTable table({.cluster_domain = "cluster.local", .ttl = ttl});
    relist(table, {slice("hl0-a", {endpoint("10.0.0.1", "web-0")})});
    const std::string t = " " + std::to_string(ttl) + " ";
    CHECK(ask(table, kSvc, wire::kTypeA).answer ==
          std::vector<std::string>{kSvc + "." + t + "A 10.0.0.1"});
    Reply r = ask(table, kSvc, wire::kTypeSrv);
    CHECK(r.answer ==
          std::vector<std::string>{kSvc + "." + t + "SRV 0 100 8080 web-0." + kSvc + "."});
    CHECK(r.additional == std::vector<std::string>{"web-0." + kSvc + "." + t + "A 10.0.0.1"});
    // plugin.SOA: TTL min(ttl, 300), MINIMUM the ttl itself.
    const std::string soa = "cluster.local. " + std::to_string(std::min(ttl, 300u)) +
                            " SOA ns.dns.cluster.local. hostmaster.cluster.local. ";
    const std::string minimum = " 7200 1800 86400 " + std::to_string(ttl);
    for (const std::string& name : {kSvc, "nope." + kSvc}) {
      r = ask(table, name, kTxt);
      REQUIRE(r.authority.size() == 1);
      CHECK_THAT(r.authority[0], StartsWith(soa));
      CHECK(r.authority[0].ends_with(minimum));
    }
    r = ask(table, kSvc, wire::kTypeSoa);
    REQUIRE(r.answer.size() == 1);
    CHECK_THAT(r.answer[0], StartsWith(soa));
    CHECK(r.answer[0].ends_with(minimum));
  }
}

TEST_CASE("a Service merges its slices, each replaced by name", "[k8s][table]") {
  EndpointTable table = make_table();
  relist(table, {slice("hl0-a", {endpoint("10.0.0.1", "web-0")}),
                 slice("hl0-b", {endpoint("10.0.0.2", "web-1")}),
                 slice("hl0-c", {endpoint("10.1.0.1")}, http_port(), "hl0", true, "IPv4", "ns1")});
  CHECK(ask(table, kSvc, wire::kTypeA).answer ==
        std::vector<std::string>{a(kSvc, "10.0.0.1"), a(kSvc, "10.0.0.2")});

  table.apply(event("MODIFIED", slice("hl0-a", {endpoint("10.0.0.3", "web-2")})));
  CHECK(ask(table, kSvc, wire::kTypeA).answer ==
        std::vector<std::string>{a(kSvc, "10.0.0.3"), a(kSvc, "10.0.0.2")});
  CHECK(ask(table, "web-0." + kSvc, wire::kTypeA).rcode == LDNS_RCODE_NXDOMAIN);

  table.apply(event("DELETED", slice("hl0-b", {endpoint("10.0.0.2", "web-1")})));
  CHECK(ask(table, kSvc, wire::kTypeA).answer == std::vector<std::string>{a(kSvc, "10.0.0.3")});

  // An FQDN slice is never served; nor does it disturb the others.
  table.apply(event("ADDED", slice("hl0-f", {{{"addresses", {"db.example.com"}}}}, http_port(),
                                   "hl0", true, "FQDN")));
  CHECK(ask(table, kSvc, wire::kTypeA).answer.size() == 1);

  // Relisting one namespace leaves the others alone.
  relist(table, {}, "ns1");
  CHECK_FALSE(ask(table, "hl0.ns1.svc.cluster.local", wire::kTypeA).answered);
  CHECK(ask(table, kSvc, wire::kTypeA).answer.size() == 1);

  // A slice that stops being a headless Service's takes its earlier contents with it.
  table.apply(event("MODIFIED", slice("hl0-a", {endpoint("10.0.0.3")}, http_port(), "hl0", false)));
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);

  table.apply(event("ADDED", slice("hl0-a", {endpoint("10.0.0.3")})));
  CHECK(ask(table, kSvc, wire::kTypeA).answered);
  relist(table, {});
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);
}

TEST_CASE("a change invalidates at once, and only a change", "[k8s][table]") {
  EndpointTable table = make_table();
  std::vector<std::vector<uint8_t>> changed;
  std::vector<std::string> seen_in_callback;
  table.set_on_change([&](std::span<const uint8_t> name) {
    changed.emplace_back(name.begin(), name.end());
    // The new answers are already in place when the callback runs.
    seen_in_callback = ask(table, kSvc, wire::kTypeA).answer;
  });
  std::vector<json> ready = {endpoint("10.0.0.1", "web-0"), endpoint("10.0.0.2", "web-1")};
  relist(table, {slice("hl0-a", ready)});
  CHECK(changed == std::vector<std::vector<uint8_t>>{wire_of(kSvc)});

  std::vector<json> one_down = {endpoint("10.0.0.1", "web-0", not_ready_terminating(true)),
                                endpoint("10.0.0.2", "web-1")};
  changed.clear();
  table.apply(event("MODIFIED", slice("hl0-a", one_down)));
  CHECK(changed.size() == 1);
  CHECK(seen_in_callback == std::vector<std::string>{a(kSvc, "10.0.0.2")});

  changed.clear();
  table.apply(event("MODIFIED", slice("hl0-a", one_down)));  // replayed: nothing changes
  relist(table, {slice("hl0-a", one_down)});
  table.apply(*parse_watch_event(
      R"({"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"9"}}})"));
  CHECK(changed.empty());

  table.apply(event("DELETED", slice("hl0-a", one_down)));
  CHECK(changed == std::vector<std::vector<uint8_t>>{wire_of(kSvc)});
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);
}

TEST_CASE("malformed JSON is skipped and logged, never thrown", "[k8s][table]") {
  for (const char* line :
       {"", "not json", "[]", "{}", "null", R"({"type":"ADDED"})", R"({"type":"WHAT","object":{}})",
        R"({"type":"ADDED","object":"hl0-a"})", R"({"type":7,"object":{}})",
        R"({"type":"ADDED","object":{"metadata":)", "\xff\xfe"}) {
    INFO(line);
    CHECK_FALSE(parse_watch_event(line));
  }

  EndpointTable table = make_table();
  relist(table, {slice("hl0-a", {endpoint("10.0.0.1", "web-0")})});
  const std::vector<std::string> before = ask(table, kSvc, wire::kTypeA).answer;
  json good = slice("hl0-a", {endpoint("10.0.0.2", "web-0")});
  std::vector<std::pair<std::string, json>> breakages = {
      {"/endpoints/0/addresses", "10.0.0.2"},
      {"/endpoints/0/addresses/0", 12},
      {"/endpoints/0/addresses/0", "10.0.0.300"},
      {"/endpoints/0/addresses/0", "fd00::1"},
      {"/endpoints/0/conditions", json::array()},
      {"/endpoints/0/conditions/ready", "yes"},
      {"/endpoints/0/hostname", 5},
      {"/endpoints/0/hostname", "web.0"},
      {"/endpoints/0", "web-0"},
      {"/endpoints", json::object()},
      {"/ports", json::object()},
      {"/ports/0", 8080},
      {"/ports/0/port", "8080"},
      {"/ports/0/port", 70000},
      {"/ports/0/port", 1.5},
      {"/ports/0/name", false},
      {"/metadata/labels", json::array()},
      {"/metadata/labels/kubernetes.io~1service-name", 1},
      {"/metadata/name", 5},
      {"/metadata/name", ""},
      {"/metadata", "hl0-a"},
      {"/addressType", 4},
  };
  for (const auto& [pointer, value] : breakages) {
    INFO(pointer << " = " << value.dump());
    json bad = good;
    bad[json::json_pointer(pointer)] = value;
    std::optional<WatchEvent> e =
        parse_watch_event(json{{"type", "MODIFIED"}, {"object", bad}}.dump());
    REQUIRE(e);
    CHECK_FALSE(e->slice);
    table.apply(std::move(*e));
    CHECK(ask(table, kSvc, wire::kTypeA).answer == before);  // the bad update was skipped
  }

  // Nulls are unset fields, unknown fields are ignored.
  json lenient = good;
  lenient["endpoints"][0]["conditions"] = nullptr;
  lenient["endpoints"][0]["hostname"] = nullptr;
  lenient["endpoints"][0]["somethingNew"] = {{"a", 1}};
  lenient["ports"][0]["appProtocol"] = nullptr;
  lenient["newTopLevel"] = json::array({1, 2});
  table.apply(event("MODIFIED", lenient));
  CHECK(ask(table, kSvc, wire::kTypeA).answer == std::vector<std::string>{a(kSvc, "10.0.0.2")});

  // A DELETED whose body is otherwise broken still names the slice to drop.
  json broken = good;
  broken["endpoints"] = "gone";
  table.apply(event("DELETED", broken));
  CHECK_FALSE(ask(table, kSvc, wire::kTypeA).answered);

  // A list keeps its good items and skips the bad.
  json bad_item = slice("hl1-a", {endpoint("10.0.0.7")}, http_port(), "hl1");
  bad_item["endpoints"][0]["addresses"] = "10.0.0.7";
  relist(table, {bad_item, good});
  CHECK(ask(table, kSvc, wire::kTypeA).answered);
  CHECK_FALSE(ask(table, "hl1.ns0.svc.cluster.local", wire::kTypeA).answered);
  for (const char* body :
       {"", "{}", "[]", R"({"metadata":{"resourceVersion":"1"},"items":{}})",
        R"({"metadata":{},"items":[]})", R"({"metadata":{"resourceVersion":1}})"}) {
    INFO(body);
    CHECK_FALSE(parse_slice_list(body));
  }
}

TEST_CASE("watch events other than slices", "[k8s][table]") {
  std::optional<WatchEvent> e = parse_watch_event(
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},)j"
      R"j("status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired",)j"
      R"j("code":410}})j");
  REQUIRE(e);
  CHECK(e->type == EventType::kError);
  CHECK(e->status_code == 410);
  CHECK(e->message == "too old resource version: 1 (5)");

  e = parse_watch_event(
      R"({"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",)"
      R"("metadata":{"resourceVersion":"12345","annotations":{"k8s.io/initial-events-end":"true"}}}})");
  REQUIRE(e);
  CHECK(e->type == EventType::kBookmark);
  CHECK(e->resource_version == "12345");
  CHECK_FALSE(e->slice);

  e = parse_watch_event(json{{"type", "ADDED"}, {"object", slice("hl0-a", {})}}.dump());
  REQUIRE(e);
  CHECK(e->type == EventType::kAdded);
  CHECK(e->resource_version == "1");
  CHECK(e->slice);
}

TEST_CASE("answers honour the size limit and EDNS", "[k8s][table]") {
  EndpointTable table = make_table();
  std::vector<json> many;
  for (int i = 0; i < 100; ++i) many.push_back(endpoint("10.0.1." + std::to_string(i)));
  relist(table, {slice("hl0-a", many)});

  std::vector<std::string> all;
  for (int i = 0; i < 100; ++i) all.push_back(a(kSvc, "10.0.1." + std::to_string(i)));
  auto first = [&](size_t n) {
    return std::vector<std::string>(all.begin(), all.begin() + long(n));
  };

  // As CoreDNS truncates (miekg/dns's Msg.Truncate): the whole records that fit, TC=1. Header and
  // question take 12 + 27 + 4 bytes, and each A record 16 (its owner a pointer to the question).
  Reply r = ask(table, kSvc, wire::kTypeA, 512);
  CHECK(r.tc);
  CHECK(r.rcode == LDNS_RCODE_NOERROR);
  CHECK(r.answer == first((512 - 43) / 16));
  CHECK(r.size == 43 + (512 - 43) / 16 * 16);
  r = ask(table, kSvc, wire::kTypeA, 512, true);  // the OPT's 11 bytes count against the limit
  CHECK(r.tc);
  CHECK(r.has_opt);
  CHECK(r.answer == first((512 - 11 - 43) / 16));
  r = ask(table, kSvc, wire::kTypeA, 43 + 16 * 100 - 1);
  CHECK(r.tc);
  CHECK(r.answer == first(99));
  r = ask(table, kSvc, wire::kTypeA, 43 + 16 * 100);
  CHECK_FALSE(r.tc);
  CHECK(r.answer == all);

  r = ask(table, kSvc, wire::kTypeA, wire::kMaxMessageSize, true);
  CHECK(r.has_opt);
  CHECK(r.answer.size() == 100);
  r = ask(table, "nope." + kSvc, wire::kTypeA, wire::kMaxMessageSize, true);
  CHECK(r.has_opt);
  CHECK(r.rcode == LDNS_RCODE_NXDOMAIN);
  CHECK(is_soa_authority(r));
  // Without room for the SOA: TC=1, and the rcode still says the name does not exist.
  r = ask(table, "nope." + kSvc, wire::kTypeA, 40, true);
  CHECK(r.tc);
  CHECK(r.rcode == LDNS_RCODE_NXDOMAIN);
  CHECK(r.authority.empty());
  CHECK(r.has_opt);
}

TEST_CASE("a truncated SRV answer keeps its leading whole records", "[k8s][table]") {
  EndpointTable table = make_table();
  std::vector<json> endpoints;
  for (int i = 0; i < 10; ++i) {
    endpoints.push_back(endpoint("10.0.2." + std::to_string(i), "web-" + std::to_string(i)));
  }
  json ports = json::array({{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}},
                            {{"name", "metrics"}, {"protocol", "TCP"}, {"port", 9090}}});
  relist(table, {slice("hl0-a", endpoints, ports)});
  const Reply whole = ask(table, kSvc, wire::kTypeSrv);
  REQUIRE(whole.answer.size() == 20);
  REQUIRE(whole.additional.size() == 10);
  auto starts = [](const std::vector<std::string>& part, const std::vector<std::string>& of) {
    return part.size() <= of.size() && std::equal(part.begin(), part.end(), of.begin());
  };
  for (bool edns : {false, true}) {
    size_t kept_before = 0;
    for (size_t limit = 0; limit <= whole.size + (edns ? wire::kOptRecordSize : 0); ++limit) {
      INFO("EDNS " << edns << ", limit " << limit);
      Reply r = ask(table, kSvc, wire::kTypeSrv, limit, edns);
      REQUIRE(r.answered);
      CHECK(r.rcode == LDNS_RCODE_NOERROR);
      CHECK(r.has_opt == edns);
      // Answers first; an additional record only once every answer is in.
      CHECK(starts(r.answer, whole.answer));
      CHECK(starts(r.additional, whole.additional));
      CHECK((r.additional.empty() || r.answer.size() == whole.answer.size()));
      size_t kept = r.answer.size() + r.additional.size();
      CHECK(r.tc == (kept < 30));
      // One record more each time the limit reaches its end: none that fits is left out.
      if (kept > 0) CHECK(r.size <= limit);
      CHECK((kept == kept_before || (kept == kept_before + 1 && r.size == limit)));
      kept_before = kept;
    }
    CHECK(kept_before == 30);
  }
}

TEST_CASE("readers see whole answers while the watcher writes", "[k8s][table]") {
  EndpointTable table = make_table();
  std::vector<json> one = {endpoint("10.0.0.1", "web-0")};
  std::vector<json> two = {endpoint("10.0.0.1", "web-0"), endpoint("10.0.0.2", "web-1")};
  relist(table, {slice("hl0-a", one)});
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!done.load()) {
        Reply r = ask(table, kSvc, wire::kTypeSrv);
        if (!r.answered || r.answer.size() != r.additional.size() || r.answer.empty() ||
            r.answer.size() > 2) {
          ++bad;
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) table.apply(event("MODIFIED", slice("hl0-a", i % 2 ? one : two)));
  done = true;
  for (std::thread& t : readers) t.join();
  CHECK(bad == 0);
}

TEST_CASE("the API server is found from the settings or the pod's environment", "[k8s][api]") {
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  std::string error;
  CHECK_FALSE(locate_api({.mode = Mode::kOff, .api_url = "https://a:1"}, error));
  CHECK(error.empty());
  CHECK_FALSE(locate_api({.mode = Mode::kAuto}, error));
  CHECK(error.empty());
  CHECK_FALSE(locate_api({.mode = Mode::kOn}, error));
  CHECK_FALSE(error.empty());

  std::optional<ApiAccess> api = locate_api(
      {.mode = Mode::kOn, .api_url = "https://127.0.0.1:6443/", .token_file = "/t"}, error);
  REQUIRE(api);
  CHECK(api->base_url == "https://127.0.0.1:6443");
  CHECK(api->token_file == "/t");
  CHECK(api->ca_file.empty());

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  api = locate_api({.mode = Mode::kAuto}, error);
  REQUIRE(api);
  CHECK(api->base_url == "https://10.96.0.1:443");
  CHECK(api->token_file == std::string(kServiceAccountDir) + "/token");
  CHECK(api->ca_file == std::string(kServiceAccountDir) + "/ca.crt");
  api = locate_api({.mode = Mode::kAuto, .token_file = "/mine"}, error);
  CHECK(api->token_file == "/mine");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  CHECK(locate_api({.mode = Mode::kAuto}, error)->base_url == "https://[fd00::1]:443");
  CHECK_FALSE(locate_api({.mode = Mode::kOff}, error));
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");

  char path[] = "/tmp/readyns-token-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "  secret-token\n";
  CHECK(read_token(path) == "secret-token");
  std::remove(path);
  CHECK(read_token(path).empty());
}

}  // namespace
}  // namespace readyns::k8s
