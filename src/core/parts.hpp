// The public Options checked and turned into the settings each internal part takes.
//
// Shared by the daemon's Server and the embedded Resolver so that both read an option the same way.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/worker.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/settings.hpp"
#include "net/address.hpp"
#include "net/connection_limits.hpp"
#include "net/listeners.hpp"
#include "readyns/options.hpp"

namespace readyns::core {

// `given` with its "resolv.conf" upstreams read and every setting checked (config::validate);
// throws config::InvalidSetting (a std::invalid_argument) naming the setting. The daemon needs
// a listen address; an embedded resolver may answer its caller alone.
Options checked_options(Options given, bool listeners_required);

// The rest take options that checked_options() returned, so they do not fail.
cache::Settings cache_settings(const Options& o);
// How many workers to run: `threads`, or with 0 one per CPU the process may run on (its affinity,
// so a pod pinned to two CPUs gets two).
unsigned worker_count(const Options& o);
WorkerSettings worker_settings(const Options& o, upstream::ServerPool* servers);
net::TcpSettings tcp_settings(const Options& o);
// The client TCP connection caps, one for every worker's listeners (which it must outlive).
std::unique_ptr<net::ConnectionLimits> connection_limits(const Options& o);

// A UDP and a TCP socket bound on each listen address (SO_REUSEPORT: each worker binds its
// own). The first worker's call also checks that no other program holds an address, which
// SO_REUSEPORT would share. Throws std::runtime_error naming the address that failed, with none
// left open.
struct ListenSockets {
  std::vector<int> udp, tcp;
};
ListenSockets bind_listeners(const Options& o, bool first);
k8s::Mode kube_mode(const Options& o);
k8s::WatcherSettings watcher_settings(const Options& o);

// Lets workers ask the endpoint table first, without the worker depending on the k8s module.
class TableAnswerer final : public LocalAnswerer {
 public:
  explicit TableAnswerer(const k8s::EndpointTable& table) : table_(table) {}
  size_t answer(const wire::Query& q, std::span<uint8_t> out, size_t limit) const override {
    return table_.answer(q, out, limit);
  }

 private:
  const k8s::EndpointTable& table_;
};

}  // namespace readyns::core
