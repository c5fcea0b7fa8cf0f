// Settings of the Kubernetes module: where the API server is, and how the answers are shaped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace readyns::k8s {

enum class Mode : uint8_t {
  kOff,   // never watch the API
  kAuto,  // watch when an API server can be found (in a pod, or api_url given)
  kOn,    // watch, and refuse to start without an API server
};

// What the endpoint table needs to name and answer records.
struct TableSettings {
  std::string cluster_domain = "cluster.local";
  uint32_t ttl = 5;  // CoreDNS's kubernetes plugin default
};

// Why `domain` cannot be the cluster domain, or empty if it can: the endpoint table makes names of
// it up to hostmaster.<domain> (its SOA's mailbox), and each must fit in 255 bytes.
std::string cluster_domain_problem(std::string_view domain);

// What the watcher needs to reach the API server and to behave when it misbehaves.
struct WatcherSettings {
  Mode mode = Mode::kAuto;
  // "https://host:port"; empty: in a pod, from KUBERNETES_SERVICE_HOST/PORT.
  std::string api_url{};
  std::string token_file{};  // empty: the service account's token in a pod, none outside
  std::string ca_file{};     // empty: the service account's CA in a pod, the system's outside
  std::vector<std::string> namespaces{};  // empty: all namespaces
  uint32_t backoff_initial_ms = 500;      // first retry delay; doubles per failure, jittered
  uint32_t backoff_max_ms = 30000;
  uint32_t watch_timeout_s = 300;  // asked of the server per watch, jittered up to twice that
  uint32_t list_page_size = 500;   // items per list page (limit/continue)
};

}  // namespace readyns::k8s
