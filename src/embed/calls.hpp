// The state behind the public Query and Subscription handles: a cancellable callback.
//
// Any thread may cancel the callback. It is called at most once (Query) or until cancelled
// (Subscription), never after cancel() has returned nor once the resolver is closing.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "readyns/resolver.hpp"

namespace readyns {

namespace embed {

// Set when the resolver starts closing; every call of that resolver shares it.
using ClosedFlag = std::shared_ptr<std::atomic<bool>>;

// User code must not unwind through libuv's C frames: a throwing callback is logged instead.
template <class F, class A>
void invoke_guarded(F& callback, A&& argument) noexcept {
  try {
    callback(std::forward<A>(argument));
  } catch (const std::exception& e) {
    spdlog::error("readyns: a callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("readyns: a callback threw");
  }
}

}  // namespace embed

// The recursive mutex is held while the callback runs, so that cancel() from another thread waits
// for it, while cancel() from inside it (the same thread) goes through.
struct Query::State {
  explicit State(embed::ClosedFlag closed) : closed_(std::move(closed)) {}
  virtual ~State() = default;
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_.store(true, std::memory_order_release);
    drop();
  }
  bool pending() const {
    return !cancelled_.load(std::memory_order_acquire) && !done_.load(std::memory_order_acquire) &&
           !closed_->load(std::memory_order_acquire);
  }
  // Whether work for it may still matter (a stale answer only costs the work).
  bool live() const { return pending(); }

 protected:
  virtual void drop() = 0;  // lets go of the callback and what it captured
  std::recursive_mutex mutex_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_{false};
  embed::ClosedFlag closed_;
};

namespace embed {

template <class T>
class Call final : public Query::State {
 public:
  Call(std::function<void(Result<T>)> callback, ClosedFlag closed)
      : State(std::move(closed)), callback_(std::move(callback)) {}

  // Runs the callback unless cancelled, already run or the resolver closing; true if it ran.
  bool deliver(Result<T> result) {
    std::lock_guard lock(mutex_);
    if (!pending()) return false;
    done_.store(true, std::memory_order_release);
    // Moved out first: the callback may cancel (destroy) its own handle while it runs.
    auto callback = std::move(callback_);
    callback_ = nullptr;
    if (callback) invoke_guarded(callback, std::move(result));
    return true;
  }

 private:
  void drop() override { callback_ = nullptr; }
  std::function<void(Result<T>)> callback_;
};

}  // namespace embed

struct Subscription::State {
  State(std::function<void(Result<Endpoints>)> callback, embed::ClosedFlag closed)
      : callback_(std::move(callback)), closed_(std::move(closed)) {}
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_.store(true, std::memory_order_release);
    if (!in_callback_) callback_ = nullptr;  // else once it returns
  }
  bool active() const {
    return !cancelled_.load(std::memory_order_acquire) && !closed_->load(std::memory_order_acquire);
  }
  bool deliver(Result<Endpoints> result) {
    std::lock_guard lock(mutex_);
    if (!active() || !callback_) return false;
    in_callback_ = true;
    embed::invoke_guarded(callback_, std::move(result));
    in_callback_ = false;
    if (cancelled_.load(std::memory_order_relaxed)) callback_ = nullptr;
    return true;
  }

 private:
  std::recursive_mutex mutex_;
  std::atomic<bool> cancelled_{false};
  bool in_callback_ = false;
  std::function<void(Result<Endpoints>)> callback_;
  embed::ClosedFlag closed_;
};

}  // namespace readyns
