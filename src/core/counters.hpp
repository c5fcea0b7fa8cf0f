// Per-worker counters: written by one worker thread only, read by whoever scrapes them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "admin/coredns_metrics.hpp"
#include "admin/metrics.hpp"

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
  // Queries as CoreDNS labels them: by transport (stream: TCP, or callers in the process), the
  // client's address family and the query type (admin::coredns::qtype_index).
  static constexpr size_t kTypes = admin::coredns::kQtypeLabels;
  static constexpr size_t request_index(bool stream, bool ipv6, size_t type) {
    return (size_t(stream) * 2 + size_t(ipv6)) * kTypes + type;
  }
  static constexpr size_t kRequestSeries = 2 * 2 * kTypes;
  std::array<Counter, kRequestSeries> requests;
  // Time from reading a query to handing its answer to the kernel, by query type.
  std::array<admin::Histogram, kTypes> request_duration;

  std::array<Counter, 16> responses_by_rcode;
  Counter cache_hits, cache_misses;
  Counter coalesced;          // misses that joined a query already in flight
  Counter upstream_queries;   // resolutions started
  Counter upstream_failures;  // resolutions that ended in SERVFAIL
  Counter dropped;            // queries dropped unanswered: QR set, too short
  Counter stale_answers;      // RFC 8767 answers served from expired entries
  Counter prefetches;         // refreshes started before expiry
  Counter rrl_dropped;        // UDP answers over the client's rate limit, not sent
  Counter rrl_slipped;        // ... sent empty with TC=1 instead
  Counter shed;               // misses over max_in_flight or max_waiters_per_miss: REFUSED
};

}  // namespace readyns::core
