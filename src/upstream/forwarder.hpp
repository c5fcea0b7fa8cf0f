// The forwarder: sends a cache miss to the upstreams of its zone, with retries and failover.
//
// The longest zone suffix wins. It retries and fails over within a deadline, retries truncated
// answers over TCP, and keeps each server's smoothed RTT and health. It owns no sockets: every
// exchange goes through a Transport.
//
//   upstream::Forwarder fwd(settings, {{.zone = ".", .servers = {addr}}}, transport);
//   struct Miss : upstream::Resolution { void on_resolved(Result r) override { ... } } miss;
//   fwd.resolve(key.question, key.len, key.do_bit, miss);  // on_resolved() called once, later
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "admin/metrics.hpp"
#include "net/address.hpp"
#include "upstream/transport.hpp"

namespace readyns::upstream {

struct ZoneServers {
  std::string zone;  // presentation form, "." for the default
  std::vector<net::Address> servers;
};

struct ForwarderSettings {
  uint32_t attempt_timeout_ms = 1000;  // ceiling for one exchange; lower once the RTT is known
  uint32_t resolve_timeout_ms = 4000;  // the whole resolution, then give up (client: SERVFAIL)
  bool randomize_case = false;         // 0x20 (draft-vixie-dnsext-dns0x20)
};

// What is known of one upstream server, shared by every worker's forwarder (so one worker's
// timeout spares the others the wait) and kept across reloads. Updated with relaxed atomics:
// a lost RTT sample or counter race only blurs a statistic.
struct ServerState {
  explicit ServerState(const net::Address& a) : address(a) {}
  const net::Address address;
  std::atomic<uint32_t> srtt_us{0};  // smoothed RTT; 0 until the first answer
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint64_t> avoid_until_ms{0};  // after failures, other servers go first until then
  std::atomic<bool> probing{false};  // a probe is out: it must answer before traffic comes back
  std::atomic<uint64_t> queries{0}, failures{0}, probe_failures{0};
  std::atomic<uint64_t> last_answer_ms{0}, last_failure_ms{0};  // monotonic; for /ready
  // How long each exchange that got a reply took, by the reply's RCODE (their counts are the
  // replies by RCODE). Any worker's forwarder observes: on the miss path only.
  std::array<admin::Histogram, 16> reply_durations;

  bool avoided(uint64_t now) const {
    return consecutive_failures.load(std::memory_order_relaxed) > 0 &&
           (probing.load(std::memory_order_relaxed) ||
            avoid_until_ms.load(std::memory_order_relaxed) > now);
  }
};

// Every upstream server's state, by address.
class ServerPool {
 public:
  ServerState* get(const net::Address& address);
  std::vector<ServerState*> all() const;

  // Resolutions that found every server of their zone failing and went out anyway (CoreDNS's
  // healthcheck "broken" count).
  std::atomic<uint64_t> all_failing_resolutions{0};

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<ServerState>> servers_;
};

struct Zone {
  std::vector<uint8_t> name;  // lower-cased wire
  std::vector<ServerState*> servers;
};

class Forwarder;

// One resolution in progress; the caller embeds it in its own per-miss state.
class Resolution : private Exchange {
 public:
  struct Result {
    std::span<const uint8_t> reply;  // empty if every attempt failed
    std::span<const uint8_t> zone;   // the forwarded zone, to keep out-of-zone data out
  };
  virtual void on_resolved(Result result) = 0;

 protected:
  ~Resolution() = default;

 private:
  friend class Forwarder;
  bool on_reply(uint16_t id, std::span<const uint8_t> reply) override;
  void on_failure(Failure failure) override;
  void next_attempt();
  void send(Protocol protocol);

  Forwarder* forwarder_ = nullptr;
  const Zone* zone_ = nullptr;
  std::vector<uint8_t> query_;  // the query as sent (name possibly 0x20-cased)
  size_t qname_len_ = 0;
  ServerState* server_ = nullptr;
  Protocol protocol_ = Protocol::kUdp;  // of the exchange out now
  uint64_t started_ms_ = 0;
  uint64_t sent_us_ = 0;  // finer than the loop's clock: for the RTT and the reply durations
  unsigned attempts_ = 0;
  std::vector<ServerState*> order_;  // servers in the order to try them
};

class Forwarder {
 public:
  Forwarder(ForwarderSettings settings, const std::vector<ZoneServers>& zones, ServerPool& pool,
            Transport& transport);
  ~Forwarder();

  // Starts resolving `question` (lower-cased wire name, type, class) for `r`.
  void resolve(std::span<const uint8_t> question, bool do_bit, Resolution& r);

  // The zone whose upstreams serve `name` (lower-cased wire); never null.
  const Zone* zone_for(std::span<const uint8_t> name) const;

 private:
  friend class Resolution;
  class Probe;
  void order_servers(const Zone& zone, std::vector<ServerState*>& out);
  // After its back-off, a failed server is asked for its zone's SOA before it gets traffic.
  void probe(ServerState& server, const Zone& zone);
  void record_failure(ServerState& server);
  uint32_t attempt_timeout(const ServerState& s) const;

  ForwarderSettings settings_;
  Transport& transport_;
  ServerPool& pool_;
  std::vector<ServerState*> servers_;  // this forwarder's, from the shared pool
  std::vector<Zone> zones_;            // longest first
  std::vector<std::unique_ptr<Probe>> probes_;
  // order_servers()' snapshot of each server's standing, kept for its capacity.
  struct Rank {
    bool avoided;
    uint32_t srtt;
    uint32_t position;  // in the zone's list: ties keep that order
    ServerState* server;
  };
  std::vector<Rank> ranks_;
};

}  // namespace readyns::upstream
