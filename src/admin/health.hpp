// /health and /ready verdicts from plain facts the server gathers.
//
// Pure functions, so every case is a unit test and the HTTP side stays a one-line route.
//
//   server.route("/ready", [&](const admin::Request&) { return admin::readiness(facts()); });
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "admin/http.hpp"

namespace readyns::admin {

inline constexpr uint64_t kNever = UINT64_MAX;  // an age for "has not happened yet"

struct HealthSettings {
  // A worker loop without a heartbeat for this long is stuck: /health fails and the kubelet
  // restarts the pod. Generous, since a restart costs every cached answer.
  uint64_t max_heartbeat_age_ms = 10000;
  // /ready fails when upstreams are failing and none answered for this long; 0: no such check.
  uint64_t max_upstream_answer_age_ms = 30000;
};

struct LivenessFacts {
  std::vector<uint64_t> heartbeat_age_ms = {};  // per worker loop
};

struct ReadinessFacts {
  bool listeners_bound = false;
  // Any upstream, any answer (probes too); kNever before the first.
  uint64_t last_upstream_answer_age_ms = kNever;
  // Any upstream attempt that failed (timeout, SERVFAIL, REFUSED, broken TCP); kNever if none
  // has. An old answer with no failure since only means no traffic, and an idle instance stays
  // ready. Left at 0 (a failure just now) the rule is simply "an upstream answered within N".
  uint64_t last_upstream_failure_age_ms = 0;
  bool kube_required = false;  // --kube=on, or auto with an API server found
  bool kube_synced = false;    // the watcher's first list is in the table
  bool draining = false;       // stopping: take this instance out of rotation
};

// 200 "ok" when every worker loop beat recently; else 503 naming the stuck workers.
Response liveness(const LivenessFacts& facts, const HealthSettings& settings = {});
// 200 "ready" or 503 with one reason per line.
Response readiness(const ReadinessFacts& facts, const HealthSettings& settings = {});

// Milliseconds on a clock every thread shares (CLOCK_MONOTONIC); uv_now is per loop and cached.
uint64_t monotonic_ms();

// Milliseconds from `then_ms` to `now_ms` (monotonic_ms() values); kNever for then_ms == 0,
// which timestamps use for "not yet". Saturates at 0 if another thread's clock read is ahead.
inline uint64_t age_ms(uint64_t then_ms, uint64_t now_ms) {
  if (then_ms == 0) return kNever;
  return now_ms > then_ms ? now_ms - then_ms : 0;
}

// A worker loop's sign of life: it beats from a timer, the admin thread reads the age.
class Heartbeat {
 public:
  Heartbeat() : last_ms_(monotonic_ms()) {}
  void beat(uint64_t now_ms = monotonic_ms()) { last_ms_.store(now_ms, std::memory_order_relaxed); }
  uint64_t age_ms(uint64_t now_ms = monotonic_ms()) const {
    uint64_t last = last_ms_.load(std::memory_order_relaxed);
    return now_ms > last ? now_ms - last : 0;
  }

 private:
  std::atomic<uint64_t> last_ms_;
};

}  // namespace readyns::admin
