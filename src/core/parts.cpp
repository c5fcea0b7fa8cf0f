// The public Options checked and turned into the settings each internal part takes.
#include "core/parts.hpp"

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "config/resolv_conf.hpp"
#include "config/settings.hpp"

namespace readyns::core {
namespace {

net::Address address(const std::string& text) {
  return net::parse_address(text, 53).value();  // checked_options() vetted it
}

std::vector<upstream::ZoneServers> zone_servers(const Options& o) {
  std::vector<upstream::ZoneServers> zones;
  auto add = [&](const std::string& zone, const std::vector<std::string>& servers) {
    upstream::ZoneServers z{.zone = zone.empty() ? "." : zone, .servers = {}};
    for (const std::string& s : servers) z.servers.push_back(address(s));
    zones.push_back(std::move(z));
  };
  if (!o.upstreams.empty()) add(".", o.upstreams);
  for (const ForwardZone& f : o.forward) add(f.zone, f.upstreams);
  return zones;
}

}  // namespace

Options checked_options(Options given, bool listeners_required) {
  config::expand_resolv_conf(given);
  config::validate(given, listeners_required);
  return given;
}

cache::Settings cache_settings(const Options& o) {
  return {
      .max_entries = o.cache_size, .max_bytes = o.cache_memory_mib << 20, .stale_max = o.stale_max};
}

unsigned worker_count(const Options& o) {
  return o.threads ? o.threads : std::clamp(uv_available_parallelism(), 1u, 256u);
}

WorkerSettings worker_settings(const Options& o, upstream::ServerPool* servers) {
  return {
      .ttl = {.min_ttl = o.min_ttl, .max_ttl = o.max_ttl, .neg_ttl = o.neg_ttl},
      .forwarder = {.attempt_timeout_ms = o.upstream_timeout_ms,
                    .resolve_timeout_ms = o.resolve_timeout_ms,
                    .randomize_case = o.randomize_case},
      .zones = zone_servers(o),
      .servers = servers,
      .max_in_flight = o.max_in_flight,
      .stale_answer_timeout_ms = o.stale_max ? o.stale_answer_timeout_ms : 0,
      .max_prefetches = o.prefetch ? WorkerSettings{}.max_prefetches : 0,
      .query_log = o.query_log,
      .query_log_sample = std::max<uint32_t>(1, o.query_log_sample),
      .rrl_rate = o.rrl_rate,
      .rrl_slip = o.rrl_slip,
  };
}

net::TcpSettings tcp_settings(const Options& o) {
  return {.idle_timeout_ms = o.tcp_idle_timeout_ms, .max_pipelined = o.tcp_max_pipelined};
}

std::unique_ptr<net::ConnectionLimits> connection_limits(const Options& o) {
  return std::make_unique<net::ConnectionLimits>(o.tcp_max_connections,
                                                 o.tcp_max_connections_per_client);
}

ListenSockets bind_listeners(const Options& o, bool first) {
  ListenSockets sockets;
  for (const std::string& text : o.listen) {
    net::Address at = address(text);
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      int taken = first ? net::check_address_free(at, type) : 0;
      int fd = taken < 0 ? taken : net::bind_socket(at, type);
      if (fd < 0) {
        for (int open : sockets.udp) ::close(open);
        for (int open : sockets.tcp) ::close(open);
        throw std::runtime_error("cannot listen on " + at.to_string() +
                                 (type == SOCK_DGRAM ? "/udp: " : "/tcp: ") + strerror(-fd));
      }
      (type == SOCK_DGRAM ? sockets.udp : sockets.tcp).push_back(fd);
    }
  }
  return sockets;
}

k8s::Mode kube_mode(const Options& o) {
  if (o.kube == "off") return k8s::Mode::kOff;
  return o.kube == "on" ? k8s::Mode::kOn : k8s::Mode::kAuto;
}

k8s::WatcherSettings watcher_settings(const Options& o) {
  return {.mode = kube_mode(o),
          .api_url = o.kube_api,
          .token_file = o.kube_token_file,
          .ca_file = o.kube_ca_file,
          .namespaces = o.kube_namespaces};
}

}  // namespace readyns::core
