// The C ABI (readyns/readyns.h) as a C caller uses it.
//
// Options by key, resolver on its own thread and on the caller's loop, resolve with and without a
// handle, cancel, endpoints, errors.
#include "readyns/readyns.h"

#include <uv.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.hpp"
#include "responder.hpp"

namespace {

using readyns::testing::Loop;
using readyns::testing::Responder;

struct Got {
  std::atomic<int> calls{0};
  int status = -1;
  std::string message;
  int rcode = -1;
  std::vector<std::string> data;
  std::vector<std::string> endpoints;
};

void on_answer(void* user, int status, const char* message, const readyns_answer* answer) {
  auto* got = static_cast<Got*>(user);
  got->status = status;
  got->message = message;
  if (answer) {
    got->rcode = answer->rcode;
    for (size_t i = 0; i < answer->record_count; ++i) got->data.push_back(answer->records[i].data);
  }
  ++got->calls;
}

void on_endpoints(void* user, int status, const char* message, const readyns_endpoint* endpoints,
                  size_t count) {
  auto* got = static_cast<Got*>(user);
  got->status = status;
  got->message = message;
  got->endpoints.clear();
  for (size_t i = 0; i < count; ++i) {
    got->endpoints.push_back(std::string(endpoints[i].address) + ":" +
                             std::to_string(endpoints[i].port));
  }
  ++got->calls;
}

template <class F>
bool eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

readyns_options* options_for(const std::string& upstream) {
  readyns_options* o = readyns_options_new();
  REQUIRE(o);
  REQUIRE(readyns_options_set(o, "upstreams", upstream.c_str()) == READYNS_OK);
  REQUIRE(readyns_options_set(o, "kube.mode", "off") == READYNS_OK);
  REQUIRE(readyns_options_set(o, "log_level", "warn") == READYNS_OK);
  REQUIRE(readyns_options_set(o, "upstream.resolve_timeout_ms", "800") == READYNS_OK);
  return o;
}

TEST_CASE("C: options, errors and strings", "[embed][c]") {
  CHECK(std::string(readyns_version()) == "0.1.0");
  CHECK(std::string(readyns_strerror(READYNS_EINVAL)) == "invalid argument");
  CHECK(std::string(readyns_strerror(READYNS_ESYSTEM)) == "system error");
  CHECK(std::string(readyns_strerror(1234)) == "unknown error");

  readyns_options* o = readyns_options_new();
  CHECK(readyns_options_set(o, "no.such.key", "1") == READYNS_EINVAL);
  CHECK(std::string(readyns_last_error()) == "unknown option 'no.such.key'");
  CHECK(readyns_options_set(o, "cache.size", "many") == READYNS_EINVAL);
  CHECK(std::string(readyns_last_error()).starts_with("cache.size: "));
  CHECK(readyns_options_set(o, "forward", "example.org=127.0.0.1:5300") == READYNS_OK);
  CHECK(readyns_options_clear(o, "cache.size") == READYNS_EINVAL);  // not a list
  CHECK(readyns_options_clear(o, "forward") == READYNS_OK);
  CHECK(readyns_options_set(o, "kube.mode", "off") == READYNS_OK);

  // No default upstream: refused, saying why.
  readyns_resolver* r = reinterpret_cast<readyns_resolver*>(1);
  CHECK(readyns_resolver_new(o, nullptr, &r) == READYNS_EINVAL);
  CHECK(r == nullptr);
  CHECK(std::string(readyns_last_error()).find("upstream") != std::string::npos);
  CHECK(readyns_resolver_new(o, nullptr, nullptr) == READYNS_EINVAL);
  readyns_options_free(o);
  readyns_options_free(nullptr);
}

TEST_CASE("C: resolver on its own thread", "[embed][c]") {
  Responder upstream(300);
  readyns_options* o = options_for(upstream.address());
  readyns_resolver* r = nullptr;
  REQUIRE(readyns_resolver_new(o, nullptr, &r) == READYNS_OK);
  readyns_options_free(o);  // copied
  CHECK(readyns_watching_kubernetes(r) == 0);

  Got plain;
  readyns_query* q = nullptr;
  REQUIRE(readyns_resolve(r, "www.example.test", 1, on_answer, &plain, &q) == READYNS_OK);
  REQUIRE(eventually([&] { return plain.calls.load() == 1; }));
  CHECK(plain.status == READYNS_OK);
  CHECK(plain.rcode == 0);
  CHECK(plain.data == std::vector<std::string>{"192.0.2.1"});
  readyns_query_free(q);

  Got no_handle;
  REQUIRE(readyns_resolve(r, "other.example.test", 1, on_answer, &no_handle, nullptr) ==
          READYNS_OK);
  REQUIRE(eventually([&] { return no_handle.calls.load() == 1; }));

  Got cancelled;
  REQUIRE(readyns_resolve(r, "slow.example.test", 1, on_answer, &cancelled, &q) == READYNS_OK);
  readyns_query_cancel(q);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(cancelled.calls.load() == 0);
  readyns_query_free(q);

  // Errors found at once are returned, and nothing calls back.
  Got bad;
  CHECK(readyns_resolve(r, "a..b", 1, on_answer, &bad, &q) == READYNS_EINVAL);
  CHECK(q == nullptr);
  CHECK(readyns_resolve(r, nullptr, 1, on_answer, &bad, nullptr) == READYNS_EINVAL);
  CHECK(readyns_resolve(r, "x.test", 1, nullptr, &bad, nullptr) == READYNS_EINVAL);
  CHECK(readyns_endpoints(r, "Bad_Service", "ns", "", on_endpoints, &bad, nullptr) ==
        READYNS_EINVAL);

  readyns_endpoint_list* list = nullptr;
  CHECK(readyns_endpoints_now(r, "web", "shop", "http", &list) == READYNS_ENOTABLE);
  CHECK(list == nullptr);

  // A pending query freed with the resolver gone first is still fine.
  Got orphan;
  REQUIRE(readyns_resolve(r, "drop.example.test", 1, on_answer, &orphan, &q) == READYNS_OK);
  readyns_subscription* s = nullptr;
  Got watched;
  REQUIRE(readyns_watch_endpoints(r, "web", "shop", "http", on_endpoints, &watched, &s) ==
          READYNS_OK);
  readyns_resolver_free(r);
  CHECK(orphan.calls.load() == 0);
  readyns_query_free(q);
  readyns_subscription_free(s);
  CHECK(bad.calls.load() == 0);
}

TEST_CASE("C: resolver on the caller's loop, endpoints from DNS", "[embed][c][knot]") {
  readyns::testing::Knot knot;
  Loop loop;
  readyns_options* o = options_for(knot.address());
  readyns_options_set(o, "upstream.resolve_timeout_ms", "2000");
  readyns_resolver* r = nullptr;
  REQUIRE(readyns_resolver_new(o, reinterpret_cast<struct uv_loop_s*>(loop.get()), &r) ==
          READYNS_OK);
  readyns_options_free(o);

  Got got;
  REQUIRE(readyns_endpoints(r, "hl0", "ns0", "http", on_endpoints, &got, nullptr) == READYNS_OK);
  REQUIRE(loop.run_until([&] { return got.calls.load() == 1; }));
  CHECK(got.status == READYNS_OK);
  CHECK(got.endpoints == std::vector<std::string>{"10.244.1.2:8080", "10.244.1.3:8080",
                                                  "10.244.1.4:8080", "10.244.1.5:8080"});

  Got watched;
  readyns_subscription* s = nullptr;
  REQUIRE(readyns_watch_endpoints(r, "hl0", "ns0", "http", on_endpoints, &watched, &s) ==
          READYNS_OK);
  REQUIRE(loop.run_until([&] { return watched.calls.load() == 1; }));
  CHECK(watched.endpoints.size() == 4);
  readyns_subscription_free(s);

  Got a;
  REQUIRE(readyns_resolve(r, "www.example.org", 28, on_answer, &a, nullptr) == READYNS_OK);
  REQUIRE(loop.run_until([&] { return a.calls.load() == 1; }));
  CHECK(a.data == std::vector<std::string>{"2001:db8::10"});
  readyns_resolver_free(r);
  CHECK(loop.drain());
}

}  // namespace
