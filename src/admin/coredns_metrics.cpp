// CoreDNS label values that need more than a table.
#include "admin/coredns_metrics.hpp"

#include <netinet/in.h>

#include <cstring>

namespace readyns::admin::coredns {

std::string server_label(const net::Address& listen) {
  std::string text = listen.to_string();  // "IP:PORT" or "[IPv6]:PORT"
  bool wildcard = false;
  if (listen.family() == AF_INET) {
    wildcard = reinterpret_cast<const sockaddr_in*>(&listen.storage)->sin_addr.s_addr == INADDR_ANY;
  } else if (listen.family() == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&listen.storage)->sin6_addr;
    wildcard = std::memcmp(&a, &in6addr_any, sizeof a) == 0;
  }
  if (wildcard) text.erase(0, text.rfind(':'));  // CoreDNS writes a bind-all server as ":53"
  return "dns://" + text;
}

}  // namespace readyns::admin::coredns
