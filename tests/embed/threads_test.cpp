// readyns::Resolver on a loop thread of its own, called from many threads at once.
//
// Run under TSan too. Resolving, cancelling, endpoint calls, and teardown while queries are in
// flight, including from inside a callback on the readyns thread.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.hpp"
#include "readyns/resolver.hpp"
#include "responder.hpp"

namespace readyns {
namespace {

using testing::Responder;

Options options_for(const std::string& upstream) {
  Options o = testing::forwarding_options(upstream);
  o.resolve_timeout_ms = 1500;
  return o;
}

// Waits (with a deadline) until `done()` holds, polling: the callbacks come on another thread.
template <class F>
bool eventually(F done, int ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST_CASE("own thread: calls from several threads at once", "[embed][threads]") {
  Responder upstream(50);
  auto resolver = std::make_unique<Resolver>(options_for(upstream.address()));
  std::thread::id readyns_thread;
  std::mutex thread_mutex;
  std::atomic<int> answered{0}, wrong{0}, after_cancel{0};
  std::atomic<int> expected{0};
  constexpr int kThreads = 8, kPerThread = 150;

  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      std::mt19937 random{unsigned(t)};
      std::vector<Query> kept;
      for (int i = 0; i < kPerThread; ++i) {
        // Some names repeat (cache hits, coalescing), some are slow, a few are cancelled.
        std::string name = (i % 5 == 0 ? "slow" : "name") + std::to_string(random() % 40) + ".t" +
                           std::to_string(t % 2) + ".test";
        bool cancel = i % 7 == 3;
        auto cancelled = std::make_shared<std::atomic<bool>>(false);
        Query q = resolver->resolve(name, kTypeA, [&, cancelled](Result<Answer> r) {
          {
            std::lock_guard lock(thread_mutex);
            if (readyns_thread == std::thread::id()) readyns_thread = std::this_thread::get_id();
            if (readyns_thread != std::this_thread::get_id()) ++wrong;
          }
          if (cancelled->load()) ++after_cancel;
          if (!r.ok() || r->records.size() != 1) ++wrong;
          ++answered;
        });
        if (cancel) {
          q.cancel();
          cancelled->store(true);  // after cancel() returned: no callback may see it set
        } else {
          ++expected;
          kept.push_back(std::move(q));
        }
        if (i % 10 == 0) {
          // The synchronous endpoints() is safe from any thread too. (Catch2's CHECK is not.)
          if (resolver->endpoints("web", "shop", "http").error().code != Errc::kNoTable) ++wrong;
        }
      }
      for (const Query& q : kept) (void)q.pending();
      // Wait for this thread's answers before its handles go (which would cancel them).
      eventually([&] {
        for (const Query& q : kept) {
          if (q.pending()) return false;
        }
        return true;
      });
    });
  }
  for (std::thread& t : callers) t.join();
  // Every query not cancelled is answered; a cancelled one may have been before its cancel().
  REQUIRE(eventually([&] { return answered.load() >= expected.load(); }));
  CHECK(answered.load() <= kThreads * kPerThread);
  CHECK(wrong.load() == 0);
  CHECK(after_cancel.load() == 0);
  CHECK(readyns_thread != std::this_thread::get_id());
  resolver.reset();
}

TEST_CASE("own thread: teardown with queries in flight from other threads", "[embed][threads]") {
  Responder upstream(3000);
  auto resolver = std::make_unique<Resolver>(options_for(upstream.address()));
  std::atomic<int> calls{0};
  std::vector<Query> kept;
  std::mutex kept_mutex;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto payload = std::make_shared<std::string>(500, 'x');  // leaks would show under ASan
        Query q = resolver->resolve("slow" + std::to_string(t * 100 + i) + ".test", kTypeA,
                                    [&, payload](Result<Answer>) { ++calls; });
        std::lock_guard lock(kept_mutex);
        kept.push_back(std::move(q));
      }
      Subscription s = resolver->watch_endpoints("web", "shop", "", [](auto) {});
      (void)s;
    });
  }
  for (std::thread& t : callers) t.join();
  REQUIRE(eventually([&] { return upstream.queries() >= 150; }));
  resolver.reset();  // joins the readyns thread: nothing calls back after this
  CHECK(calls.load() == 0);
  for (const Query& q : kept) CHECK_FALSE(q.pending());
  // Handles outlive the resolver, and are destroyed from another thread than the one made them.
  std::thread([moved = std::move(kept)]() mutable { moved.clear(); }).join();
}

TEST_CASE("own thread: cancel from another thread waits for a running callback",
          "[embed][threads]") {
  Responder upstream;
  Resolver resolver(options_for(upstream.address()));
  std::mutex m;
  std::condition_variable cv;
  bool in_callback = false, release = false, finished = false;
  Query q = resolver.resolve("www.example.test", kTypeA, [&](Result<Answer>) {
    std::unique_lock lock(m);
    in_callback = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    finished = true;
  });
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return in_callback; }));
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::lock_guard lock(m);
    release = true;
    cv.notify_all();
  });
  q.cancel();  // blocks until the callback has returned
  {
    std::lock_guard lock(m);
    CHECK(finished);
  }
  releaser.join();
}

TEST_CASE("own thread: the resolver may be destroyed from inside its own callback",
          "[embed][threads][teardown]") {
  Responder upstream;
  auto* resolver = new Resolver(options_for(upstream.address()));
  std::atomic<bool> destroyed{false};
  std::atomic<int> other_calls{0};
  Query other = resolver->resolve("drop.example.test", kTypeA, [&](auto) { ++other_calls; });
  Query q = resolver->resolve("www.example.test", kTypeA, [&](Result<Answer>) {
    delete resolver;  // on the readyns thread: it finishes closing on its own
    destroyed = true;
  });
  REQUIRE(eventually([&] { return destroyed.load(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the thread frees itself
  CHECK(other_calls.load() == 0);
}

}  // namespace
}  // namespace readyns
