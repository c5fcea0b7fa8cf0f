// Per-client-network response rate limiting with a fixed-size table of token buckets.
#include "core/rate_limit.hpp"

#include <netinet/in.h>

#include "upstream/random.hpp"

namespace readyns::core {
namespace {

constexpr uint64_t kSecondUs = 1000000;
constexpr size_t kEntries = 16384;  // 384 KiB per worker; more active networks share by eviction
constexpr uint64_t kTagV4 = uint64_t(1) << 62, kTagV6 = uint64_t(2) << 62;

// The client's network as one number: /24 of an IPv4 address, /56 of an IPv6 one.
uint64_t network_of(const sockaddr* client) {
  if (client->sa_family == AF_INET6) {
    const uint8_t* a = reinterpret_cast<const sockaddr_in6*>(client)->sin6_addr.s6_addr;
    uint64_t prefix = 0;
    for (int i = 0; i < 7; ++i) prefix = prefix << 8 | a[i];
    return kTagV6 | prefix;
  }
  const auto* a = reinterpret_cast<const uint8_t*>(
      &reinterpret_cast<const sockaddr_in*>(client)->sin_addr.s_addr);
  return kTagV4 | uint64_t(a[0]) << 16 | uint64_t(a[1]) << 8 | a[2];
}

// splitmix64's finaliser: every bit of the network moves the slot.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

RateLimiter::RateLimiter(uint32_t rate, uint32_t slip)
    : interval_us_(rate ? kSecondUs / rate : 0),
      slip_(slip),
      seed_(uint64_t(upstream::random32()) << 32 | upstream::random32()) {
  if (rate) table_.resize(kEntries);
}

RateLimiter::Verdict RateLimiter::check(const sockaddr* client, uint64_t now_ms) {
  if (!enabled()) return Verdict::kSend;
  uint64_t network = network_of(client);
  uint64_t now_us = now_ms * 1000;
  Entry* set = &table_[(mix(network ^ seed_) % (kEntries / kWays)) * kWays];
  Entry* e = nullptr;
  Entry* reusable = &set[0];  // the entry closest to a full burst, if the network has none
  for (size_t i = 0; i < kWays && !e; ++i) {
    if (set[i].network == network) e = &set[i];
    if (set[i].due_us < reusable->due_us) reusable = &set[i];  // a free entry's is 0
  }
  if (!e) {
    e = reusable;
    *e = Entry{.network = network, .due_us = now_us, .over = 0};
  }
  uint64_t due = e->due_us > now_us ? e->due_us : now_us;
  if (due + interval_us_ - now_us <= kSecondUs) {
    e->due_us = due + interval_us_;
    return Verdict::kSend;
  }
  ++e->over;
  return slip_ && e->over % slip_ == 0 ? Verdict::kSlip : Verdict::kDrop;
}

}  // namespace readyns::core
