// The EndpointSlice watcher: lists then watches EndpointSlices, feeding the endpoint table.
//
// It watches discovery.k8s.io/v1 EndpointSlices (all namespaces, or each configured one) over HTTPS
// on the caller's libuv loop.
//
//   k8s::Watcher watcher(loop, settings.watcher, table);
//   if (!watcher.start()) return fail();  // only with mode kOn and no API server in sight
//   ...
//   watcher.stop([&] { /* now it may be destroyed */ });
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <array>
#include <atomic>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "k8s/api_access.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/settings.hpp"

namespace readyns::k8s {

class CurlUv;

class Watcher {
 public:
  Watcher(uv_loop_t* loop, WatcherSettings settings, EndpointTable& table);
  // Once start() has run, stop() must have completed (its callback run) before destruction.
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Locates the API server (see locate_api) and starts listing. With mode kOff, or kAuto and no
  // API server found, it does nothing and returns true; false (logged) only under kOn.
  bool start();
  // Ends all transfers and timers; `on_closed` runs (maybe at once) when the loop holds no handle
  // of the watcher's any more.
  void stop(std::function<void()> on_closed);
  // Every namespace stream has completed its first list.
  bool synced() const;
  // Watch events received and applied, of one type; safe from any thread. What a reader sees
  // counted has been applied.
  uint64_t events(EventType type) const {
    return events_[size_t(type)].load(std::memory_order_acquire);
  }

 private:
  struct Stream;

  void begin_list(Stream& s);
  void begin_watch(Stream& s);
  void on_list_done(Stream& s, long status, CURLcode result);
  void on_watch_done(Stream& s, long status, CURLcode result);
  // Consumes the complete lines of a watch body; false to abort the transfer.
  bool on_watch_bytes(Stream& s, std::string_view bytes);
  bool apply_event(Stream& s, std::string_view line);
  void retry_later(Stream& s);
  CURL* new_request(Stream& s, const std::string& url, curl_slist*& headers, long timeout_ms);
  std::string collection_path(const Stream& s) const;
  void closed_one();

  uv_loop_t* loop_;
  const WatcherSettings settings_;
  EndpointTable& table_;
  std::optional<ApiAccess> api_;
  std::unique_ptr<CurlUv> curl_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::mt19937 random_;
  size_t open_handles_ = 0;
  std::function<void()> on_closed_;
  std::array<std::atomic<uint64_t>, std::size(kEventTypeNames)> events_{};
};

}  // namespace readyns::k8s
