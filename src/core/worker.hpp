// A worker: one libuv loop answering queries from its listeners, coalescing identical misses.
//
// It answers through the shared cache, the local answerer (Kubernetes endpoints) and its forwarder.
#pragma once

#include <uv.h>

#include <array>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.hpp"
#include "core/counters.hpp"
#include "core/mesh.hpp"
#include "core/rate_limit.hpp"
#include "core/reusing_map.hpp"
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
  upstream::ServerPool* servers = nullptr;  // shared by all workers: one view of upstream health
  // Beyond these a query is shed (a stale answer if one is at hand, else REFUSED); hits go on.
  size_t max_in_flight = 10000;        // distinct misses upstream at once, per worker
  size_t max_waiters_per_miss = 1000;  // clients coalesced onto one miss
  // RFC 8767: with a stale entry in the cache, a client waits at most this long for upstream
  // before it gets the stale answer (TTL 30); 0 disables serving stale.
  uint32_t stale_answer_timeout_ms = 1800;
  // Unbound's prefetch: a hit in the last tenth of an entry's TTL refreshes it in the
  // background, at most this many refreshes in flight (so it cannot amplify load).
  size_t max_prefetches = 64;
  // One JSON line per query (client, name, type, how it was answered) for one query in N.
  bool query_log = false;
  uint32_t query_log_sample = 1;
  // Response rate limiting over UDP (core/rate_limit.hpp); rate 0 turns it off.
  uint32_t rrl_rate = 0;
  uint32_t rrl_slip = 2;
};

class Worker final : public net::QueryHandler, private Mesh::Member {
 public:
  Worker(uv_loop_t* loop, WorkerSettings settings, cache::Cache& cache, Mesh& mesh,
         upstream::Transport& transport, const LocalAnswerer* local);
  ~Worker();
  // Leaves the mesh and closes the worker's own handles; the loop must run afterwards.
  void close();

  // Serves queries arriving on these bound sockets; `limits` (shared with the other workers)
  // must outlive the listeners.
  void add_listeners(const std::vector<int>& udp_fds, const std::vector<int>& tcp_fds,
                     net::TcpSettings tcp, net::ConnectionLimits& limits);
  // Stops accepting queries; answers to queries in flight still go out.
  void close_listeners();
  size_t in_flight() const { return in_flight_.size(); }
  const Counters& counters() const { return counters_; }
  const upstream::Forwarder& forwarder() const { return *forwarder_; }
  // New upstreams, clamps and limits from a reload; misses in flight finish with the old ones.
  void reconfigure(WorkerSettings settings);

  void begin_batch() override;
  void end_batch() override;
  // Outside a batch (a caller in the process) a query is a batch of its own.
  void on_query(std::span<const uint8_t> msg, const net::ReplyTo& reply_to) override;

 private:
  struct Waiter;
  struct Miss;
  void handle_query(std::span<const uint8_t> msg, const net::ReplyTo& to);
  // Sends the answer to `q`, of `type` (admin::coredns::qtype_index) and read at `asked_ns`, and
  // counts and times it; over UDP, unless the client's rate limit drops it or slips it (TC=1).
  void respond(const wire::Query& q, const net::ReplyTo& to, std::span<const uint8_t> answer,
               size_t type, uint64_t asked_ns);
  void respond_empty(const wire::Query& q, uint64_t asked_ns, const net::ReplyTo& to,
                     uint16_t rcode);
  // Starts a miss for `key`, in flight as `flight_key` (leading it or following another worker's
  // flight).
  Miss* start_miss(const cache::Key& key, std::string_view flight_key);
  void complete(Miss& miss, upstream::Resolution::Result result);
  // Answers the waiters of `miss` from `answer` (null: the resolution failed), then recycles it.
  void answer_waiters(Miss& miss, const wire::PreparedAnswer* answer);
  // Answers `q` from the expired entry of `key` (RFC 8767); false if the cache has none.
  bool answer_stale(const cache::Key& key, const wire::Query& q, const net::ReplyTo& to,
                    uint64_t asked_ns);
  // Over a limit on misses: RFC 8767's expired answer if there is one, else REFUSED, so the
  // client moves to its next server at once instead of waiting.
  void shed(const wire::Query& q, const cache::Key& key, bool stale_at_hand, const net::ReplyTo& to,
            uint64_t asked_ns);
  void log_query(const wire::Query& q, const net::ReplyTo& to, const char* outcome);
  void post(std::string_view key, Outcome outcome) override;
  void drain_mailbox();
  void on_stale_tick();
  uint32_t now_seconds() const { return uint32_t(transport_.now_ms() / 1000); }

  uv_loop_t* loop_;
  WorkerSettings settings_;
  cache::Cache& cache_;
  Mesh& mesh_;
  upstream::Transport& transport_;
  std::unique_ptr<upstream::Forwarder> forwarder_;
  std::vector<std::unique_ptr<upstream::Forwarder>> retired_forwarders_;  // one per reload
  const LocalAnswerer* local_;
  RateLimiter rrl_;
  std::vector<std::unique_ptr<net::UdpListener>> udp_;
  std::vector<std::unique_ptr<net::TcpListener>> tcp_;
  // The mesh: one upstream query per key. Keys are views of the key each Miss holds.
  ReusingMap<std::string_view, Miss*> in_flight_;
  // Finished misses, kept for new ones along with their vectors' capacity.
  std::vector<std::unique_ptr<Miss>> spare_misses_;
  wire::PreparedAnswer prepared_;  // upstream answers are prepared here
  std::vector<uint8_t> out_;       // answers are rendered here
  size_t prefetches_ = 0;
  size_t stale_waiters_ = 0;
  uv_timer_t* stale_timer_;
  // Outcomes of flights other workers led, posted from their threads.
  std::mutex mailbox_mutex_;
  std::vector<std::pair<std::string, Outcome>> mailbox_;
  uv_async_t* mailbox_async_;
  bool closed_ = false;
  Counters counters_;
  // The batch being handled: when it was read, and how many of its queries of each type were
  // answered within it and are held for its sendmmsg (a bit per type in batch_types_). They are
  // timed when it ends, with one clock reading for all of them.
  bool in_batch_ = false;
  uint64_t batch_started_ns_ = 0;
  uint32_t batch_types_ = 0;
  std::array<uint32_t, Counters::kTypes> batch_answers_{};
  static_assert(Counters::kTypes <= 32);
};

}  // namespace readyns::core
