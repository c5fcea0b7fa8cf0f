// readyns::Resolver with the EndpointSlice watcher, against tests/k8s/fake_apiserver.py.
//
// The endpoints of any Service (headless or not) from the table, watches told of every change and
// of nothing else, and headless names answered from the same table.
#include <uv.h>
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fixtures.hpp"
#include "readyns/resolver.hpp"

namespace readyns {
namespace {

using nlohmann::json;
using testing::FakeApi;
using testing::Loop;
using testing::slice;

Options kube_options(const FakeApi& api) {
  Options o;
  o.listen = {};
  o.upstreams = {"127.0.0.1:9"};  // nothing is forwarded in these tests
  o.kube = "on";
  o.kube_api = api.url();
  o.kube_ca_file = api.ca_file();
  o.kube_token_file = api.token_file();
  o.log_level = "warn";
  o.resolve_timeout_ms = 500;
  return o;
}

Endpoint ep(const std::string& address, uint16_t port, const std::string& hostname = "",
            const std::string& zone = "") {
  return {.address = address, .port = port, .hostname = hostname, .zone = zone};
}

TEST_CASE("endpoints and watches from the EndpointSlice table", "[embed][kube]") {
  FakeApi api;
  json two_ports = json::array({{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}},
                                {{"name", "metrics"}, {"protocol", "TCP"}, {"port", 9090}}});
  // A ClusterIP Service (no headless label) in two slices, one not-ready endpoint among them.
  api.push("ADDED", slice("web-a", "shop", "web",
                          {{.address = "10.1.0.1", .zone = "zone-a"},
                           {.address = "10.1.0.2", .ready = false}},
                          false, two_ports));
  api.push("ADDED", slice("web-b", "shop", "web",
                          {{.address = "10.1.0.3", .hostname = "web-3", .zone = "zone-b"}}, false,
                          two_ports));
  api.push("ADDED",
           slice("db-a", "shop", "db", {{.address = "10.2.0.1", .hostname = "db-0"}}, true));

  Loop loop;
  auto resolver = std::make_unique<Resolver>(loop.get(), kube_options(api));
  CHECK(resolver->watching_kubernetes());
  // Before the first list completes, the synchronous form says so (or the list was quick).
  Result<Endpoints> early = resolver->endpoints("web", "shop", "http");
  CHECK((early.ok() || early.error().code == Errc::kNotSynced));

  std::vector<Result<Endpoints>> seen;
  Subscription watch = resolver->watch_endpoints("web", "Shop", "HTTP",
                                                 [&](Result<Endpoints> r) { seen.push_back(r); });
  REQUIRE(loop.run_until([&] { return !seen.empty(); }));
  Endpoints http = {ep("10.1.0.1", 8080, "", "zone-a"), ep("10.1.0.3", 8080, "web-3", "zone-b")};
  REQUIRE(seen[0].ok());
  CHECK(*seen[0] == http);

  Result<Endpoints> now = resolver->endpoints("web", "shop", "http");
  REQUIRE(now.ok());
  CHECK(*now == http);
  now = resolver->endpoints("web", "shop", "");  // every port
  REQUIRE(now.ok());
  CHECK(now->size() == 4);
  now = resolver->endpoints("web", "shop", "metrics");
  REQUIRE(now.ok());
  CHECK(*now ==
        Endpoints{ep("10.1.0.1", 9090, "", "zone-a"), ep("10.1.0.3", 9090, "web-3", "zone-b")});
  now = resolver->endpoints("nothere", "shop", "http");
  REQUIRE(now.ok());
  CHECK(now->empty());
  CHECK(resolver->endpoints("web", "-bad", "http").error().code == Errc::kInvalidArgument);

  // The callback form answers from the synced table at once.
  std::optional<Result<Endpoints>> once;
  Query q =
      resolver->endpoints("db", "shop", "http", [&](Result<Endpoints> r) { once.emplace(r); });
  REQUIRE(loop.run_until([&] { return once.has_value(); }));
  REQUIRE(once->ok());
  CHECK(**once == Endpoints{ep("10.2.0.1", 8080, "db-0")});

  // The not-ready endpoint becomes ready: the watch is told.
  api.push("MODIFIED", slice("web-a", "shop", "web",
                             {{.address = "10.1.0.1", .zone = "zone-a"}, {.address = "10.1.0.2"}},
                             false, two_ports));
  REQUIRE(loop.run_until([&] { return seen.size() == 2; }));
  CHECK(*seen[1] == Endpoints{ep("10.1.0.1", 8080, "", "zone-a"), ep("10.1.0.2", 8080),
                              ep("10.1.0.3", 8080, "web-3", "zone-b")});

  // Changes elsewhere, or to a port it does not watch, are not news to it.
  api.push("MODIFIED", slice("db-a", "shop", "db", {{.address = "10.2.0.9"}}, true));
  json other_metrics = two_ports;
  other_metrics[1]["port"] = 9191;
  api.push("MODIFIED", slice("web-b", "shop", "web",
                             {{.address = "10.1.0.3", .hostname = "web-3", .zone = "zone-b"}},
                             false, other_metrics));
  REQUIRE(loop.run_until([&] {
    Result<Endpoints> m = resolver->endpoints("web", "shop", "metrics");
    return m.ok() && m->size() == 3 && m->back().port == 9191;
  }));
  loop.run_for(100);
  CHECK(seen.size() == 2);

  // A rollout's end: all old endpoints terminating, none ready. The serving terminating ones
  // are kept rather than nothing, as DNS does.
  api.push("DELETED", slice("web-b", "shop", "web", {}));
  api.push("MODIFIED", slice("web-a", "shop", "web",
                             {{.address = "10.1.0.1", .ready = false, .terminating = true},
                              {.address = "10.1.0.2", .ready = false}},
                             false, two_ports));
  REQUIRE(loop.run_until([&] { return *seen.back() == Endpoints{ep("10.1.0.1", 8080)}; }));

  // Headless names are answered from the same table through resolve().
  std::optional<Result<Answer>> a;
  Query qa = resolver->resolve("db.shop.svc.cluster.local", kTypeA,
                               [&](Result<Answer> r) { a.emplace(r); });
  REQUIRE(loop.run_until([&] { return a.has_value(); }));
  REQUIRE(a->ok());
  REQUIRE((*a)->records.size() == 1);
  CHECK((*a)->records[0].data == "10.2.0.9");

  // Cancelled: no more calls.
  size_t before = seen.size();
  watch.cancel();
  api.push("DELETED", slice("web-a", "shop", "web", {}));
  REQUIRE(loop.run_until([&] { return resolver->endpoints("web", "shop", "http")->empty(); }));
  loop.run_for(100);
  CHECK(seen.size() == before);

  resolver.reset();
  CHECK(loop.drain());  // the watcher's transfers and timers are gone too
}

TEST_CASE("a watcher kept to some namespaces leaves the others to DNS", "[embed][kube]") {
  FakeApi api;
  api.push("ADDED", slice("web-a", "shop", "web", {{.address = "10.1.0.1"}}));
  Loop loop;
  Options o = kube_options(api);
  o.kube_namespaces = {"shop"};
  auto resolver = std::make_unique<Resolver>(loop.get(), o);
  REQUIRE(loop.run_until([&] { return resolver->endpoints("web", "shop", "http").ok(); }));
  CHECK(resolver->endpoints("web", "other", "http").error().code == Errc::kNoTable);
  resolver.reset();
  CHECK(loop.drain());
}

}  // namespace
}  // namespace readyns
