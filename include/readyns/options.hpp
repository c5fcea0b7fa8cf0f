// readyns settings: one plain struct with defaults.
//
// Shared by the daemon, the config file and embedders. Addresses are "IP:PORT" ("[v6]:PORT" for
// IPv6).
//
//   readyns::Options opts{.listen = {"127.0.0.1:5353"}, .upstreams = {"127.0.0.1:5300"}};
//   opts.forward.push_back({.zone = "cluster.local", .upstreams = {"10.96.0.10:53"}});
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace readyns {

// A zone sent to its own upstreams; the longest matching zone wins, "." is the default.
struct ForwardZone {
  std::string zone{};
  std::vector<std::string> upstreams{};
};

struct Options {
  std::vector<std::string> listen = {"127.0.0.1:53"};
  std::vector<std::string> upstreams{};  // the default zone "."
  std::vector<ForwardZone> forward{};

  // Cache: sizes and TTL clamps (defaults as NodeLocal DNSCache: success <= 30 s, denial <= 5 s).
  size_t cache_size = 100000;
  size_t cache_memory_mib = 128;  // MiB of cached answers: what bounds a cache of large answers
  uint32_t min_ttl = 0;
  uint32_t max_ttl = 30;
  uint32_t neg_ttl = 5;
  // Unbound's prefetch: a hit in the last tenth of an entry's TTL also refreshes it in the
  // background. Off, as in Unbound and CoreDNS: a hit then never reaches the upstream.
  bool prefetch = false;

  // Upstream exchange.
  uint32_t upstream_timeout_ms = 1000;  // one attempt, before trying the next upstream
  uint32_t resolve_timeout_ms = 4000;   // whole query: SERVFAIL after this, never silence
  bool randomize_case = false;          // 0x20: random case toward upstreams that preserve it
  size_t max_in_flight = 10000;         // distinct misses upstream at once, per worker thread

  // Serve stale (RFC 8767): an expired answer up to stale_max seconds old is served (TTL 30)
  // when every upstream fails, or after stale_answer_timeout_ms without an answer.
  uint32_t stale_max = 86400;
  uint32_t stale_answer_timeout_ms = 1800;

  // Client TCP (RFC 7766).
  uint32_t tcp_idle_timeout_ms = 10000;
  unsigned tcp_max_connections = 1000;            // all clients, all worker threads
  unsigned tcp_max_connections_per_client = 100;  // per client IP address
  unsigned tcp_max_pipelined = 100;               // unanswered queries per connection

  // Response rate limiting over UDP, per client network (/24 for IPv4, /56 for IPv6) and per
  // worker thread: at most rrl_rate answers a second (0: off); of the answers over it, one in
  // rrl_slip goes out empty with TC=1 (the client retries over TCP), the others are dropped
  // (0: drop them all).
  uint32_t rrl_rate = 0;
  uint32_t rrl_slip = 2;

  // Kubernetes: headless Services answered from the EndpointSlice API (ready endpoints only).
  std::string kube = "auto";      // off | auto (when an API server is found) | on (required)
  std::string kube_api{};         // "https://host:port"; empty: in-pod service environment
  std::string kube_token_file{};  // empty: the service account's token in a pod
  std::string kube_ca_file{};     // empty: the service account's CA in a pod
  std::vector<std::string> kube_namespaces{};  // empty: all namespaces
  std::string cluster_domain = "cluster.local";
  uint32_t kube_ttl = 5;  // seconds, on every record and SOA the table answers (CoreDNS's `ttl`)

  unsigned threads = 0;  // worker threads; 0: one per CPU this process may run on
  std::string log_level = "info";

  // HTTP endpoints: /health and /ready for the kubelet's probes, /metrics for Prometheus.
  std::string health = "127.0.0.1:8080";
  std::string metrics = "127.0.0.1:9253";

  // One log line per answered query, for one query in `query_log_sample` (1: every query).
  bool query_log = false;
  uint32_t query_log_sample = 1;

  // The daemon: reload when its --config file changes, as on SIGHUP.
  bool watch_config = false;
};

}  // namespace readyns
