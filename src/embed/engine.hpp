// The embedded resolver's machinery on one libuv loop.
//
// A worker with its cache, transport and forwarder, optionally its listeners, the EndpointSlice
// table and watcher, and the endpoint lookups and watches of readyns::Resolver. Everything here
// runs on the loop's thread except post(), request_shutdown() and table_endpoints().
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache.hpp"
#include "core/mesh.hpp"
#include "core/parts.hpp"
#include "core/worker.hpp"
#include "embed/calls.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/watcher.hpp"
#include "net/uv_transport.hpp"
#include "readyns/options.hpp"
#include "readyns/resolver.hpp"
#include "upstream/forwarder.hpp"

namespace readyns::embed {

struct Prepared;

class Engine {
 public:
  // Validates `options` and binds the listeners before anything is put on `loop`, so a throw
  // leaves the loop untouched. From the loop's thread.
  Engine(uv_loop_t* loop, const Options& options, ClosedFlag closed);
  // Only once shutdown()'s on_closed has run, or the loop has run out of handles.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Any thread: runs `task` on the loop soon; false once the engine is closing (dropped).
  bool post(std::function<void()> task);
  // Any thread: shutdown() on the loop, soon.
  void request_shutdown();
  // Cancels everything and closes every handle; `on_closed` runs from a close callback once the
  // last one is closed (the engine may be deleted there). Loop thread; once.
  void shutdown(std::function<void()> on_closed);

  // Loop thread: the public calls, posted.
  void resolve(std::shared_ptr<Call<Answer>> call, std::vector<uint8_t> query);
  void endpoints(std::shared_ptr<Call<Endpoints>> call, std::string service, std::string ns,
                 std::string port);
  void watch(std::shared_ptr<Subscription::State> state, std::string service, std::string ns,
             std::string port);

  // Any thread: the endpoints from the table (kNoTable, kNotSynced, kInvalidArgument).
  Result<Endpoints> table_endpoints(const std::string& service, const std::string& ns,
                                    const std::string& port) const;
  bool watching_kubernetes() const { return watcher_ != nullptr; }

  // Loop thread: a query for internal use (endpoint lookups), dropped when closing.
  void query(const std::string& name, uint16_t type, std::function<void(Result<Answer>)> done);
  const std::string& cluster_domain() const { return cluster_domain_; }
  uint64_t now_ms() const { return uv_now(loop_); }

 private:
  struct Watch;
  bool table_covers(const std::string& ns) const;
  void drain();
  void on_tick();
  void on_service_changed(const std::string& ns, const std::string& service);
  void refresh_from_table(Watch& w);
  void refresh_from_dns(const std::shared_ptr<Watch>& w);
  void handle_closed();

  uv_loop_t* loop_;
  ClosedFlag closed_;
  std::string cluster_domain_;
  std::vector<std::string> kube_namespaces_;  // empty: all

  std::unique_ptr<cache::Cache> cache_;
  core::Mesh mesh_;
  upstream::ServerPool servers_;
  std::unique_ptr<k8s::EndpointTable> table_;
  std::unique_ptr<core::TableAnswerer> local_;
  std::unique_ptr<net::ConnectionLimits> connections_;  // outlives the worker's listeners
  std::unique_ptr<net::UvTransport> transport_;
  std::unique_ptr<core::Worker> worker_;
  std::unique_ptr<k8s::Watcher> watcher_;

  std::mutex tasks_mutex_;
  std::vector<std::function<void()>> tasks_;
  bool accepting_ = true;        // under tasks_mutex_
  bool shutdown_asked_ = false;  // likewise
  uv_async_t* tasks_async_;
  uv_timer_t* tick_;  // DNS watches' refreshes; closed last, its close callback ends shutdown

  std::vector<std::shared_ptr<Watch>> watches_;
  bool closing_ = false;
  int open_handles_ = 0;
  std::function<void()> on_closed_;
};

}  // namespace readyns::embed
