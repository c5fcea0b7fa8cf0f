// Client TCP connection caps shared by the workers' listeners.
#include "net/connection_limits.hpp"

#include <netinet/in.h>

#include <cstring>
#include <string_view>

namespace readyns::net {

ClientAddress ClientAddress::of(const sockaddr* peer) {
  ClientAddress a;
  a.bytes[0] = uint8_t(peer->sa_family);
  if (peer->sa_family == AF_INET6) {
    std::memcpy(&a.bytes[1], &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, 16);
  } else if (peer->sa_family == AF_INET) {
    std::memcpy(&a.bytes[1], &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr, 4);
  }
  return a;
}

size_t ClientAddressHash::operator()(const ClientAddress& a) const {
  return std::hash<std::string_view>()(
      {reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size()});
}

ConnectionLimits::Admit ConnectionLimits::admit(const ClientAddress& client) {
  std::lock_guard lock(mutex_);
  if (open_.load(std::memory_order_relaxed) >= max_total_) {
    over_total_.fetch_add(1, std::memory_order_relaxed);
    return Admit::kOverTotal;
  }
  unsigned& count = per_client_[client];
  if (count >= max_per_client_) {
    over_client_.fetch_add(1, std::memory_order_relaxed);
    return Admit::kOverClient;
  }
  ++count;
  open_.fetch_add(1, std::memory_order_relaxed);
  return Admit::kOk;
}

void ConnectionLimits::release(const ClientAddress& client) {
  std::lock_guard lock(mutex_);
  auto it = per_client_.find(client);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
  open_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace readyns::net
