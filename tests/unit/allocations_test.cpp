// How many heap allocations a cache hit and a cache miss cost a worker once it has warmed up.
//
// Issue #4: no per-query heap churn that can be avoided. Counted by replacing the global operator
// new, which is why this is a binary of its own: the other unit tests keep the sanitizers' operator
// new.
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <string>
#include <vector>

#include "counting_new.hpp"
#include "worker_fixture.hpp"

using namespace readyns;

TEST_CASE("a cache miss over UDP costs one allocation in steady state: its cache entry") {
  constexpr int kWarmUp = 1000, kMeasured = 1000;
  test::Fixture f;
  test::Udp udp(f);
  std::vector<test::Bytes> queries;
  for (int i = 0; i < kWarmUp + kMeasured; ++i) {
    queries.push_back(test::make_query("name" + std::to_string(i) + ".example", wire::kTypeA));
  }
  sockaddr_in client = udp.client_address();
  net::ReplyTo to{.udp = udp.listener.get(), .peer = reinterpret_cast<const sockaddr*>(&client)};

  uint64_t counted = 0;
  int answers = 0;
  for (int i = 0; i < kWarmUp + kMeasured; ++i) {
    // One client, one miss, one upstream answer: nobody to coalesce with.
    uint64_t before = test::allocations();
    f.worker->on_query(queries[size_t(i)], to);
    f.transport.reply(wire::kNoError, true);
    if (i >= kWarmUp) counted += test::allocations() - before;
    if (i % 100 == 99) answers += udp.answers_waiting();  // before the socket's buffer fills
  }
  CHECK(answers == kWarmUp + kMeasured);
  CHECK(f.worker->counters().cache_misses.get() == kWarmUp + kMeasured);
  CHECK(f.worker->counters().upstream_queries.get() == kWarmUp + kMeasured);
  CHECK(f.worker->in_flight() == 0);
  INFO("allocations per miss: " << double(counted) / kMeasured);
  // One percent more for the rare growth of a table or buffer that is then kept.
  CHECK(counted <= kMeasured + kMeasured / 100);
}

TEST_CASE("a cache hit over UDP allocates nothing: read, answered and sent through the listener") {
  constexpr int kWarmUp = 100, kMeasured = 1000;
  test::Fixture f;
  test::Udp udp(f);
  const test::Bytes query = test::make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);

  uint64_t counted = 0;
  int answers = 0;
  for (int i = 0; i < kWarmUp + kMeasured; ++i) {
    udp.send(query);  // on loopback it is queued on the listener's socket when sendto returns
    uint64_t before = test::allocations();
    uv_run(&f.loop, UV_RUN_NOWAIT);
    if (i >= kWarmUp) counted += test::allocations() - before;
    if (i % 100 == 99) answers += udp.answers_waiting();
  }
  CHECK(answers == kWarmUp + kMeasured);
  CHECK(f.worker->counters().cache_hits.get() == kWarmUp + kMeasured);
  CHECK(f.transport.queries == 1);
  CHECK(counted == 0);
}
