// The admin HTTP server (/health, /ready, /metrics) on a libuv loop of its own.
//
// A loop of its own, so probes and scrapes never wait behind queries and a stuck worker cannot hide
// from /health.
//
//   admin::HttpServer server(&admin_loop, admin::HttpServerSettings{});
//   server.route("/health", [](const admin::Request&) { return admin::Response{.body = "ok\n"}; });
//   if (int err = server.listen(*net::parse_address("0.0.0.0:9153")); err < 0) ...uv_strerror(err)
//   ...
//   server.close([] { /* every handle closed: the loop may end, the server may go */ });
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "admin/http.hpp"
#include "net/address.hpp"

namespace readyns::admin {

struct HttpServerSettings {
  Limits limits = {};
  uint32_t idle_timeout_ms = 5000;  // no complete request for this long: close (slow clients too)
  uint32_t linger_ms = 1000;        // after the last response, wait this long for the client's FIN
  unsigned max_connections = 64;    // beyond: 503 and close; open ones are still served
  size_t max_queued_write_bytes = 4 << 20;  // a client that pipelines without reading is cut off
  int backlog = 128;
};

// Everything runs on the loop's thread: construct, route, listen and close before that thread
// runs the loop, or from callbacks on it (a uv_async for close from elsewhere).
class HttpServer {
 public:
  HttpServer(uv_loop_t* loop, HttpServerSettings settings = {});
  // Requires close() and the loop run until its callback, unless listen() never succeeded.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves GET and HEAD for this exact path (query strings are ignored for matching).
  void route(std::string path, Router::Handler handler);
  // Binds and listens; returns 0 or a negative errno / libuv error (uv_strerror names it), and
  // after a failure holds nothing open. Port 0 picks a free port. One address per server.
  int listen(const net::Address& address);
  // The bound address (the chosen port after listen on port 0).
  std::optional<net::Address> local_address() const;
  // Stops listening and closes every connection; `on_closed` runs once every handle has closed.
  void close(std::function<void()> on_closed = {});
  // Connections being served (not counting refused ones on their way out).
  size_t connections() const { return active_; }

 private:
  struct Connection;
  static void on_connection(uv_stream_t* listener, int status);
  void released();  // a handle or connection finished closing

  uv_loop_t* loop_;
  HttpServerSettings settings_;
  Router router_;
  uv_tcp_t* listener_ = nullptr;
  std::vector<Connection*> all_;  // open connections, refused ones included
  size_t active_ = 0;
  size_t live_ = 0;  // the listener and connections not yet freed
  bool closing_ = false;
  std::function<void()> on_closed_;
};

}  // namespace readyns::admin
