// Client-side load balancing with readyns embedded.
//
// An HTTP-client-style balancer that spreads requests round-robin over a Service's ready endpoints
// and follows every change (a rolling update, a pod going unready) as watch_endpoints() reports it,
// with no DNS TTL in the way.
//
//   load_balancer [--upstream IP:PORT] [--kube-api URL --kube-ca FILE --kube-token FILE]
//                 SERVICE NAMESPACE PORT_NAME
//
// The requests are simulated: each prints "pick ADDRESS:PORT". Set changes print "update N
// ADDRESS:PORT,...". It runs until its standard input closes.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "readyns/resolver.hpp"

namespace {

std::string text(const readyns::Endpoint& e) {
  return e.address + ":" + std::to_string(e.port);
}

// The endpoints to spread requests over. update() comes on the readyns thread, pick() on the
// request threads; one mutex orders them, so no pick after an update sees the set before it.
class Balancer {
 public:
  void update(readyns::Endpoints endpoints) {
    std::lock_guard lock(mutex_);
    endpoints_ = std::move(endpoints);
    next_ = 0;
    std::string line = "update " + std::to_string(++version_) + " ";
    for (size_t i = 0; i < endpoints_.size(); ++i) line += (i ? "," : "") + text(endpoints_[i]);
    if (endpoints_.empty()) line += "-";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  std::optional<readyns::Endpoint> pick() {
    std::lock_guard lock(mutex_);
    if (endpoints_.empty()) return std::nullopt;
    const readyns::Endpoint& e = endpoints_[next_++ % endpoints_.size()];
    std::printf("pick %s\n", text(e).c_str());
    return e;
  }

 private:
  std::mutex mutex_;
  readyns::Endpoints endpoints_;
  size_t next_ = 0;
  uint64_t version_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  readyns::Options options{.listen = {}, .upstreams = {}, .kube = "off", .log_level = "warn"};
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--upstream") {
      options.upstreams.push_back(value());
    } else if (arg == "--kube-api") {
      options.kube = "on";
      options.kube_api = value();
    } else if (arg == "--kube-ca") {
      options.kube_ca_file = value();
    } else if (arg == "--kube-token") {
      options.kube_token_file = value();
    } else {
      positional.push_back(arg);
    }
  }
  if (options.upstreams.empty()) options.upstreams = {"resolv.conf"};
  if (positional.size() != 3) {
    std::fprintf(stderr,
                 "usage: %s [--upstream IP:PORT] [--kube-api URL --kube-ca FILE "
                 "--kube-token FILE] SERVICE NAMESPACE PORT_NAME\n",
                 argv[0]);
    return 2;
  }
  const std::string &service = positional[0], &ns = positional[1], &port = positional[2];

  std::optional<readyns::Resolver> resolver;
  try {
    resolver.emplace(options);  // on a thread of its own: callbacks come there
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  Balancer balancer;
  auto on_endpoints = [&](readyns::Result<readyns::Endpoints> result) {
    if (result) {
      balancer.update(std::move(*result));
    } else {
      std::fprintf(stderr, "endpoints: %s\n", result.error().message.c_str());
    }
  };
  // Without the EndpointSlice API, a first lookup through DNS; the watch then polls DNS. With it,
  // the watch's first call is the table's first set.
  readyns::Query first;
  if (!resolver->watching_kubernetes())
    first = resolver->endpoints(service, ns, port, on_endpoints);
  readyns::Subscription watch = resolver->watch_endpoints(service, ns, port, on_endpoints);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 2; ++t) {
    clients.emplace_back([&] {
      while (!stop) {
        if (std::optional<readyns::Endpoint> e = balancer.pick()) {
          ++sent;  // here a real client would send its request to e->address:e->port
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  stop = true;
  for (std::thread& t : clients) t.join();
  watch.cancel();
  resolver.reset();
  std::printf("sent %llu\n", static_cast<unsigned long long>(sent.load()));
  return 0;
}
