// Response rate limiting (as BIND's RRL, per client only).
//
// Each client network (/24 for IPv4, /56 for IPv6) may get `rate` UDP answers a second, in bursts
// of up to a second's worth. Over that, one answer in `slip` goes out empty with TC=1, so a real
// client retries over TCP while a spoofed victim of a reflection attack gets little; the others are
// dropped.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace readyns::core {

class RateLimiter {
 public:
  enum class Verdict : uint8_t { kSend, kDrop, kSlip };

  // rate 0: every answer is sent, and no table is allocated.
  RateLimiter(uint32_t rate, uint32_t slip);

  bool enabled() const { return interval_us_ != 0; }
  // One answer to `client` at `now_ms` (a monotonic clock): whether it may go out.
  Verdict check(const sockaddr* client, uint64_t now_ms);

 private:
  // A generic cell rate algorithm bucket: the client's "theoretical arrival time". An entry
  // whose time has passed holds a full burst, the same as no entry at all, so it can be reused.
  struct Entry {
    uint64_t network = 0;  // the family's tag and the prefix; 0: free
    uint64_t due_us = 0;
    uint32_t over = 0;  // answers refused since the entry was made, for the slip
  };
  static constexpr size_t kWays = 4;  // entries a network may land in: few probes, few evictions

  uint64_t interval_us_ = 0;  // one answer's share of a second
  uint32_t slip_;
  uint64_t seed_;             // per process: collisions cannot be aimed at from outside
  std::vector<Entry> table_;  // fixed size, allocated once: no allocation per answer
};

}  // namespace readyns::core
