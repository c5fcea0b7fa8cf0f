// readyns inside your program: the DNS cache and forwarder, and a Service's ready endpoints.
//
// The endpoints come with change notifications; all of it runs on your libuv loop or on a thread
// readyns owns.
//
//   readyns::Options opts{.listen = {}, .upstreams = {"10.96.0.10:53"}};  // no DNS listeners
//   readyns::Resolver resolver(loop, opts);  // your loop; or Resolver(opts): its own thread
//   readyns::Query q = resolver.resolve("example.org", readyns::kTypeA, [](auto result) {
//     if (!result) return log(result.error().message);
//     for (const readyns::Record& r : result->records) use(r.data);  // "192.0.2.1"
//   });
//   readyns::Subscription s = resolver.watch_endpoints("web", "shop", "http", [](auto result) {
//     if (result) balancer.set(*result);  // every change, and once with the first set
//   });
//   // Destroying `q` or `s` cancels it: its callback is not called any more.
//
// Threads. On your loop, call everything from the loop's thread; callbacks run from uv_run() on
// it, never from inside the call that asked. On its own thread, every call is safe from any
// thread (marshalled to the loop with uv_async) and callbacks run on the readyns thread.
// Destroying a Query or Subscription from another thread waits for a callback of it that is
// running, so do not hold a lock your callback takes while you do. Callbacks must not throw.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "readyns/export.h"
#include "readyns/options.hpp"

// libuv's loop, opaque here: include <uv.h> to make one.
typedef struct uv_loop_s uv_loop_t;

namespace readyns {

// The same numbers as READYNS_E* in readyns.h.
enum class Errc : int {
  kOk = 0,
  kInvalidArgument = 1,  // a bad name, type, Service or namespace
  kUpstream = 2,         // the resolution failed (SERVFAIL: no upstream answered in time)
  kNotSynced = 3,        // the EndpointSlice table has not completed its first list yet
  kNoTable = 4,          // no EndpointSlice watcher covers it: use the callback form
  kBadAnswer = 5,        // an answer that could not be read
  kClosed = 6,           // the resolver is shutting down
};

// A short description of `code`, as readyns_strerror() gives it.
READYNS_API const char* describe(Errc code) noexcept;

struct Error {
  Errc code = Errc::kOk;
  std::string message;
};

// A value or an Error. value() and operator* require ok().
template <class T>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The error; Errc::kOk with an empty message when ok().
  const Error& error() const noexcept {
    static const Error none{};
    return ok() ? none : *std::get_if<1>(&v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Query types; any other number may be asked too.
inline constexpr uint16_t kTypeA = 1, kTypeNs = 2, kTypeCname = 5, kTypeSoa = 6, kTypePtr = 12,
                          kTypeMx = 15, kTypeTxt = 16, kTypeAaaa = 28, kTypeSrv = 33;

struct Record {
  std::string name;  // owner, in presentation form with the final dot: "www.example.org."
  uint16_t type = 0;
  uint32_t ttl = 0;
  // The address for A and AAAA ("192.0.2.1", "2001:db8::1"); otherwise the record data in
  // presentation form ("0 25 8080 web-0.web.shop.svc.cluster.local." for SRV).
  std::string data;
};

struct Answer {
  int rcode = 0;                   // 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...
  std::vector<Record> records;     // the answer section
  std::vector<Record> additional;  // the additional section (SRV targets' addresses)
};

struct Endpoint {
  std::string address;   // "10.244.1.7" or "fd00::7"
  uint16_t port = 0;     // 0 when the Service lists no port
  std::string hostname;  // the endpoint's hostname (StatefulSet pods); empty if none
  std::string zone;      // topology zone from the EndpointSlice; empty if none or from DNS
  bool operator==(const Endpoint&) const = default;
};

using Endpoints = std::vector<Endpoint>;

// A call in progress. Destroying it (or cancel()) cancels it: once that returns, its callback is
// not called. Moving it moves the call; a default-constructed Query holds nothing.
class READYNS_API Query {
 public:
  Query() noexcept;
  ~Query();
  Query(Query&& other) noexcept;
  Query& operator=(Query&& other) noexcept;
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  void cancel();
  // Lets the call go on without a handle: its callback runs (unless the resolver closes first),
  // and it can no longer be cancelled. The Query is empty afterwards.
  void detach() noexcept;
  // True until the callback has run or the call was cancelled.
  bool pending() const;

  struct State;  // the library's

 private:
  friend class Resolver;
  explicit Query(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

// A watch on a Service's endpoints; destroying it (or cancel()) ends it as for Query.
class READYNS_API Subscription {
 public:
  Subscription() noexcept;
  ~Subscription();
  Subscription(Subscription&& other) noexcept;
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  void cancel();
  bool active() const;

  struct State;  // the library's

 private:
  friend class Resolver;
  explicit Subscription(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

class READYNS_API Resolver {
 public:
  using ResolveCallback = std::function<void(Result<Answer>)>;
  using EndpointsCallback = std::function<void(Result<Endpoints>)>;

  // On the caller's loop, from its thread. Keeps the loop alive while it exists; after
  // destroying it, keep running the loop until its handles have closed (uv_run() returning, or
  // uv_loop_close() succeeding, says so).
  //
  // Options: `listen` non-empty also serves DNS there (UDP and TCP), on the same loop; upstreams,
  // forward zones, cache and TTL settings, timeouts and the kube settings apply as for the
  // daemon (kube "auto" watches EndpointSlices when an API server is found); log_level sets
  // spdlog's level. `threads`, `health`, `metrics` and the query log are the daemon's only.
  // Throws std::invalid_argument naming a bad option, std::runtime_error when a listen address
  // cannot be bound or kube "on" finds no API server.
  Resolver(uv_loop_t* loop, const Options& options);
  // On a loop thread of its own, started here and joined by the destructor.
  explicit Resolver(const Options& options);
  // Cancels every query and subscription (their callbacks are not called), closes the listeners.
  // From inside one of its own callbacks it finishes closing after the callback returns.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves `name` (presentation form, final dot optional) through the cache and forwarder, or
  // the EndpointSlice table for headless Services. Every DNS answer is a result, whatever its
  // rcode (a failed resolution is rcode 2, SERVFAIL, after Options::resolve_timeout_ms); errors
  // are kInvalidArgument and kBadAnswer.
  Query resolve(const std::string& name, uint16_t type, ResolveCallback callback);

  // The endpoints of Service `service` in `namespace_name`, for its port named `port_name`
  // (empty: one entry per address and every port), from the EndpointSlice table: the ready
  // ones, or while none is ready those still serving while terminating, as DNS answers them.
  // kNoTable when no watcher covers the namespace, kNotSynced before its first list.
  Result<Endpoints> endpoints(const std::string& service, const std::string& namespace_name,
                              const std::string& port_name) const;
  // The same from the table when it is synced, otherwise from DNS: SRV for
  // _port._tcp (then _udp).service.namespace.svc.<cluster domain> (the Service name for an empty
  // port), and the targets' A/AAAA records. DNS gives every endpoint of a headless Service, but
  // only the Service's virtual IP for others. An unknown Service is an empty list.
  Query endpoints(const std::string& service, const std::string& namespace_name,
                  const std::string& port_name, EndpointsCallback callback);
  // Calls back with the endpoint set, then on every change of it. From the table when the
  // watcher covers the namespace (the first call once the table has synced); otherwise by
  // resolving again as the answers' TTLs run out (at least every second, at most every 30 s).
  // Errors are reported when they start; the next good set follows when it comes.
  Subscription watch_endpoints(const std::string& service, const std::string& namespace_name,
                               const std::string& port_name, EndpointsCallback callback);

  // True when an EndpointSlice watcher runs (kube "on", or "auto" and an API server was found).
  bool watching_kubernetes() const noexcept;

  struct Impl;  // the library's

 private:
  Impl* impl_;
};

}  // namespace readyns
