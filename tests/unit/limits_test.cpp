// Unit tests for the load limits: response rate limiting and the client TCP connection caps.
//
// Rate limiting with its clock injected.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "core/rate_limit.hpp"
#include "net/address.hpp"
#include "net/connection_limits.hpp"

using readyns::core::RateLimiter;
using readyns::net::ClientAddress;
using readyns::net::ConnectionLimits;
using Verdict = RateLimiter::Verdict;

namespace {

readyns::net::Address at(const std::string& text) {
  auto a = readyns::net::parse_address(text);
  REQUIRE(a);
  return *a;
}

// How many of `n` answers to `client` at `now_ms` get each verdict.
struct Tally {
  int sent = 0, dropped = 0, slipped = 0;
};
Tally ask(RateLimiter& rrl, const std::string& client, int n, uint64_t now_ms) {
  Tally t;
  auto a = at(client);
  for (int i = 0; i < n; ++i) {
    switch (rrl.check(a.sa(), now_ms)) {
      case Verdict::kSend:
        ++t.sent;
        break;
      case Verdict::kDrop:
        ++t.dropped;
        break;
      case Verdict::kSlip:
        ++t.slipped;
        break;
    }
  }
  return t;
}

}  // namespace

TEST_CASE("rrl: off sends everything") {
  RateLimiter rrl(0, 2);
  CHECK_FALSE(rrl.enabled());
  CHECK(ask(rrl, "192.0.2.1:53", 100000, 1000).sent == 100000);
}

TEST_CASE("rrl: a burst of one second's worth, then every second answer slips") {
  RateLimiter rrl(10, 2);
  Tally t = ask(rrl, "192.0.2.1:5000", 30, 1000);
  CHECK(t.sent == 10);
  CHECK(t.slipped == 10);
  CHECK(t.dropped == 10);
}

TEST_CASE("rrl: the bucket refills at the rate") {
  RateLimiter rrl(10, 0);
  CHECK(ask(rrl, "192.0.2.1:1", 10, 5000).sent == 10);
  CHECK(ask(rrl, "192.0.2.1:1", 1, 5000).sent == 0);
  CHECK(ask(rrl, "192.0.2.1:1", 5, 5099).sent == 0);  // one answer every 100 ms
  CHECK(ask(rrl, "192.0.2.1:1", 5, 5100).sent == 1);
  CHECK(ask(rrl, "192.0.2.1:1", 5, 5350).sent == 2);
  // Idle for a while: a full burst again, never more.
  CHECK(ask(rrl, "192.0.2.1:1", 50, 60000).sent == 10);
}

TEST_CASE("rrl: a steady client under the rate is never limited") {
  RateLimiter rrl(100, 2);
  int sent = 0;
  for (uint64_t ms = 0; ms < 10000; ms += 20) sent += ask(rrl, "192.0.2.1:1", 1, ms).sent;
  CHECK(sent == 500);
}

TEST_CASE("rrl: slip 0 drops, slip 1 truncates every answer over the rate") {
  RateLimiter drop(5, 0), slip(5, 1);
  Tally d = ask(drop, "192.0.2.1:1", 20, 100), s = ask(slip, "192.0.2.1:1", 20, 100);
  CHECK((d.sent == 5 && d.dropped == 15 && d.slipped == 0));
  CHECK((s.sent == 5 && s.dropped == 0 && s.slipped == 15));
}

TEST_CASE("rrl: clients are counted by /24 and /56") {
  RateLimiter rrl(5, 0);
  CHECK(ask(rrl, "192.0.2.1:1", 5, 100).sent == 5);
  CHECK(ask(rrl, "192.0.2.200:9", 5, 100).sent == 0);  // the same /24
  CHECK(ask(rrl, "192.0.3.1:1", 5, 100).sent == 5);
  CHECK(ask(rrl, "[2001:db8:0:ff::1]:1", 5, 100).sent == 5);
  CHECK(ask(rrl, "[2001:db8:0:ff:ffff::2]:1", 5, 100).sent == 0);  // the same /56
  CHECK(ask(rrl, "[2001:db8:0:100::1]:1", 5, 100).sent == 5);
  // An IPv4 network and an IPv6 one with the same leading bits are not the same client.
  CHECK(ask(rrl, "[c000:200::1]:1", 5, 100).sent == 5);
}

TEST_CASE("rrl: many networks fit in a bounded table and stay limited") {
  RateLimiter rrl(3, 0);
  // 2000 networks each take their burst; within the second, only the few that lost their entry
  // to a network hashed to the same full set of ways get another answer.
  auto client = [](int n) {
    return "10." + std::to_string(n / 256) + "." + std::to_string(n % 256) + ".1:1";
  };
  int sent = 0, again = 0;
  for (int n = 0; n < 2000; ++n) sent += ask(rrl, client(n), 5, 100).sent;
  for (int n = 0; n < 2000; ++n) again += ask(rrl, client(n), 1, 200).sent;
  CHECK(sent == 3 * 2000);
  CHECK(again <= 20);
}

TEST_CASE("tcp limits: a total and a per-address cap") {
  ConnectionLimits limits(5, 2);
  auto a = ClientAddress::of(at("192.0.2.1:1000").sa());
  auto a_other_port = ClientAddress::of(at("192.0.2.1:2000").sa());
  auto b = ClientAddress::of(at("192.0.2.2:1000").sa());
  auto c = ClientAddress::of(at("[2001:db8::1]:1000").sa());
  CHECK(a == a_other_port);
  CHECK(limits.admit(a) == ConnectionLimits::Admit::kOk);
  CHECK(limits.admit(a_other_port) == ConnectionLimits::Admit::kOk);
  CHECK(limits.admit(a) == ConnectionLimits::Admit::kOverClient);
  CHECK(limits.admit(b) == ConnectionLimits::Admit::kOk);
  CHECK(limits.admit(b) == ConnectionLimits::Admit::kOk);
  CHECK(limits.admit(c) == ConnectionLimits::Admit::kOk);
  CHECK(limits.open() == 5);
  CHECK(limits.admit(ClientAddress::of(at("[2001:db8::2]:1").sa())) ==
        ConnectionLimits::Admit::kOverTotal);
  limits.release(a);
  CHECK(limits.open() == 4);
  CHECK(limits.admit(a) == ConnectionLimits::Admit::kOk);
  CHECK(limits.refused_over_client() == 1);
  CHECK(limits.refused_over_total() == 1);
}
