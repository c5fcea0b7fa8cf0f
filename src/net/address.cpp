// Socket addresses from and to text.
#include "net/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace readyns::net {

socklen_t Address::len() const {
  return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

uint16_t Address::port() const {
  return ntohs(family() == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port
                                    : reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string Address::to_string() const {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    std::string text = "[";
    text.append(ip).append("]:").append(std::to_string(ntohs(a->sin6_port)));
    return text;
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
  inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
  std::string text = ip;
  text.append(":").append(std::to_string(ntohs(a->sin_port)));
  return text;
}

bool Address::operator==(const Address& other) const {
  return same_endpoint(*this, other.sa());
}

std::optional<Address> parse_address(std::string_view text, int default_port) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = text.rfind(':');
    bool bare_v6 = colon != std::string_view::npos && text.find(':') != colon;
    if (colon == std::string_view::npos || bare_v6) {
      host = text;
    } else {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
    }
  }
  int port = default_port;
  if (!port_text.empty() || default_port < 0) {
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size()) return std::nullopt;
  }
  if (port < 0 || port > 65535) return std::nullopt;

  Address addr;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(port));
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(port));
  } else {
    return std::nullopt;
  }
  return addr;
}

bool same_endpoint(const Address& a, const sockaddr* b) {
  if (a.family() != b->sa_family) return false;
  if (a.family() == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage);
    auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  auto* y = reinterpret_cast<const sockaddr_in6*>(b);
  return x->sin6_port == y->sin6_port &&
         std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

}  // namespace readyns::net
