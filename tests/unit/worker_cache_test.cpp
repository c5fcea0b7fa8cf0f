// Unit tests of what a Worker keeps in the cache from upstream answers.
//
// Driven through the scripted transport of worker_fixture.hpp.
#include <catch2/catch.hpp>

#include <utility>

#include "worker_fixture.hpp"

using namespace readyns;
using test::Bytes;
using test::Fixture;
using test::make_query;
using test::rcode;

TEST_CASE("an answer the upstream says not to keep retires the older one of its name") {
  Fixture f;
  const Bytes query = make_query("old.example", wire::kTypeA);
  f.cache_answer(query);
  f.transport.now += 120'000;  // its 30 s (the default ceiling) are over: stale, still servable

  // The refresh brings the upstream's latest: the same name, now with TTL 0.
  f.worker->on_query(query, {.sink = &f.sink});
  f.transport.reply(wire::kNoError, true, 0);
  REQUIRE(f.sink.answers == 2);
  CHECK(rcode(f.sink.last) == wire::kNoError);

  // The upstream then fails: the answer from before the TTL-0 one must not come back as stale.
  f.worker->on_query(query, {.sink = &f.sink});
  REQUIRE(f.transport.exchange != nullptr);
  f.transport.now += 5000;  // past the resolution's deadline: this failure ends it
  std::exchange(f.transport.exchange, nullptr)->on_failure(upstream::Failure::kTimeout);
  REQUIRE(f.sink.answers == 3);
  CHECK(rcode(f.sink.last) == wire::kServFail);
  CHECK(f.counters().stale_answers.get() == 0);
}

TEST_CASE("an upstream error leaves the older answer to serve stale (RFC 8767)") {
  Fixture f;
  const Bytes query = make_query("old.example", wire::kTypeA);
  f.cache_answer(query);
  f.transport.now += 120'000;

  f.worker->on_query(query, {.sink = &f.sink});
  f.transport.reply(wire::kServFail);
  REQUIRE(f.sink.answers == 2);
  CHECK(rcode(f.sink.last) == wire::kNoError);  // the stale answer, not the SERVFAIL
  CHECK(f.counters().stale_answers.get() == 1);

  f.worker->on_query(query, {.sink = &f.sink});
  f.transport.now += 5000;
  std::exchange(f.transport.exchange, nullptr)->on_failure(upstream::Failure::kTimeout);
  REQUIRE(f.sink.answers == 3);
  CHECK(rcode(f.sink.last) == wire::kNoError);
  CHECK(f.counters().stale_answers.get() == 2);
}
