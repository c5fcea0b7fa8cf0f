// The readyns DNS cache as an object: listeners, cache and forwarder on a libuv loop.
//
//   readyns::Server server(readyns::Options{.listen = {"127.0.0.1:5353"},
//                                           .upstreams = {"127.0.0.1:5300"}});
//   server.run();  // until server.stop() from a signal handler or another thread
#pragma once

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
  // Asks run() to return; safe from any thread and from signal handlers' loop callbacks.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace readyns
