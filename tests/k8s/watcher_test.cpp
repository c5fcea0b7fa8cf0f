// The real Watcher on a libuv loop against tests/k8s/fake_apiserver.py over HTTPS.
//
// First list, watch events, resuming after a dropped connection or a quiet end, relisting on a
// watch ERROR, token rotation, and stop.
#include <uv.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dns_probe.hpp"
#include "fake_apiserver.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/watcher.hpp"

namespace readyns::k8s {
namespace {

using nlohmann::json;
using readyns::testing::FakeApi;
using readyns::testing::write_file;
using testing::ask;

const std::string kHl0 = "hl0.ns0.svc.cluster.local";

json slice(const std::string& name, const std::string& ns, const std::string& service,
           std::vector<std::pair<std::string, bool>> addresses_ready) {
  json endpoints = json::array();
  for (const auto& [address, ready] : addresses_ready) {
    endpoints.push_back(
        {{"addresses", {address}},
         {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", !ready}}}});
  }
  return {{"kind", "EndpointSlice"},
          {"apiVersion", "discovery.k8s.io/v1"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels",
             {{"kubernetes.io/service-name", service}, {"service.kubernetes.io/headless", ""}}}}},
          {"addressType", "IPv4"},
          {"endpoints", endpoints},
          {"ports", json::array({{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}}})}};
}

std::vector<std::string> addresses(const EndpointTable& table, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& rr : ask(table, name, wire::kTypeA).answer) {
    out.push_back(rr.substr(rr.rfind(' ') + 1));
  }
  return out;
}

using Strings = std::vector<std::string>;

// A loop that runs until a condition holds, waking every 10 ms to look.
class Loop {
 public:
  Loop() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &tick_);
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, 10, 10);
  }
  ~Loop() {
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);  // nothing of the watcher's is left on it
  }
  uv_loop_t* get() { return &loop_; }

  bool run_until(const std::function<bool()>& done,
                 std::chrono::seconds limit = std::chrono::seconds(15)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

 private:
  uv_loop_t loop_;
  uv_timer_t tick_;
};

WatcherSettings settings_for(const FakeApi& api) {
  return {.mode = Mode::kOn,
          .api_url = api.url(),
          .token_file = api.token_file(),
          .ca_file = api.ca_file(),
          .namespaces = {},
          .backoff_initial_ms = 50,
          .backoff_max_ms = 400,
          .watch_timeout_s = 300,
          .list_page_size = 1};  // every slice its own page: the continue path is taken
}

void stop(Loop& loop, Watcher& watcher) {
  bool closed = false;
  watcher.stop([&] { closed = true; });
  REQUIRE(loop.run_until([&] { return closed; }));
}

TEST_CASE("the watcher lists, watches, resumes, relists and follows the token", "[k8s][watcher]") {
  FakeApi api;
  api.push("ADDED", slice("hl0-a", "ns0", "hl0", {{"10.244.1.2", true}}));
  api.push("ADDED", slice("hl0-b", "ns0", "hl0", {{"10.244.1.3", true}}));
  api.push("ADDED", slice("hl1-a", "ns1", "hl1", {{"10.244.2.2", true}}));

  Loop loop;
  EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  std::vector<std::string> changes;
  table.set_on_change([&](std::span<const uint8_t> name) {
    changes.emplace_back(reinterpret_cast<const char*>(name.data()), name.size());
  });
  Watcher watcher(loop.get(), settings_for(api), table);
  REQUIRE(watcher.start());

  // The first list, in three pages.
  REQUIRE(loop.run_until([&] { return table.synced(); }));
  CHECK(watcher.synced());
  CHECK(api.counter("lists") == 3);
  CHECK(addresses(table, kHl0) == Strings{"10.244.1.2", "10.244.1.3"});
  CHECK(addresses(table, "hl1.ns1.svc.cluster.local") == Strings{"10.244.2.2"});
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 1; }));

  // A watch event applies at once, and invalidates.
  changes.clear();
  api.push("MODIFIED", slice("hl0-a", "ns0", "hl0", {{"10.244.1.2", false}}));
  REQUIRE(loop.run_until([&] { return addresses(table, kHl0) == Strings{"10.244.1.3"}; }));
  CHECK(changes.size() == 1);

  // A dropped connection is resumed from the last version seen, a bookmark's here.
  int bookmark = api.call("POST", "/bookmark").value("version", -1);
  int watches = api.counter("watches");
  api.call("POST", "/drop");
  REQUIRE(loop.run_until([&] {
    json s = api.state();
    return s.value("watches", 0) > watches && s.value("open_watches", 0) == 1;
  }));
  CHECK(api.state().value("last_watch_version", "") == std::to_string(bookmark));
  CHECK(api.counter("lists") == 3);  // no relist for that
  api.push("MODIFIED", slice("hl0-a", "ns0", "hl0", {{"10.244.1.2", true}}));
  REQUIRE(loop.run_until([&] { return addresses(table, kHl0).size() == 2; }));

  // An ERROR event with a 410 Status: relist, which brings what the watch missed.
  api.push("DELETED", slice("hl0-b", "ns0", "hl0", {}), /*silent=*/true);
  api.push("ADDED", slice("hl2-a", "ns0", "hl2", {{"10.244.3.2", true}}), true);
  api.call("POST", "/expire", {{"how", "event"}});
  REQUIRE(loop.run_until([&] {
    return addresses(table, kHl0) == Strings{"10.244.1.2"} &&
           addresses(table, "hl2.ns0.svc.cluster.local") == Strings{"10.244.3.2"};
  }));
  CHECK(api.counter("lists") == 3 + 3);  // a page each for hl0-a, hl1-a and hl2-a
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 1; }));

  // An HTTP 410 on re-watching after a drop: relist too.
  api.push("DELETED", slice("hl2-a", "ns0", "hl2", {}), true);
  api.call("POST", "/expire", {{"how", "http"}});
  REQUIRE(loop.run_until([&] { return !ask(table, "hl2.ns0.svc.cluster.local", 1).answered; }));
  CHECK(api.counter("expired") >= 1);
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 1; }));

  // The token file is rotated before the server switches: the next connection just uses it.
  write_file(api.token_file(), "token-2\n");
  api.call("POST", "/token", {{"token", "token-2"}});
  api.call("POST", "/drop");
  REQUIRE(loop.run_until([&] {
    json s = api.state();
    return s.value("open_watches", 0) == 1 && s.value("last_token", "") == "token-2";
  }));
  CHECK(api.counter("unauthorized") == 0);

  // The server switches first: 401s, retried with backoff, until the file has the new token.
  api.call("POST", "/token", {{"token", "token-3"}});
  api.call("POST", "/drop");
  REQUIRE(loop.run_until([&] { return api.counter("unauthorized") >= 2; }));
  CHECK(api.counter("open_watches") == 0);
  write_file(api.token_file(), "token-3\n");
  REQUIRE(loop.run_until([&] {
    json s = api.state();
    return s.value("open_watches", 0) == 1 && s.value("last_token", "") == "token-3";
  }));
  api.push("ADDED", slice("hl3-a", "ns0", "hl3", {{"10.244.4.2", true}}));
  REQUIRE(loop.run_until([&] { return ask(table, "hl3.ns0.svc.cluster.local", 1).answered; }));

  stop(loop, watcher);
}

TEST_CASE("the watcher can be kept to some namespaces", "[k8s][watcher]") {
  FakeApi api;
  api.push("ADDED", slice("hl0-a", "ns0", "hl0", {{"10.244.1.2", true}}));
  api.push("ADDED", slice("hl1-a", "ns1", "hl1", {{"10.244.2.2", true}}));

  Loop loop;
  EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  WatcherSettings settings = settings_for(api);
  settings.namespaces = {"ns0", "ns2"};
  Watcher watcher(loop.get(), settings, table);
  REQUIRE(watcher.start());
  REQUIRE(loop.run_until([&] { return table.synced(); }));
  CHECK(ask(table, kHl0, wire::kTypeA).answered);
  CHECK_FALSE(ask(table, "hl1.ns1.svc.cluster.local", wire::kTypeA).answered);
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 2; }));

  api.push("ADDED", slice("hl1-b", "ns1", "hl1", {{"10.244.2.3", true}}));
  api.push("ADDED", slice("hl2-a", "ns2", "hl2", {{"10.244.5.2", true}}));
  REQUIRE(loop.run_until([&] { return ask(table, "hl2.ns2.svc.cluster.local", 1).answered; }));
  CHECK_FALSE(ask(table, "hl1.ns1.svc.cluster.local", wire::kTypeA).answered);
  stop(loop, watcher);
}

TEST_CASE("quiet watches resume at once; a watch ERROR of any code relists", "[k8s][watcher]") {
  FakeApi api;
  api.push("ADDED", slice("hl0-a", "ns0", "hl0", {{"10.244.1.2", true}}));
  api.push("ADDED", slice("hl0-b", "ns0", "hl0", {{"10.244.1.3", true}}));

  Loop loop;
  EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  WatcherSettings settings = settings_for(api);
  settings.watch_timeout_s = 1;        // the server ends each watch after 1-2 s with nothing sent
  settings.backoff_initial_ms = 2000;  // a retry by backoff would wait 1-2 s
  Watcher watcher(loop.get(), settings, table);
  REQUIRE(watcher.start());
  REQUIRE(loop.run_until([&] { return table.synced(); }));

  // Ended quietly by the server, as an API server without a watch cache does: no pause, no backoff
  // growing until the next one waits half a minute, unwatched.
  REQUIRE(loop.run_until([&] { return api.counter("quiet_ends") >= 3; }));
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 1; }));
  CHECK(api.state().value("max_rewatch_gap_ms", 1e9) < 500);

  // An ERROR event that is not a 410 (a server in trouble): the watch may have missed events, so
  // relist, which brings the change made behind its back.
  const int lists = api.counter("lists");
  api.push("DELETED", slice("hl0-b", "ns0", "hl0", {}), /*silent=*/true);
  api.call("POST", "/fail", {{"code", 500}});
  REQUIRE(loop.run_until([&] { return addresses(table, kHl0) == Strings{"10.244.1.2"}; }));
  CHECK(api.counter("lists") > lists);
  REQUIRE(loop.run_until([&] { return api.counter("open_watches") == 1; }));
  stop(loop, watcher);
}

TEST_CASE("without an API server the watcher stays idle, or refuses under mode on",
          "[k8s][watcher]") {
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  Loop loop;
  EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  Watcher on(loop.get(), {.mode = Mode::kOn}, table);
  CHECK_FALSE(on.start());
  Watcher automatic(loop.get(), {.mode = Mode::kAuto}, table);
  CHECK(automatic.start());
  CHECK_FALSE(automatic.synced());
  bool closed = false;
  automatic.stop([&] { closed = true; });
  CHECK(closed);
}

}  // namespace
}  // namespace readyns::k8s
