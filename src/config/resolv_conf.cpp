// Reading nameservers from resolv.conf for "resolv.conf" upstreams, without looping to ourselves.
#include "config/resolv_conf.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "config/settings.hpp"
#include "net/address.hpp"

namespace readyns::config {
namespace {

constexpr std::string_view kDefaultPath = "/etc/resolv.conf";
constexpr std::string_view kPathPrefix = "resolv.conf:";  // "resolv.conf:/run/resolv.conf"

bool is_wildcard(const net::Address& a) {
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr == INADDR_ANY;
  }
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
}

uint16_t port_of(const net::Address& a) {
  return ntohs(a.family() == AF_INET
                   ? reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_port
                   : reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_port);
}

// Whether `ip` (port ignored) is loopback or on one of this host's interfaces: what a wildcard
// listen address (0.0.0.0, [::]) receives.
bool is_local(const net::Address& ip) {
  if (ip.family() == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&ip.storage);
    if ((ntohl(v4->sin_addr.s_addr) >> 24) == 127) return true;
  } else if (IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&ip.storage)->sin6_addr)) {
    return true;
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != ip.family()) continue;
    if (ip.family() == AF_INET) {
      found = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr ==
              reinterpret_cast<const sockaddr_in*>(&ip.storage)->sin_addr.s_addr;
    } else {
      found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                          &reinterpret_cast<const sockaddr_in6*>(&ip.storage)->sin6_addr,
                          sizeof(in6_addr)) == 0;
    }
  }
  freeifaddrs(list);
  return found;
}

// Whether a query to `server` would reach one of our own listeners.
bool is_ours(const net::Address& server, const std::vector<std::string>& listen) {
  for (const std::string& l : listen) {
    auto addr = net::parse_address(l, 53);
    if (!addr) continue;  // validate() reports it
    if (*addr == server) return true;
    if (addr->family() == server.family() && is_wildcard(*addr) &&
        port_of(*addr) == port_of(server) && is_local(server)) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> read_resolv_conf(const std::string& path,
                                          const std::vector<std::string>& listen) {
  std::ifstream in(path);
  if (!in) throw BadValue("cannot read " + path + ": " + std::strerror(errno));
  std::vector<std::string> servers;
  std::string skipped;  // why nothing was left, if it comes to that
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword, ip;
    if (!(words >> keyword) || keyword != "nameserver" || !(words >> ip)) continue;
    // resolv.conf holds bare IPs: "1.2.3.4:53" is no nameserver to glibc, so none to us.
    in6_addr scratch;
    bool bare_ip = inet_pton(AF_INET, ip.c_str(), &scratch) == 1 ||
                   inet_pton(AF_INET6, ip.c_str(), &scratch) == 1;
    auto addr = net::parse_address(ip, 53);
    std::string why;
    if (!bare_ip || !addr) {
      why = "not a usable IP address";  // also fe80::1%eth0: a scope cannot be kept
    } else if (is_ours(*addr, listen)) {
      why = "one of our listen addresses";
    }
    if (!why.empty()) {
      skipped += (skipped.empty() ? "" : ", ") + ip + ": " + why;
      continue;
    }
    std::string server = addr->to_string();
    bool repeat = false;
    for (const std::string& s : servers) repeat |= s == server;
    if (!repeat) servers.push_back(server);
  }
  if (servers.empty()) {
    throw BadValue("no usable nameserver in " + path +
                   (skipped.empty() ? "" : " (" + skipped + ")"));
  }
  return servers;
}

void expand_resolv_conf(Options& o) {
  auto expand = [&](std::vector<std::string>& upstreams, const std::string& key,
                    std::string_view flag) {
    std::vector<std::string> out;
    for (size_t i = 0; i < upstreams.size(); ++i) {
      const std::string& u = upstreams[i];
      if (!is_resolv_conf(u)) {
        out.push_back(u);
        continue;
      }
      std::string path =
          u == "resolv.conf" ? std::string(kDefaultPath) : u.substr(kPathPrefix.size());
      try {
        for (std::string& s : read_resolv_conf(path, o.listen)) out.push_back(std::move(s));
      } catch (const BadValue& e) {
        throw InvalidSetting(key + "[" + std::to_string(i) + "]", flag, e.what());
      }
    }
    upstreams = std::move(out);
  };
  expand(o.upstreams, "upstreams", "--upstream");
  for (size_t i = 0; i < o.forward.size(); ++i) {
    expand(o.forward[i].upstreams, "forward[" + std::to_string(i) + "].upstreams", "--forward");
  }
}

}  // namespace readyns::config
