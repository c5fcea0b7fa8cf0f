// The EndpointSlice table's side for the embedding API, without a loop.
//
// Every Service's endpoint set (headless or not), selected as DNS selects, by port name, and the
// change notifications.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "k8s/endpoint_table.hpp"

namespace readyns::k8s {
namespace {

using Endpoints = std::vector<EndpointTable::ServiceEndpoint>;

Endpoint endpoint(const std::string& ip, bool ready, bool terminating = false,
                  const std::string& hostname = "", const std::string& zone = "") {
  Address a{.text = ip, .bytes = {}};
  return {.addresses = {a},
          .hostname = hostname,
          .zone = zone,
          .ready = ready,
          .serving = ready || terminating,
          .terminating = terminating};
}

Slice make_slice(const std::string& name, const std::string& service, std::vector<Endpoint> eps,
                 std::vector<SlicePort> ports = {{.name = "http", .port = 8080, .protocol = "tcp"}},
                 bool headless = false) {
  return {.namespace_name = "shop",
          .name = name,
          .service = service,
          .headless = headless,
          .address_type = AddressType::kIPv4,
          .endpoints = std::move(eps),
          .ports = std::move(ports)};
}

WatchEvent event(EventType type, Slice slice) {
  WatchEvent e;
  e.type = type;
  e.namespace_name = slice.namespace_name;
  e.name = slice.name;
  e.slice = std::move(slice);
  return e;
}

TEST_CASE("the table keeps every Service's endpoints when asked to", "[embed][table]") {
  EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  std::vector<std::pair<std::string, std::string>> changes;
  table.set_on_endpoints_change([&](std::string_view ns, std::string_view service) {
    changes.emplace_back(ns, service);
    // Allowed from inside the notification: the reader's side.
    (void)table.endpoints(ns, service, "");
  });

  SECTION("not asked: nothing is kept and nothing reported") {
    table.replace_all("", {make_slice("web-a", "web", {endpoint("10.1.0.1", true)})});
    CHECK(table.endpoints("shop", "web", "http").empty());
    CHECK(changes.empty());
  }

  SECTION("asked") {
    table.track_all_services();
    std::vector<SlicePort> ports = {{.name = "http", .port = 8080, .protocol = "tcp"},
                                    {.name = "metrics", .port = 9090, .protocol = "tcp"}};
    table.replace_all(
        "",
        {make_slice("web-a", "web",
                    {endpoint("10.1.0.1", true, false, "", "zone-a"), endpoint("10.1.0.2", false)},
                    ports),
         make_slice("web-b", "web", {endpoint("10.1.0.3", true, false, "web-3")}, ports),
         make_slice("db-a", "db", {endpoint("10.2.0.1", true)}, {}, true)});
    CHECK(changes ==
          std::vector<std::pair<std::string, std::string>>{{"shop", "db"}, {"shop", "web"}});
    CHECK(table.endpoints("shop", "web", "HTTP") ==
          Endpoints{{"10.1.0.1", 8080, "", "zone-a"}, {"10.1.0.3", 8080, "web-3", ""}});
    CHECK(table.endpoints("shop", "web", "").size() == 4);
    CHECK(table.endpoints("shop", "web", "nope").empty());
    CHECK(table.endpoints("shop", "db", "") == Endpoints{{"10.2.0.1", 0, "", ""}});  // no ports
    CHECK(table.endpoints("other", "web", "http").empty());

    // The same slice again: not news. Another slice: only its Service is.
    changes.clear();
    table.apply(
        event(EventType::kModified,
              make_slice("web-b", "web", {endpoint("10.1.0.3", true, false, "web-3")}, ports)));
    CHECK(changes.empty());
    table.apply(event(EventType::kModified,
                      make_slice("db-a", "db", {endpoint("10.2.0.2", true)}, {}, true)));
    CHECK(changes == std::vector<std::pair<std::string, std::string>>{{"shop", "db"}});

    // None ready: the ones serving while terminating, as DNS answers.
    table.apply(event(EventType::kDeleted, make_slice("web-b", "web", {})));
    table.apply(
        event(EventType::kModified,
              make_slice("web-a", "web",
                         {endpoint("10.1.0.1", false, true), endpoint("10.1.0.2", false)}, ports)));
    CHECK(table.endpoints("shop", "web", "http") == Endpoints{{"10.1.0.1", 8080, "", ""}});

    // A slice moving to another Service is news for both; a relist drops what it no longer lists.
    changes.clear();
    table.apply(
        event(EventType::kModified, make_slice("web-a", "api", {endpoint("10.1.0.1", true)})));
    CHECK(changes ==
          std::vector<std::pair<std::string, std::string>>{{"shop", "api"}, {"shop", "web"}});
    CHECK(table.endpoints("shop", "web", "").empty());
    changes.clear();
    table.replace_all("shop", {});
    CHECK(changes ==
          std::vector<std::pair<std::string, std::string>>{{"shop", "api"}, {"shop", "db"}});
    CHECK(table.endpoints("shop", "api", "").empty());

    changes.clear();
    table.mark_synced();
    CHECK(changes == std::vector<std::pair<std::string, std::string>>{{"", ""}});
  }
}

}  // namespace
}  // namespace readyns::k8s
