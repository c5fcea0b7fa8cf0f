// Per-worker counters: written by one worker thread only, read by whoever scrapes them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace readyns::core {

// A counter only its worker writes: relaxed load+store, no locked instruction on the hot path.
class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

struct Counters {
  Counter udp_queries, stream_queries;  // stream: TCP, or callers in the process
  std::array<Counter, 16> responses_by_rcode;
  Counter cache_hits, cache_misses;
  Counter coalesced;          // misses that joined a query already in flight
  Counter upstream_queries;   // resolutions started
  Counter upstream_failures;  // resolutions that ended in SERVFAIL
  Counter dropped;            // queries dropped: QR set, too short, over a limit
  Counter stale_answers;      // RFC 8767 answers served from expired entries
  Counter prefetches;         // refreshes started before expiry
  Counter rrl_dropped;        // UDP answers over the client's rate limit, not sent
  Counter rrl_slipped;        // ... sent empty with TC=1 instead
};

}  // namespace readyns::core
