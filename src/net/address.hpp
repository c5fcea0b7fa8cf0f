// Socket addresses from "IP:PORT" / "[IPv6]:PORT" text, and back, for flags, config and logs.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace readyns::net {

struct Address {
  sockaddr_storage storage{};

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  socklen_t len() const;
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  std::string to_string() const;
  bool operator==(const Address& other) const;
};

// Parses "127.0.0.1:53", "[::1]:53"; with `default_port`, a bare IP is accepted too.
std::optional<Address> parse_address(std::string_view text, int default_port = -1);

// True if `a` and the sockaddr `b` name the same IP and port.
bool same_endpoint(const Address& a, const sockaddr* b);

}  // namespace readyns::net
