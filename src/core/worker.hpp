// A worker: one libuv loop answering queries from its listeners through the shared cache, the
// local answerer (Kubernetes endpoints) and its forwarder, coalescing identical misses.
#pragma once

#include <uv.h>

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache.hpp"
#include "core/counters.hpp"
#include "net/listeners.hpp"
#include "upstream/forwarder.hpp"
#include "wire/answer.hpp"
#include "wire/message.hpp"

namespace readyns::core {

// Answers names it owns before the cache is asked (the Kubernetes endpoint table).
class LocalAnswerer {
 public:
  virtual ~LocalAnswerer() = default;
  // Writes the answer for `q` into `out`; returns its length, or 0 if the name is not ours.
  virtual size_t answer(const wire::Query& q, std::span<uint8_t> out, size_t limit) const = 0;
};

struct WorkerSettings {
  wire::TtlPolicy ttl;
  upstream::ForwarderSettings forwarder;
  std::vector<upstream::ZoneServers> zones;
  size_t max_in_flight = 10000;        // distinct misses upstream at once; beyond: SERVFAIL
  size_t max_waiters_per_miss = 1000;  // clients coalesced onto one miss
};

class Worker final : public net::QueryHandler {
 public:
  Worker(uv_loop_t* loop, WorkerSettings settings, cache::Cache& cache,
         upstream::Transport& transport, const LocalAnswerer* local);
  ~Worker();

  // Serves queries arriving on these bound sockets.
  void add_listeners(const std::vector<int>& udp_fds, const std::vector<int>& tcp_fds,
                     net::TcpSettings tcp);
  // Stops accepting queries; answers to queries in flight still go out.
  void close_listeners();
  size_t in_flight() const { return in_flight_.size(); }
  const Counters& counters() const { return counters_; }
  const upstream::Forwarder& forwarder() const { return forwarder_; }

  void on_query(std::span<const uint8_t> msg, const net::ReplyTo& reply_to) override;

 private:
  struct Waiter;
  struct Miss;
  void respond(const net::ReplyTo& to, std::span<const uint8_t> answer);
  void respond_empty(const wire::Query& q, const net::ReplyTo& to, uint16_t rcode);
  void complete(Miss& miss, upstream::Resolution::Result result);
  uint32_t now_seconds() const { return uint32_t(transport_.now_ms() / 1000); }

  uv_loop_t* loop_;
  WorkerSettings settings_;
  cache::Cache& cache_;
  upstream::Transport& transport_;
  upstream::Forwarder forwarder_;
  const LocalAnswerer* local_;
  std::vector<std::unique_ptr<net::UdpListener>> udp_;
  std::vector<std::unique_ptr<net::TcpListener>> tcp_;
  std::unordered_map<std::string, Miss*> in_flight_;  // the mesh: one upstream query per key
  std::vector<uint8_t> out_;                          // answers are rendered here
  Counters counters_;
};

}  // namespace readyns::core
