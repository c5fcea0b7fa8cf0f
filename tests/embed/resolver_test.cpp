// readyns::Resolver on the caller's own loop (the test runs uv_run itself).
//
// Resolving through the cache, errors, cancellation, teardown with queries in flight, DNS listeners
// on the same loop, and endpoints from DNS against knotd.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.hpp"
#include "readyns/resolver.hpp"
#include "responder.hpp"

namespace readyns {
namespace {

using testing::Loop;
using testing::Responder;

Options options_for(const std::string& upstream) {
  Options o = testing::forwarding_options(upstream);
  o.resolve_timeout_ms = 800;
  o.upstream_timeout_ms = 300;
  return o;
}

// A resolve() whose outcome the test waits for.
struct Outcome {
  std::optional<Result<Answer>> result;
  int calls = 0;
  Resolver::ResolveCallback callback() {
    return [this](Result<Answer> r) {
      ++calls;
      result.emplace(std::move(r));
    };
  }
  bool done() const { return calls > 0; }
};

TEST_CASE("resolve() on the caller's loop goes through the cache", "[embed][loop]") {
  Responder upstream;
  Loop loop;
  auto resolver = std::make_unique<Resolver>(loop.get(), options_for(upstream.address()));
  CHECK_FALSE(resolver->watching_kubernetes());

  Outcome first;
  Query q = resolver->resolve("www.example.test", kTypeA, first.callback());
  CHECK(q.pending());
  CHECK(first.calls == 0);  // never from inside the call
  REQUIRE(loop.run_until([&] { return first.done(); }));
  REQUIRE(first.result->ok());
  const Answer& a = **first.result;
  CHECK(a.rcode == 0);
  REQUIRE(a.records.size() == 1);
  CHECK(a.records[0].name == "www.example.test.");
  CHECK(a.records[0].type == kTypeA);
  CHECK(a.records[0].data == "192.0.2.1");
  CHECK(a.records[0].ttl == 30);  // max_ttl clamps the upstream's 300
  CHECK_FALSE(q.pending());
  CHECK(upstream.queries() == 1);

  // A hit: same answer, no new upstream query, still called back from the loop.
  Outcome second;
  Query q2 = resolver->resolve("WWW.Example.Test.", kTypeA, second.callback());
  CHECK(second.calls == 0);
  REQUIRE(loop.run_until([&] { return second.done(); }));
  REQUIRE(second.result->ok());
  CHECK((*second.result)->records.at(0).data == "192.0.2.1");
  CHECK(upstream.queries() == 1);

  // NXDOMAIN and NODATA are answers, not errors.
  Outcome nx, nodata;
  Query q3 = resolver->resolve("nx.example.test", kTypeA, nx.callback());
  Query q4 = resolver->resolve("www.example.test", kTypeAaaa, nodata.callback());
  REQUIRE(loop.run_until([&] { return nx.done() && nodata.done(); }));
  CHECK((*nx.result)->rcode == 3);
  CHECK((*nodata.result)->rcode == 0);
  CHECK((*nodata.result)->records.empty());

  // A bad name is an error, given through the callback too.
  Outcome bad;
  Query q5 = resolver->resolve("a..b", kTypeA, bad.callback());
  REQUIRE(loop.run_until([&] { return bad.done(); }));
  CHECK(bad.result->error().code == Errc::kInvalidArgument);
  CHECK_FALSE(bad.result->ok());
  CHECK(std::string(describe(Errc::kInvalidArgument)) == "invalid argument");

  resolver.reset();
  CHECK(loop.drain());
}

TEST_CASE("an upstream that never answers gives SERVFAIL after resolve_timeout_ms",
          "[embed][loop]") {
  Responder upstream;
  Loop loop;
  Resolver resolver(loop.get(), options_for(upstream.address()));
  Outcome o;
  Query q = resolver.resolve("drop.example.test", kTypeA, o.callback());
  auto started = std::chrono::steady_clock::now();
  REQUIRE(loop.run_until([&] { return o.done(); }, std::chrono::milliseconds(5000)));
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(700));
  REQUIRE(o.result->ok());
  CHECK((*o.result)->rcode == 2);
}

TEST_CASE("a cancelled query never calls back; a detached one does", "[embed][loop]") {
  Responder upstream(200);
  Loop loop;
  Resolver resolver(loop.get(), options_for(upstream.address()));
  Outcome destroyed, cancelled, detached, moved_over;
  {
    Query q = resolver.resolve("slow1.example.test", kTypeA, destroyed.callback());
  }  // destroyed before the loop even ran
  Query c = resolver.resolve("slow2.example.test", kTypeA, cancelled.callback());
  Query d = resolver.resolve("slow3.example.test", kTypeA, detached.callback());
  Query m = resolver.resolve("slow4.example.test", kTypeA, moved_over.callback());
  loop.run_for(50);  // the queries are out upstream now
  c.cancel();
  CHECK_FALSE(c.pending());
  d.detach();
  CHECK_FALSE(d.pending());
  m = Query();  // assigning over a pending query cancels it
  REQUIRE(loop.run_until([&] { return detached.done(); }));
  loop.run_for(300);
  CHECK(destroyed.calls == 0);
  CHECK(cancelled.calls == 0);
  CHECK(moved_over.calls == 0);
  CHECK(detached.calls == 1);
  CHECK(upstream.queries() >= 3);
}

TEST_CASE("destroying the resolver with queries in flight", "[embed][loop][teardown]") {
  Responder upstream(2000);
  Loop loop;
  auto resolver = std::make_unique<Resolver>(loop.get(), options_for(upstream.address()));
  auto calls = std::make_shared<int>(0);
  std::vector<Query> kept;
  for (int i = 0; i < 50; ++i) {
    std::string name = (i % 2 ? "drop" : "slow") + std::to_string(i) + ".example.test";
    // Each callback holds a resource, so a leak of the call would show under ASan.
    auto payload = std::make_shared<std::vector<char>>(1000);
    Query q = resolver->resolve(name, kTypeA, [calls, payload](Result<Answer>) { ++*calls; });
    if (i % 3 == 0) {
      q.detach();
    } else {
      kept.push_back(std::move(q));
    }
  }
  // The watch's SRV query ("drop.shop.svc...") is never answered either.
  Subscription s = resolver->watch_endpoints("drop", "shop", "", [calls](auto) { ++*calls; });
  REQUIRE(loop.run_until([&] { return upstream.queries() >= 40; }));
  resolver.reset();  // with everything in flight
  CHECK(loop.drain());
  CHECK(*calls == 0);
  for (const Query& q : kept) CHECK_FALSE(q.pending());
  CHECK_FALSE(s.active());
  kept.clear();  // the handles outlive the resolver
}

TEST_CASE("the resolver may be destroyed from inside its own callback", "[embed][loop][teardown]") {
  Responder upstream;
  Loop loop;
  auto resolver = std::make_unique<Resolver>(loop.get(), options_for(upstream.address()));
  int later_calls = 0;
  bool first_done = false;
  Query other = resolver->resolve("drop.example.test", kTypeA, [&](auto) { ++later_calls; });
  Query q = resolver->resolve("www.example.test", kTypeA, [&](Result<Answer> r) {
    CHECK(r.ok());
    first_done = true;
    resolver.reset();
  });
  REQUIRE(loop.run_until([&] { return first_done; }));
  CHECK(loop.drain());
  CHECK(later_calls == 0);
}

// A blocking UDP exchange from another thread, as an outside client would make.
std::vector<uint8_t> udp_exchange(int port, const std::vector<uint8_t>& query) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(uint16_t(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  pollfd p{fd, POLLIN, 0};
  std::vector<uint8_t> reply(512);
  ssize_t n = poll(&p, 1, 3000) > 0 ? recv(fd, reply.data(), reply.size(), 0) : -1;
  close(fd);
  reply.resize(n > 0 ? size_t(n) : 0);
  return reply;
}

TEST_CASE("with listen addresses the resolver serves DNS on the same loop", "[embed][loop]") {
  Responder upstream;
  Loop loop;
  int port = testing::free_port();
  Options o = options_for(upstream.address());
  o.listen = {"127.0.0.1:" + std::to_string(port)};
  auto resolver = std::make_unique<Resolver>(loop.get(), o);

  // www.example.test A, ID 0x4242, RD.
  std::vector<uint8_t> query = {0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  for (std::string label : {"www", "example", "test"}) {
    query.push_back(uint8_t(label.size()));
    query.insert(query.end(), label.begin(), label.end());
  }
  query.insert(query.end(), {0, 0, 1, 0, 1});
  std::atomic<bool> done{false};
  std::vector<uint8_t> reply;
  std::thread client([&] {
    reply = udp_exchange(port, query);
    done = true;
  });
  bool ok = loop.run_until([&] { return done.load(); });
  client.join();
  REQUIRE(ok);
  REQUIRE(reply.size() > 12);
  CHECK(reply[0] == 0x42);
  CHECK((reply[3] & 0x0f) == 0);
  CHECK(reply[7] == 1);  // one answer
  // The same cache serves the in-process caller.
  Outcome hit;
  Query q = resolver->resolve("www.example.test", kTypeA, hit.callback());
  REQUIRE(loop.run_until([&] { return hit.done(); }));
  CHECK(upstream.queries() == 1);

  // A port held by a socket without SO_REUSEPORT cannot be shared: the constructor throws.
  int taken = testing::free_port();
  int holder = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(taken));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Options bad = o;
  bad.listen = {"127.0.0.1:" + std::to_string(taken)};
  CHECK_THROWS_AS(Resolver(loop.get(), bad), std::runtime_error);
  close(holder);
  resolver.reset();
  CHECK(loop.drain());
}

TEST_CASE("bad options throw from the constructor and leave the loop untouched", "[embed]") {
  Loop loop;
  Options o = options_for("127.0.0.1:1");
  o.upstreams = {};
  CHECK_THROWS_AS(Resolver(loop.get(), o), std::invalid_argument);
  o.upstreams = {"not an address"};
  CHECK_THROWS_AS(Resolver(loop.get(), o), std::invalid_argument);
  o = options_for("127.0.0.1:1");
  o.min_ttl = 60;
  o.max_ttl = 30;
  CHECK_THROWS_AS(Resolver(o), std::invalid_argument);
  o = options_for("127.0.0.1:1");
  o.kube = "on";  // and no API server anywhere
  o.kube_api = "";
  CHECK_THROWS_AS(Resolver(loop.get(), o), std::runtime_error);
  CHECK(uv_loop_alive(loop.get()) == 0);
}

TEST_CASE("endpoints from DNS when no watcher runs (knotd upstream)", "[embed][loop][knot]") {
  testing::Knot knot;
  Loop loop;
  Options o = options_for(knot.address());
  o.resolve_timeout_ms = 2000;
  auto resolver = std::make_unique<Resolver>(loop.get(), o);

  // The table is not there: the synchronous form says so.
  Result<Endpoints> now = resolver->endpoints("hl0", "ns0", "http");
  CHECK(now.error().code == Errc::kNoTable);

  std::optional<Result<Endpoints>> got;
  Query q = resolver->endpoints("hl0", "ns0", "http", [&](Result<Endpoints> r) { got.emplace(r); });
  REQUIRE(loop.run_until([&] { return got.has_value(); }));
  REQUIRE(got->ok());
  Endpoints expected;
  for (const char* ip : {"10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"}) {
    expected.push_back({.address = ip, .port = 8080, .hostname = "", .zone = ""});
  }
  CHECK(**got == expected);

  // A ClusterIP Service: DNS knows only its virtual IP.
  got.reset();
  q = resolver->endpoints("svc3", "ns1", "http", [&](Result<Endpoints> r) { got.emplace(r); });
  REQUIRE(loop.run_until([&] { return got.has_value(); }));
  REQUIRE(got->ok());
  CHECK(**got == Endpoints{{.address = "10.96.1.13", .port = 80, .hostname = "", .zone = ""}});

  // Unknown Service or port: no endpoints, no error. A bad name: an error.
  got.reset();
  q = resolver->endpoints("nothere", "ns0", "http", [&](Result<Endpoints> r) { got.emplace(r); });
  REQUIRE(loop.run_until([&] { return got.has_value(); }));
  REQUIRE(got->ok());
  CHECK((*got)->empty());
  got.reset();
  q = resolver->endpoints("Bad_Name", "ns0", "", [&](Result<Endpoints> r) { got.emplace(r); });
  REQUIRE(loop.run_until([&] { return got.has_value(); }));
  CHECK(got->error().code == Errc::kInvalidArgument);

  // A watch by DNS: the first set once, then nothing while it does not change.
  std::vector<Result<Endpoints>> seen;
  Subscription s = resolver->watch_endpoints("hl0", "ns0", "http",
                                             [&](Result<Endpoints> r) { seen.push_back(r); });
  CHECK(s.active());
  REQUIRE(loop.run_until([&] { return !seen.empty(); }));
  REQUIRE(seen[0].ok());
  CHECK(*seen[0] == expected);
  loop.run_for(2500);  // the answers' TTL is clamped to 30 s; refreshes find no change anyway
  CHECK(seen.size() == 1);
  s.cancel();
  CHECK_FALSE(s.active());

  // Headless names resolve as plain DNS too.
  Outcome srv;
  Query q2 = resolver->resolve("_http._tcp.hl0.ns0.svc.cluster.local", kTypeSrv, srv.callback());
  REQUIRE(loop.run_until([&] { return srv.done(); }));
  REQUIRE(srv.result->ok());
  CHECK((*srv.result)->records.size() == 4);
  CHECK((*srv.result)->records[0].data.starts_with("0 25 8080 "));
  resolver.reset();
  CHECK(loop.drain());
}

}  // namespace
}  // namespace readyns
