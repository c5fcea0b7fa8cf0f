// readyns::Resolver and its handles over an Engine, and how they are taken down.
//
// The Engine runs on the caller's loop or on a loop thread of the resolver's own; the teardown of
// each is here too.
#include "readyns/resolver.hpp"

#include <spdlog/spdlog.h>
#include <uv.h>

#include <memory>
#include <thread>

#include "embed/calls.hpp"
#include "embed/dns.hpp"
#include "embed/engine.hpp"

namespace readyns {

const char* describe(Errc code) noexcept {
  switch (code) {
    case Errc::kOk:
      return "success";
    case Errc::kInvalidArgument:
      return "invalid argument";
    case Errc::kUpstream:
      return "the resolution failed (SERVFAIL)";
    case Errc::kNotSynced:
      return "the EndpointSlice table is not synced yet";
    case Errc::kNoTable:
      return "no EndpointSlice watcher covers it";
    case Errc::kBadAnswer:
      return "an answer could not be read";
    case Errc::kClosed:
      return "the resolver is closing";
  }
  return "unknown error";
}

Query::Query() noexcept = default;
Query::Query(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Query::~Query() {
  cancel();
}
Query::Query(Query&& other) noexcept = default;
Query& Query::operator=(Query&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}
void Query::cancel() {
  if (state_) state_->cancel();
}
void Query::detach() noexcept {
  state_.reset();
}
bool Query::pending() const {
  return state_ && state_->pending();
}

Subscription::Subscription() noexcept = default;
Subscription::Subscription(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Subscription::~Subscription() {
  cancel();
}
Subscription::Subscription(Subscription&& other) noexcept = default;
Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}
void Subscription::cancel() {
  if (state_) state_->cancel();
}
bool Subscription::active() const {
  return state_ && state_->active();
}

// A loop and its thread, when the resolver has its own. It outlives the Resolver when the
// resolver is destroyed from its own thread (in a callback): the thread then frees it.
struct OwnLoop {
  uv_loop_t loop;
  std::unique_ptr<embed::Engine> engine;
  std::thread thread;
  bool delete_self = false;  // written and read on the loop thread only

  static void run(OwnLoop* self) {
    uv_run(&self->loop, UV_RUN_DEFAULT);  // until shutdown() has closed every handle
    self->engine.reset();
    if (int rc = uv_loop_close(&self->loop); rc != 0) {
      spdlog::error("readyns: the resolver's loop still has handles: {}", uv_strerror(rc));
    }
    if (self->delete_self) delete self;
  }
};

struct Resolver::Impl {
  embed::ClosedFlag closed = std::make_shared<std::atomic<bool>>(false);
  embed::Engine* engine = nullptr;  // on the caller's loop: deletes itself once closed
  OwnLoop* own = nullptr;
};

Resolver::Resolver(uv_loop_t* loop, const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->engine = new embed::Engine(loop, options, impl->closed);
  impl_ = impl.release();
}

Resolver::Resolver(const Options& options) {
  auto impl = std::make_unique<Impl>();
  auto own = std::make_unique<OwnLoop>();
  uv_loop_init(&own->loop);
  try {
    own->engine = std::make_unique<embed::Engine>(&own->loop, options, impl->closed);
  } catch (...) {
    uv_loop_close(&own->loop);  // the engine throws before it puts anything on the loop
    throw;
  }
  impl->engine = own->engine.get();
  own->thread = std::thread(&OwnLoop::run, own.get());
  impl->own = own.release();
  impl_ = impl.release();
}

Resolver::~Resolver() {
  Impl* impl = impl_;
  impl->closed->store(true, std::memory_order_release);  // no callback starts from now on
  if (!impl->own) {
    embed::Engine* engine = impl->engine;
    engine->shutdown([engine] { delete engine; });
  } else if (std::this_thread::get_id() == impl->own->thread.get_id()) {
    // Inside one of our callbacks: the thread cannot join itself, so it finishes on its own.
    impl->own->delete_self = true;
    impl->own->thread.detach();
    impl->engine->shutdown(nullptr);
  } else {
    impl->engine->request_shutdown();
    impl->own->thread.join();
    delete impl->own;
  }
  delete impl;
}

Query Resolver::resolve(const std::string& name, uint16_t type, ResolveCallback callback) {
  auto call = std::make_shared<embed::Call<Answer>>(std::move(callback), impl_->closed);
  std::vector<uint8_t> query = embed::build_query(name, type);
  embed::Engine* engine = impl_->engine;
  // Errors too go through the loop: a callback never runs inside the call that asked.
  if (query.empty()) {
    engine->post([call, name] {
      call->deliver(Error{Errc::kInvalidArgument, "bad domain name '" + name + "'"});
    });
  } else {
    engine->post([engine, call, query = std::move(query)]() mutable {
      engine->resolve(std::move(call), std::move(query));
    });
  }
  return Query(std::move(call));
}

Result<Endpoints> Resolver::endpoints(const std::string& service, const std::string& namespace_name,
                                      const std::string& port_name) const {
  return impl_->engine->table_endpoints(service, namespace_name, port_name);
}

Query Resolver::endpoints(const std::string& service, const std::string& namespace_name,
                          const std::string& port_name, EndpointsCallback callback) {
  auto call = std::make_shared<embed::Call<Endpoints>>(std::move(callback), impl_->closed);
  embed::Engine* engine = impl_->engine;
  engine->post([engine, call, service, namespace_name, port_name] {
    engine->endpoints(call, service, namespace_name, port_name);
  });
  return Query(std::move(call));
}

Subscription Resolver::watch_endpoints(const std::string& service,
                                       const std::string& namespace_name,
                                       const std::string& port_name, EndpointsCallback callback) {
  auto state = std::make_shared<Subscription::State>(std::move(callback), impl_->closed);
  embed::Engine* engine = impl_->engine;
  engine->post([engine, state, service, namespace_name, port_name] {
    engine->watch(state, service, namespace_name, port_name);
  });
  return Subscription(std::move(state));
}

bool Resolver::watching_kubernetes() const noexcept {
  return impl_->engine->watching_kubernetes();
}

}  // namespace readyns
