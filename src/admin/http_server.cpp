// The admin HTTP server's sockets and timers; the protocol itself is admin::Session.
#include "admin/http_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

namespace readyns::admin {
namespace {

struct WriteRequest {
  uv_write_t req;
  std::string bytes;
};

// Reads land in one buffer per thread: a Session keeps what it needs before on_read returns.
void alloc_read_buffer(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
  static thread_local std::vector<char> scratch(64 * 1024);
  *buf = uv_buf_init(scratch.data(), unsigned(std::min(suggested, scratch.size())));
}

}  // namespace

struct HttpServer::Connection {
  HttpServer* server;
  uv_tcp_t stream;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  Session session;
  uint64_t requests_seen = 0;
  int open_handles = 2;
  bool counted = false;  // one of the server's active connections
  bool closing = false;
  bool finishing = false;  // the last response is queued: shut down, discard what still arrives
  bool shut_down = false;  // our FIN went out after every queued write
  bool eof = false;        // the client's FIN arrived

  explicit Connection(HttpServer& s) : server(&s), session(s.router_, s.settings_.limits) {
    uv_tcp_init(s.loop_, &stream);
    uv_timer_init(s.loop_, &timer);
    stream.data = timer.data = shutdown_req.data = this;
  }

  uv_stream_t* as_stream() { return reinterpret_cast<uv_stream_t*>(&stream); }

  void start() {
    uv_tcp_nodelay(&stream, 1);
    if (uv_read_start(as_stream(), alloc_read_buffer, on_read) != 0) return close();
    arm_timer(server->settings_.idle_timeout_ms);
  }

  // Over the limit: a 503 says why, then the connection winds down like any other.
  void refuse() {
    finishing = true;
    if (uv_read_start(as_stream(), alloc_read_buffer, on_read) != 0) return close();
    std::string out;
    render(Response{.status = 503, .body = "too many connections\n"}, {.keep_alive = false}, out);
    write(std::move(out));
    if (!closing) finish();
  }

  void arm_timer(uint64_t ms) {
    uv_timer_start(
        &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->close(); }, ms, 0);
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(s->data);
    if (n == UV_EOF) return self->on_eof();
    if (n < 0) return self->close();
    if (n == 0 || self->finishing) return;  // lingering: what arrives now is discarded
    HttpServer& server = *self->server;
    size_t queued = uv_stream_get_write_queue_size(self->as_stream());
    size_t budget = server.settings_.max_queued_write_bytes -
                    std::min(queued, server.settings_.max_queued_write_bytes);
    std::string out;
    bool keep_open = self->session.on_bytes({buf->base, size_t(n)}, out, budget);
    if (self->session.requests() != self->requests_seen) {
      // Only a complete request earns more time: trickling bytes (slowloris) does not.
      self->requests_seen = self->session.requests();
      self->arm_timer(server.settings_.idle_timeout_ms);
    }
    if (!out.empty()) self->write(std::move(out));
    if (!keep_open && !self->closing) self->finish();
  }

  void on_eof() {
    eof = true;
    if (!finishing) return finish();  // answers already queued still go out
    if (shut_down) close();
  }

  void write(std::string bytes) {
    if (uv_stream_get_write_queue_size(as_stream()) > server->settings_.max_queued_write_bytes) {
      return close();
    }
    auto* w = new WriteRequest{.req = {}, .bytes = std::move(bytes)};
    uv_buf_t b = uv_buf_init(w->bytes.data(), unsigned(w->bytes.size()));
    if (uv_write(&w->req, as_stream(), &b, 1,
                 [](uv_write_t* r, int) { delete reinterpret_cast<WriteRequest*>(r); }) != 0) {
      delete w;
      close();
    }
  }

  // Sends FIN once every queued write is out, then waits for the client's FIN: closing at once
  // with unread input would send a RST, which can destroy the response before the client reads it.
  void finish() {
    finishing = true;
    arm_timer(server->settings_.idle_timeout_ms);  // bounds a client that never reads
    int err = uv_shutdown(&shutdown_req, as_stream(), [](uv_shutdown_t* req, int status) {
      auto* self = static_cast<Connection*>(req->data);
      if (status == UV_ECANCELED || self->closing) return;
      self->shut_down = true;
      if (status < 0 || self->eof) return self->close();
      self->arm_timer(self->server->settings_.linger_ms);
    });
    if (err != 0) close();
  }

  void close() {
    if (closing) return;
    closing = true;
    HttpServer& s = *server;
    if (counted) --s.active_;
    s.all_.erase(std::remove(s.all_.begin(), s.all_.end(), this), s.all_.end());
    auto on_closed = [](uv_handle_t* h) {
      auto* self = static_cast<Connection*>(h->data);
      if (--self->open_handles > 0) return;
      HttpServer* owner = self->server;
      delete self;
      owner->released();
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&stream), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
  }
};

HttpServer::HttpServer(uv_loop_t* loop, HttpServerSettings settings)
    : loop_(loop), settings_(settings) {}

HttpServer::~HttpServer() {
  assert(live_ == 0 && "HttpServer destroyed with handles open");
}

void HttpServer::route(std::string path, Router::Handler handler) {
  router_.add(std::move(path), std::move(handler));
}

int HttpServer::listen(const net::Address& address) {
  if (listener_ || closing_) return UV_EALREADY;
  // Bound here rather than by libuv, so a failure leaves no handle that needs the loop to close.
  // No SO_REUSEPORT: a second instance on this port must fail, not take half the scrapes.
  // IPv6 stays dual-stack ("[::]:9253" serves IPv4 scrapes too).
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd, address.sa(), address.len()) != 0 || ::listen(fd, settings_.backlog) != 0) {
    int err = -errno;
    ::close(fd);
    return err;
  }
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  ++live_;
  int err = uv_tcp_open(listener_, fd);
  if (err == 0) {
    err = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), settings_.backlog, on_connection);
  }
  if (err != 0) {  // not expected once bound; the handle then closes with the loop's next turn
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) {
      auto* self = static_cast<HttpServer*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
      self->released();
    });
    listener_ = nullptr;
  }
  return err;
}

std::optional<net::Address> HttpServer::local_address() const {
  if (!listener_) return std::nullopt;
  net::Address address;
  int len = sizeof address.storage;
  if (uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&address.storage), &len) != 0) {
    return std::nullopt;
  }
  return address;
}

void HttpServer::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpServer*>(listener->data);
  if (status < 0 || self->closing_) return;
  auto* c = new Connection(*self);
  ++self->live_;
  self->all_.push_back(c);
  if (uv_accept(listener, c->as_stream()) != 0) return c->close();
  if (self->active_ >= self->settings_.max_connections) {
    spdlog::debug("admin: refusing a connection, {} open", self->active_);
    return c->refuse();
  }
  c->counted = true;
  ++self->active_;
  c->start();
}

void HttpServer::close(std::function<void()> on_closed) {
  if (closing_) return;
  closing_ = true;
  on_closed_ = std::move(on_closed);
  ++live_;  // held while closing, so on_closed_ cannot run before this function returns
  if (listener_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) {
      auto* self = static_cast<HttpServer*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
      self->released();
    });
    listener_ = nullptr;
  }
  for (Connection* c : std::vector<Connection*>(all_)) c->close();
  released();
}

void HttpServer::released() {
  if (--live_ == 0 && closing_ && on_closed_) std::exchange(on_closed_, nullptr)();
}

}  // namespace readyns::admin
