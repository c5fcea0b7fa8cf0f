// Unit tests of what a Worker counts per query.
//
// Requests by transport, family and type, request durations (a UDP batch's answers timed together,
// later ones from when their query was read, always before the answer leaves), the upstream replies
// by RCODE, and the misses shed over a limit and the bound on prefetches. A scripted transport
// stands in for the upstreams.
#include <uv.h>
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <algorithm>
#include <functional>

#include "worker_fixture.hpp"

using namespace readyns;

namespace {

using test::Bytes;
using test::Fixture;
using test::make_query;
using test::rcode;
using test::Udp;
constexpr uint16_t kTypeTxt = 16;

sockaddr_in6 ipv6_client() {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(40000);
  return a;
}

}  // namespace

TEST_CASE("queries are counted by transport, client family and type") {
  Fixture f;
  sockaddr_in6 v6 = ipv6_client();
  f.worker->on_query(make_query("a.example", wire::kTypeA), {.sink = &f.sink});
  f.worker->on_query(make_query("a.example", wire::kTypeAaaa),
                     {.peer = reinterpret_cast<const sockaddr*>(&v6), .sink = &f.sink});
  f.worker->on_query(make_query("a.example", 99), {.sink = &f.sink});
  Bytes short_query = {0x12, 0x34, 0};  // dropped unanswered: counted, type unknown
  f.worker->on_query(short_query, {.sink = &f.sink});

  CHECK(f.requests(true, false, wire::kTypeA) == 1);
  CHECK(f.requests(true, true, wire::kTypeAaaa) == 1);
  CHECK(f.requests(true, false, 99) == 2);  // "other": type 99 and the unparsed one
  uint64_t total = 0;
  for (const core::Counter& c : f.counters().requests) total += c.get();
  CHECK(total == 4);
}

// Runs the loop until `done()`, for five seconds at most.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  uv_timer_t tick;  // so that the loop wakes up to look even when nothing happens
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  uint64_t deadline = uv_now(loop) + 5000;
  while (!done() && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

TEST_CASE("UDP answers of one batch are timed together, before they go out") {
  Fixture f;
  Udp udp(f);
  Bytes query = make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);  // over a stream, outside any batch
  REQUIRE(f.durations(wire::kTypeA).count() == 1);

  for (int i = 0; i < 3; ++i) udp.send(query);
  udp.send(make_query("miss.example", kTypeTxt));
  // All four arrive before the loop looks: one recvmmsg, one batch.
  REQUIRE(run_until(&f.loop, [&] { return f.durations(wire::kTypeA).count() == 4; }));
  CHECK(f.requests(false, false, wire::kTypeA) == 3);
  CHECK(f.requests(false, false, kTypeTxt) == 1);
  CHECK(udp.answers_waiting() == 3);
  // The three hits share the batch's one duration, so one bucket holds them all.
  admin::HistogramSnapshot a = f.durations(wire::kTypeA);
  CHECK(std::count_if(a.counts.begin(), a.counts.end(), [](uint64_t n) { return n >= 3; }) == 1);

  CHECK(f.durations(kTypeTxt).count() == 0);  // still upstream
  f.transport.reply(wire::kNxDomain);
  CHECK(f.durations(kTypeTxt).count() == 1);  // timed from when its batch was read
  CHECK(udp.answers_waiting() == 1);
}

TEST_CASE("an answer sent at once is timed before it is sent") {
  Fixture f;
  Bytes query = make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);
  uint64_t timed_when_sent = 0;
  f.sink.on_send = [&] { timed_when_sent = f.durations(wire::kTypeA).count(); };
  f.worker->on_query(query, {.sink = &f.sink});
  CHECK(timed_when_sent == 2);
  // Within a listener's batch too: a stream's answers are not held for the batch.
  f.worker->begin_batch();
  f.worker->on_query(query, {.sink = &f.sink});
  CHECK(timed_when_sent == 3);
  f.worker->end_batch();
  CHECK(f.durations(wire::kTypeA).count() == 3);
}

TEST_CASE("upstream replies are timed by the upstream and the reply's RCODE") {
  Fixture f;
  f.worker->on_query(make_query("one.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNoError);
  f.worker->on_query(make_query("two.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNxDomain);
  f.worker->on_query(make_query("three.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNxDomain);

  upstream::ServerState& s = *f.servers.get(f.upstream);
  CHECK(s.queries == 3);
  CHECK(s.reply_durations[wire::kNoError].snapshot().count() == 1);
  CHECK(s.reply_durations[wire::kNxDomain].snapshot().count() == 2);
  CHECK(s.reply_durations[wire::kServFail].snapshot().count() == 0);
  CHECK(f.durations(wire::kTypeA).count() == 3);
}

TEST_CASE("misses sent while every upstream of their zone is failing are counted") {
  Fixture f;
  f.worker->on_query(make_query("one.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNoError);
  CHECK(f.servers.all_failing_resolutions == 0);

  f.worker->on_query(make_query("two.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.now += 5000;  // past the whole resolution's deadline: this failure ends it
  std::exchange(f.transport.exchange, nullptr)->on_failure(upstream::Failure::kTimeout);
  CHECK(f.sink.answers == 2);
  CHECK(f.servers.all_failing_resolutions == 0);

  // The only server is now avoided: the next miss goes to it anyway, and counts.
  f.worker->on_query(make_query("three.example", wire::kTypeA), {.sink = &f.sink});
  CHECK(f.transport.exchange != nullptr);
  CHECK(f.servers.all_failing_resolutions == 1);
  f.transport.reply(wire::kNoError);
}

TEST_CASE("misses over a limit are shed: a stale answer if at hand, else REFUSED; hits go on") {
  Fixture f([](core::WorkerSettings& s) {
    s.max_in_flight = 2;
    s.max_waiters_per_miss = 2;
  });
  auto asked = [&](const std::string& name) {
    f.sink.last.clear();
    f.worker->on_query(make_query(name, wire::kTypeA), {.sink = &f.sink});
    return f.sink.last;  // empty: no answer yet
  };
  auto answers = [](const Bytes& answer) { return wire::get16(&answer.at(6)); };
  f.cache_answer(make_query("old.example", wire::kTypeA));
  f.transport.now += 120'000;  // old.example's 30 s (the default ceiling) are over: it is stale now
  f.cache_answer(make_query("hot.example", wire::kTypeA));

  CHECK(asked("a.example").empty());
  CHECK(asked("b.example").empty());  // two misses in flight: the limit
  Bytes shed = asked("c.example");
  REQUIRE(!shed.empty());
  CHECK(rcode(shed) == wire::kRefused);
  CHECK(f.counters().shed.get() == 1);

  Bytes hit = asked("hot.example");
  REQUIRE(!hit.empty());
  CHECK(rcode(hit) == wire::kNoError);
  CHECK(answers(hit) == 1);

  Bytes stale = asked("old.example");
  REQUIRE(!stale.empty());
  CHECK(rcode(stale) == wire::kNoError);
  CHECK(answers(stale) == 1);
  CHECK(f.counters().stale_answers.get() == 1);
  CHECK(f.counters().shed.get() == 1);

  CHECK(asked("a.example").empty());  // joins the miss: its second client
  CHECK(rcode(asked("a.example")) == wire::kRefused);
  CHECK(f.counters().shed.get() == 2);
}

TEST_CASE("prefetches are bounded: popular entries near expiry refresh, at most max_prefetches") {
  const size_t bound = GENERATE(0, 2);  // 0: prefetch off (the daemon's default)
  Fixture f([bound](core::WorkerSettings& s) { s.max_prefetches = bound; });
  const std::vector<std::string> names = {"a.example", "b.example", "c.example", "d.example"};
  for (const auto& name : names) f.cache_answer(make_query(name, wire::kTypeA));
  REQUIRE(f.counters().upstream_queries.get() == 4);
  // Into the last tenth of their TTL (30 s, the default ceiling): each hit would refresh.
  f.transport.now += 28'000;
  for (const auto& name : names) {
    f.sink.last.clear();
    f.worker->on_query(make_query(name, wire::kTypeA), {.sink = &f.sink});
    CHECK(!f.sink.last.empty());  // a hit, answered at once, refresh or not
  }
  CHECK(f.counters().prefetches.get() == bound);
  CHECK(f.counters().upstream_queries.get() == 4 + bound);
  CHECK(f.counters().cache_hits.get() == 4);
}
