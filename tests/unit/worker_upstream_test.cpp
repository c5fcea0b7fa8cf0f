// Unit tests of how a Worker's forwarder picks and fails its upstreams.
//
// Replies it cannot use (truncated over TCP too, an extended RCODE) are that server's failure:
// the next one is asked, SERVFAIL when all fail; servers are ranked by round trips finer than a
// millisecond. Driven through the scripted transport of worker_fixture.hpp, with two upstreams.
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

// `reply` with a 12-bit RCODE: its lower 4 bits in the header, the rest in an OPT record.
Bytes with_rcode(Bytes reply, uint16_t full_rcode) {
  reply[3] = uint8_t((reply[3] & 0xf0) | (full_rcode & 0x0f));
  size_t len = reply.size();
  reply.resize(len + wire::kOptRecordSize);
  REQUIRE(wire::append_opt(reply, len, false, uint8_t(full_rcode >> 4)) == reply.size());
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

TEST_CASE("an extended RCODE fails its server and is never cached") {
  constexpr uint16_t kBadVers = 16, kBadCookie = 23;  // NOERROR and YXRRSET in the header
  Fixture f(add_second_upstream);
  const Bytes query = make_query("cookie.example", wire::kTypeA);
  f.worker->on_query(query, {.sink = &f.sink});
  const net::Address first = f.transport.server;
  f.transport.reply_with(with_rcode(f.transport.answer(wire::kNoError, true), kBadVers));
  REQUIRE(f.transport.exchange != nullptr);
  CHECK_FALSE(f.transport.server == first);
  f.transport.reply_with(with_rcode(f.transport.answer(wire::kNoError), kBadCookie));
  REQUIRE(f.sink.answers == 1);
  CHECK(rcode(f.sink.last) == wire::kServFail);
  CHECK(f.servers.get(first)->failures == 1);
  CHECK(f.servers.get(kSecond)->failures == 1);

  f.worker->on_query(query, {.sink = &f.sink});
  REQUIRE(f.transport.exchange != nullptr);  // a miss again
  f.transport.reply(wire::kNoError, true);
  REQUIRE(f.sink.answers == 2);
  CHECK(rcode(f.sink.last) == wire::kNoError);
}

TEST_CASE("upstreams are ranked by round trips finer than a millisecond") {
  Fixture f(add_second_upstream);
  auto ask = [&](const char* name, uint64_t round_trip_us) {
    f.worker->on_query(make_query(name, wire::kTypeA), {.sink = &f.sink});
    const net::Address asked = f.transport.server;
    f.transport.micros += round_trip_us;
    f.transport.reply(wire::kNoError, true);
    return asked;
  };
  // Each server is tried once before it has a round trip; then the faster is preferred, though
  // both answered within the same millisecond.
  const net::Address slow = ask("one.example", 800);
  const net::Address fast = ask("two.example", 300);
  CHECK_FALSE(slow == fast);
  CHECK(f.servers.get(slow)->srtt_us == 800);
  CHECK(f.servers.get(fast)->srtt_us == 300);
  CHECK(ask("three.example", 300) == fast);
  CHECK(f.sink.answers == 3);
}
