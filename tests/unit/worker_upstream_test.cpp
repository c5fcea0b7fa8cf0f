// Unit tests of how a Worker's forwarder takes upstream replies it cannot use (truncated over TCP
// too): that server's failure, the next one asked, SERVFAIL when all fail. Driven through the
// scripted transport of worker_fixture.hpp, with two upstreams.
#include <catch2/catch.hpp>

#include "worker_fixture.hpp"

using namespace readyns;

namespace {

using test::Bytes;
using test::Fixture;
using test::make_query;
using test::rcode;
using upstream::Protocol;

const net::Address kSecond = *net::parse_address("192.0.2.54:53", 53);

void add_second_upstream(core::WorkerSettings& s) {
  s.zones[0].servers.push_back(kSecond);
}

Bytes truncated(Bytes reply) {
  reply[2] |= wire::kFlagTc;
  return reply;
}

}  // namespace

TEST_CASE("a reply truncated over TCP fails its server: the next is asked, then SERVFAIL") {
  Fixture f(add_second_upstream);
  f.worker->on_query(make_query("big.example", wire::kTypeA), {.sink = &f.sink});
  const net::Address first = f.transport.server;
  for (const net::Address& server : {first, kSecond}) {
    CHECK(f.transport.server == server);
    CHECK(f.transport.protocol == Protocol::kUdp);
    f.transport.reply_with(truncated(f.transport.answer(wire::kNoError)));
    REQUIRE(f.transport.exchange != nullptr);
    CHECK(f.transport.server == server);
    CHECK(f.transport.protocol == Protocol::kTcp);
    f.transport.reply_with(truncated(f.transport.answer(wire::kNoError)));
    CHECK(f.servers.get(server)->failures == 1);
  }
  CHECK(f.transport.exchange == nullptr);
  CHECK(f.transport.queries == 4);
  REQUIRE(f.sink.answers == 1);
  CHECK(rcode(f.sink.last) == wire::kServFail);
}
