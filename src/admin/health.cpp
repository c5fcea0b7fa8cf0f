// Liveness and readiness verdicts.
#include "admin/health.hpp"

#include <chrono>
#include <string>

namespace readyns::admin {

Response liveness(const LivenessFacts& facts, const HealthSettings& settings) {
  std::string reasons;
  for (size_t i = 0; i < facts.heartbeat_age_ms.size(); ++i) {
    uint64_t age = facts.heartbeat_age_ms[i];
    if (age <= settings.max_heartbeat_age_ms) continue;
    reasons +=
        "worker " + std::to_string(i) + ": no heartbeat for " + std::to_string(age) + " ms\n";
  }
  if (reasons.empty()) return Response{.status = 200, .body = "ok\n"};
  return Response{.status = 503, .body = std::move(reasons)};
}

Response readiness(const ReadinessFacts& facts, const HealthSettings& settings) {
  std::string reasons;
  if (facts.draining) reasons += "shutting down\n";
  if (!facts.listeners_bound) reasons += "listeners not bound\n";
  uint64_t answer_age = facts.last_upstream_answer_age_ms;
  uint64_t failure_age = facts.last_upstream_failure_age_ms;
  // Failing: the latest news from upstreams is a failure, and no answer came for too long.
  bool failing = failure_age != kNever && failure_age < answer_age;
  if (settings.max_upstream_answer_age_ms > 0 && failing &&
      answer_age > settings.max_upstream_answer_age_ms) {
    reasons += answer_age == kNever
                   ? std::string("no upstream answer yet")
                   : "no upstream answer for " + std::to_string(answer_age) + " ms";
    if (failure_age > 0) reasons += ", last failure " + std::to_string(failure_age) + " ms ago";
    reasons += "\n";
  }
  if (facts.kube_required && !facts.kube_synced) reasons += "kubernetes watch not synced\n";
  if (reasons.empty()) return Response{.status = 200, .body = "ready\n"};
  return Response{.status = 503, .body = std::move(reasons)};
}

uint64_t monotonic_ms() {
  using namespace std::chrono;
  return uint64_t(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

}  // namespace readyns::admin
