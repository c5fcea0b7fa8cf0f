// The headless Services known from EndpointSlices, with their answers pre-rendered.
//
// Written by the watcher on its loop thread, read by query workers on theirs.
//
//   k8s::EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
//   table.set_on_change([&](std::span<const uint8_t> name) { cache.erase_subtree(name); });
//   if (size_t n = table.answer(query, out, query.udp_limit())) send(out.first(n));
//   else forward(query);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "k8s/render.hpp"
#include "k8s/rw_lock.hpp"
#include "k8s/settings.hpp"
#include "k8s/slice.hpp"
#include "wire/message.hpp"

namespace readyns::k8s {

class EndpointTable {
 public:
  explicit EndpointTable(TableSettings settings);
  EndpointTable(const EndpointTable&) = delete;
  EndpointTable& operator=(const EndpointTable&) = delete;

  // If `q` asks for a name this table answers (synced, and at or beneath a headless Service it
  // knows), writes the answer to `out` (authoritative, AA=1, as CoreDNS's; when larger than
  // `limit`, the whole records that fit with TC=1, as CoreDNS truncates) and returns its length;
  // 0 means "not mine, forward it".
  size_t answer(const wire::Query& q, std::span<uint8_t> out, size_t limit) const;
  bool synced() const { return synced_.load(std::memory_order_acquire); }
  // Endpoints marked ready in the slices this table answers from; safe from any thread.
  uint64_t ready_endpoints() const { return ready_endpoints_.load(std::memory_order_relaxed); }

  // Called on the writer's thread, right after a Service's answers changed, with the Service's
  // lower-cased wire name, so cached answers at and beneath it can be dropped. Set it before the
  // watcher starts.
  void set_on_change(std::function<void(std::span<const uint8_t>)> cb);

  // The watcher's side; each call re-renders the Services it touches before it returns.
  // ADDED/MODIFIED replace what the slice held before (a slice that is not a headless Service's,
  // or has no IP addresses, only removes its earlier contents); DELETED removes it. Other events
  // carry no slice and change nothing here.
  void apply(WatchEvent event);
  // A (re)list: replaces every slice of `namespace_name` (empty: of all namespaces).
  void replace_all(std::string_view namespace_name, std::vector<Slice> slices);
  void mark_synced() {
    synced_.store(true, std::memory_order_release);
    if (on_endpoints_change_) on_endpoints_change_({}, {});
  }

  // The endpoints API (readyns::Resolver): every Service's endpoint set, headless or not, read by
  // callers rather than rendered into DNS answers.
  struct ServiceEndpoint {
    std::string address;  // as the API wrote it, lower-cased
    uint16_t port = 0;    // 0: the slice gives no port
    std::string hostname;
    std::string zone;
    bool operator==(const ServiceEndpoint&) const = default;
  };
  // Keeps every Service's slices for endpoints(), not only the headless ones DNS answers need
  // (the daemon does not, and pays nothing). Call before the watcher starts.
  void track_all_services() { track_all_ = true; }
  // The endpoints of a Service, selected as its DNS answers are (the ready ones; when none is,
  // those serving while terminating), one per address and port: `port_name` picks the port by
  // name (any case); empty means every port the Service lists. Slice order, then endpoint order;
  // empty when the Service is unknown or has none. Safe from any thread.
  std::vector<ServiceEndpoint> endpoints(std::string_view namespace_name, std::string_view service,
                                         std::string_view port_name) const;
  // Called on the writer's thread, after a Service's tracked slices changed (with its namespace
  // and name), and with two empty names whenever a complete list has synced it. It runs with the
  // writer's lock held: it may call endpoints() but not the writer's side. Set it before the
  // watcher starts.
  void set_on_endpoints_change(std::function<void(std::string_view, std::string_view)> cb) {
    on_endpoints_change_ = std::move(cb);
  }

 private:
  using SliceKey = std::pair<std::string, std::string>;    // namespace, slice name
  using ServiceKey = std::pair<std::string, std::string>;  // namespace, Service name
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // answer() without the AA flag, which it sets on whatever this writes.
  size_t build_answer(const wire::Query& q, std::span<uint8_t> out, size_t limit) const;
  static bool serves(const Slice& slice);
  // Drops or stores a slice, noting the Services it belonged to before and after.
  void put(const SliceKey& key, Slice* slice, std::vector<ServiceKey>& touched);
  // Re-renders the touched Services, publishes them and reports those that changed.
  void publish(std::vector<ServiceKey>& touched);
  size_t negative(const wire::Query& q, uint8_t rcode, bool soa_answer, std::span<uint8_t> out,
                  size_t limit) const;

  // Notes a slice for endpoints() (nullptr: its removal) and the Service whose set changed.
  void track(const SliceKey& key, const Slice* slice, std::vector<ServiceKey>& changed);
  void report_endpoint_changes(std::vector<ServiceKey>& changed);

  const TableSettings settings_;
  std::vector<uint8_t> zone_suffix_;  // "svc.<domain>" in wire form, lower-cased
  std::vector<uint8_t> soa_;          // the SOA record CoreDNS puts in negative answers
  size_t soa_serial_offset_ = 0;
  std::atomic<uint32_t> serial_;  // CoreDNS's: the Unix time of the last change
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> ready_endpoints_{0};  // in slices_

  // Writer side, serialised by write_mutex_.
  std::mutex write_mutex_;
  std::map<SliceKey, Slice> slices_;
  std::map<ServiceKey, std::vector<std::string>> slice_names_;  // each Service's slices, sorted
  std::function<void(std::span<const uint8_t>)> on_change_;

  // Reader side: what answer() looks at, by lower-cased wire Service name.
  mutable WriterFirstLock read_mutex_;
  std::unordered_map<std::string, std::unique_ptr<const ServiceAnswers>, StringHash,
                     std::equal_to<>>
      services_;

  // The endpoints API's side: every Service's slices by slice name (so in name order), written
  // under write_mutex_ and tracked_mutex_, read under tracked_mutex_.
  bool track_all_ = false;
  mutable std::mutex tracked_mutex_;
  std::map<ServiceKey, std::map<std::string, Slice>> tracked_;
  std::map<SliceKey, std::string> tracked_service_;  // slice -> its Service's name
  std::function<void(std::string_view, std::string_view)> on_endpoints_change_;
};

}  // namespace readyns::k8s
