// The readyns DNS cache as an object: listeners, cache and forwarder on a libuv loop.
//
//   readyns::Server server(readyns::Options{.listen = {"127.0.0.1:5353"},
//                                           .upstreams = {"127.0.0.1:5300"}});
//   server.run();  // until server.stop() from a signal handler or another thread
#pragma once

#include <functional>
#include <memory>

#include "readyns/options.hpp"

namespace readyns {

class Server {
 public:
  // Validates the options and binds the listeners; throws std::invalid_argument naming a bad
  // setting, std::runtime_error if a listener cannot be bound.
  explicit Server(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until stop(); returns once every loop has finished.
  void run();
  // Asks run() to return after answering what is in flight (up to 1.5 s); safe from any thread
  // and from signal handlers.
  void stop();

  // Applies new options without dropping the cache or queries in flight: upstreams and zones,
  // TTL clamps, timeouts, 0x20, log level. listen, threads, cache and kube settings need a
  // restart (a warning says so). Throws std::invalid_argument naming a bad setting, and the old
  // settings keep serving. Safe from any thread.
  void reload(const Options& options);
  // `handler` runs on the server's first loop whenever request_reload() is called.
  void on_reload_request(std::function<void()> handler);
  // Safe from signal handlers (SIGHUP).
  void request_reload();
  // Calls request_reload() whenever the content of the file at `path` changes, however it is
  // replaced (in place, renamed over, a Kubernetes ConfigMap's symlink swap); watched from the
  // admin thread. Call before run(); throws std::runtime_error if it cannot be watched.
  void reload_on_change(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace readyns
