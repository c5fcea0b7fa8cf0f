// /health and /ready verdicts for each combination of facts.
#include <catch2/catch.hpp>

#include <thread>

#include "admin/health.hpp"

namespace readyns::admin {
namespace {

ReadinessFacts all_good() {
  return ReadinessFacts{.listeners_bound = true,
                        .last_upstream_answer_age_ms = 1000,
                        .kube_required = true,
                        .kube_synced = true,
                        .draining = false};
}

TEST_CASE("ready when listeners are bound, an upstream answered lately and the watch synced") {
  Response r = readiness(all_good());
  CHECK(r.status == 200);
  CHECK(r.body == "ready\n");
}

TEST_CASE("each missing fact is a reason of its own") {
  ReadinessFacts f = all_good();
  f.listeners_bound = false;
  CHECK(readiness(f).status == 503);
  CHECK(readiness(f).body == "listeners not bound\n");

  f = all_good();
  f.last_upstream_answer_age_ms = kNever;
  CHECK(readiness(f).body == "no upstream answer yet\n");
  f.last_upstream_answer_age_ms = 30001;
  CHECK(readiness(f).body == "no upstream answer for 30001 ms\n");
  f.last_upstream_answer_age_ms = 30000;  // the limit itself is still fine
  CHECK(readiness(f).status == 200);

  f = all_good();
  f.kube_synced = false;
  CHECK(readiness(f).body == "kubernetes watch not synced\n");
  f.kube_required = false;  // --kube=off, or auto without an API server: not waited for
  CHECK(readiness(f).status == 200);

  f = all_good();
  f.draining = true;
  CHECK(readiness(f).body == "shutting down\n");

  Response none = readiness(ReadinessFacts{.kube_required = true});
  CHECK(none.status == 503);
  CHECK(none.body == "listeners not bound\nno upstream answer yet\nkubernetes watch not synced\n");
}

TEST_CASE("an old answer without a failure since is an idle instance, still ready") {
  ReadinessFacts f = all_good();
  f.last_upstream_answer_age_ms = 600000;
  f.last_upstream_failure_age_ms = kNever;  // nothing asked, nothing failed
  CHECK(readiness(f).status == 200);
  f.last_upstream_failure_age_ms = 700000;  // failed once, then answered, then quiet
  CHECK(readiness(f).status == 200);
  f.last_upstream_failure_age_ms = 100;  // failing now
  CHECK(readiness(f).status == 503);
  CHECK(readiness(f).body == "no upstream answer for 600000 ms, last failure 100 ms ago\n");

  f.last_upstream_answer_age_ms = kNever;  // just started, no traffic yet
  f.last_upstream_failure_age_ms = kNever;
  CHECK(readiness(f).status == 200);
  f.last_upstream_failure_age_ms = 5;  // the first queries time out
  CHECK(readiness(f).body == "no upstream answer yet, last failure 5 ms ago\n");
}

TEST_CASE("the upstream check can be turned off and its age set") {
  ReadinessFacts f = all_good();
  f.last_upstream_answer_age_ms = kNever;
  CHECK(readiness(f, HealthSettings{.max_upstream_answer_age_ms = 0}).status == 200);
  f.last_upstream_answer_age_ms = 5000;
  CHECK(readiness(f, HealthSettings{.max_upstream_answer_age_ms = 4000}).status == 503);
}

TEST_CASE("alive while every worker loop beats; a stuck one is named") {
  CHECK(liveness(LivenessFacts{}).status == 200);
  CHECK(liveness(LivenessFacts{.heartbeat_age_ms = {5, 10000}}).body == "ok\n");
  Response r = liveness(LivenessFacts{.heartbeat_age_ms = {5, 10001, 20, 60000}});
  CHECK(r.status == 503);
  CHECK(r.body == "worker 1: no heartbeat for 10001 ms\nworker 3: no heartbeat for 60000 ms\n");
  CHECK(liveness(LivenessFacts{.heartbeat_age_ms = {300}},
                 HealthSettings{.max_heartbeat_age_ms = 200})
            .status == 503);
}

TEST_CASE("a heartbeat's age counts from its last beat") {
  Heartbeat beat;
  beat.beat(1000);
  CHECK(beat.age_ms(1000) == 0);
  CHECK(beat.age_ms(1750) == 750);
  CHECK(beat.age_ms(900) == 0);  // a reader's clock a little behind: no wrap-around
  CHECK(age_ms(0, 5000) == kNever);
  CHECK(age_ms(4000, 5000) == 1000);
  CHECK(age_ms(6000, 5000) == 0);
  Heartbeat fresh;
  CHECK(fresh.age_ms() < 1000);
  uint64_t before = monotonic_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(monotonic_ms() - before >= 20);
}

}  // namespace
}  // namespace readyns::admin
