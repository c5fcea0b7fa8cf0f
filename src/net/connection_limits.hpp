// Client TCP connections counted across every worker: a cap on the total and one per client.
//
// The cap per client address means one client cannot take every connection slot.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace readyns::net {

// A client's IP address (the port left out), as the per-client count is kept.
struct ClientAddress {
  std::array<uint8_t, 17> bytes{};  // the family, then the address

  static ClientAddress of(const sockaddr* peer);
  bool operator==(const ClientAddress&) const = default;
};

struct ClientAddressHash {
  size_t operator()(const ClientAddress& a) const;
};

class ConnectionLimits {
 public:
  enum class Admit : uint8_t { kOk, kOverTotal, kOverClient };

  ConnectionLimits(unsigned max_total, unsigned max_per_client)
      : max_total_(max_total), max_per_client_(max_per_client) {}

  // Counts a new connection from `client` if both caps allow it; release() uncounts it.
  Admit admit(const ClientAddress& client);
  void release(const ClientAddress& client);

  unsigned open() const { return open_.load(std::memory_order_relaxed); }
  uint64_t refused_over_total() const { return over_total_.load(std::memory_order_relaxed); }
  uint64_t refused_over_client() const { return over_client_.load(std::memory_order_relaxed); }

 private:
  const unsigned max_total_, max_per_client_;
  std::mutex mutex_;  // taken once per accept and per close, never per query
  // Only clients with a connection open: no more entries than max_total_.
  std::unordered_map<ClientAddress, unsigned, ClientAddressHash> per_client_;
  std::atomic<unsigned> open_{0};
  std::atomic<uint64_t> over_total_{0}, over_client_{0};
};

}  // namespace readyns::net
