// The admin HTTP server on a real libuv loop, driven by blocking client sockets on 127.0.0.1.
//
// The loop runs on its own thread, as in readyns. Statuses, keep-alive, pipelining, limits,
// timeouts, garbage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "admin/http_server.hpp"

namespace readyns::admin {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A server on its own loop thread, stopped through a uv_async as readyns will stop it.
struct Running {
  uv_loop_t loop;
  uv_async_t stop;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  int port = 0;

  explicit Running(HttpServerSettings settings = {}) {
    uv_loop_init(&loop);
    server = std::make_unique<HttpServer>(&loop, settings);
    server->route("/health", [](const Request&) { return Response{.body = "ok\n"}; });
    server->route("/big",
                  [](const Request&) { return Response{.body = std::string(1 << 20, 'b')}; });
    // Handlers run on the loop's thread, so reading the server's state here is safe.
    server->route("/connections", [this](const Request&) {
      return Response{.body = std::to_string(server->connections())};
    });
    REQUIRE(server->listen(*net::parse_address("127.0.0.1:0")) == 0);
    auto bound = server->local_address();
    REQUIRE(bound);
    port = ntohs(reinterpret_cast<const sockaddr_in*>(&bound->storage)->sin_port);
    REQUIRE(port != 0);
    uv_async_init(&loop, &stop, [](uv_async_t* async) {
      static_cast<Running*>(async->data)->server->close();
      uv_close(reinterpret_cast<uv_handle_t*>(async), nullptr);
    });
    stop.data = this;
    thread = std::thread([this] { uv_run(&loop, UV_RUN_DEFAULT); });
  }

  ~Running() {
    uv_async_send(&stop);
    thread.join();  // uv_run returns once the server's handles are all closed
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
};

struct Reply {
  int status = 0;  // 0: the connection closed before a whole response
  std::string head;
  std::string body;
};

// A blocking client socket with deadlines.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Client() { ::close(fd_); }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may have closed: what it sent is still readable
      bytes.remove_prefix(size_t(n));
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Reads one response; a HEAD response has Content-Length but no body.
  Reply read_response(bool head = false, int timeout_ms = 3000) {
    auto start = Clock::now();
    size_t end = std::string::npos;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(timeout_ms - ms_since(start))) return {};
    }
    Reply r;
    r.head = buffer_.substr(0, end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    size_t length = 0;
    if (size_t at = r.head.find("Content-Length: "); at != std::string::npos) {
      length = std::stoul(r.head.substr(at + 16));
    }
    if (head) length = 0;
    while (buffer_.size() < end + 4 + length) {
      if (!fill(timeout_ms - ms_since(start))) return {};
    }
    r.body = buffer_.substr(end + 4, length);
    buffer_.erase(0, end + 4 + length);
    return r;
  }

  Reply get(const std::string& path) {
    send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
    return read_response();
  }

  // True once the server has closed the connection (FIN or RST) within the timeout; bytes
  // arriving meanwhile are collected in `leftover`.
  bool wait_closed(int timeout_ms = 3000) {
    auto start = Clock::now();
    while (ms_since(start) < timeout_ms) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, int(timeout_ms - ms_since(start))) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n > 0) leftover.append(buf, size_t(n));
    }
    return false;
  }

  int fd() const { return fd_; }
  std::string leftover;

 private:
  bool fill(int64_t timeout_ms) {
    if (timeout_ms <= 0) return false;
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, int(timeout_ms)) <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, size_t(n));
    return true;
  }

  int fd_;
  std::string buffer_;
};

TEST_CASE("server: 200, 404 and 405 on one kept-alive connection") {
  Running s;
  Client c(s.port);
  Reply ok = c.get("/health");
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok\n");
  CHECK(ok.head.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.head.find("Connection: close") == std::string::npos);

  Reply missing = c.get("/nope");
  CHECK(missing.status == 404);

  c.send("POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  Reply post = c.read_response();
  CHECK(post.status == 405);
  CHECK(post.head.find("Allow: GET, HEAD\r\n") != std::string::npos);

  CHECK(c.get("/health?probe=1").status == 200);  // still the same connection
}

TEST_CASE("server: HEAD has the length but no body, and the connection goes on") {
  Running s;
  Client c(s.port);
  c.send("HEAD /health HTTP/1.1\r\n\r\n");
  Reply head = c.read_response(true);
  CHECK(head.status == 200);
  CHECK(head.head.find("Content-Length: 3\r\n") != std::string::npos);
  Reply next = c.get("/health");  // a stray body would show up as a broken status line here
  CHECK(next.status == 200);
  CHECK(next.body == "ok\n");
}

TEST_CASE("server: pipelined requests are answered in order") {
  Running s;
  Client c(s.port);
  c.send(
      "GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nHEAD /health HTTP/1.1\r\n\r\n"
      "GET /connections HTTP/1.1\r\n\r\n");
  CHECK(c.read_response().status == 200);
  CHECK(c.read_response().status == 404);
  CHECK(c.read_response(true).status == 200);
  Reply count = c.read_response();
  CHECK(count.status == 200);
  CHECK(count.body == "1");
}

TEST_CASE("server: Connection: close and HTTP/1.0 end the connection after the response") {
  Running s;
  {
    Client c(s.port);
    c.send("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    Reply r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c.wait_closed());
  }
  {
    Client c(s.port);
    c.send("GET /health HTTP/1.0\r\n\r\n");
    CHECK(c.read_response().status == 200);
    CHECK(c.wait_closed());
  }
  {
    Client c(s.port);
    c.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    Reply r = c.read_response();
    CHECK(r.head.find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK(c.get("/health").status == 200);
  }
}

TEST_CASE("server: a client that half-closes still gets a large response in full") {
  Running s;
  Client c(s.port);
  c.send("GET /big HTTP/1.1\r\n\r\n");
  c.shutdown_write();
  Reply r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.size() == size_t(1) << 20);
  CHECK(c.wait_closed());
}

TEST_CASE("server: oversized headers get 431, garbage gets 400, then the connection closes") {
  Running s;
  {
    Client c(s.port);
    c.send("GET /health HTTP/1.1\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
    Reply r = c.read_response();
    CHECK(r.status == 431);
    CHECK(r.head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c.wait_closed());
  }
  {
    Client c(s.port);
    c.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\xff\xfe", 14));
    CHECK(c.read_response().status == 400);
    CHECK(c.wait_closed());
  }
  {
    Client c(s.port);
    std::string noise;
    for (int i = 0; i < 70000; ++i) noise.push_back(char((i * 7919) % 251));
    c.send(noise);
    c.wait_closed();  // answered 400 (or cut off), never a crash
  }
  Client after(s.port);
  CHECK(after.get("/health").status == 200);
}

TEST_CASE("server: idle and slow clients are closed after the idle timeout") {
  Running s(HttpServerSettings{.idle_timeout_ms = 300, .linger_ms = 100});
  {
    Client silent(s.port);
    auto start = Clock::now();
    CHECK(silent.wait_closed(3000));
    CHECK(ms_since(start) >= 250);
  }
  {
    Client kept(s.port);
    CHECK(kept.get("/health").status == 200);
    auto start = Clock::now();
    CHECK(kept.wait_closed(3000));  // keep-alive, but nothing more for 300 ms
    CHECK(ms_since(start) >= 250);
  }
  {
    // Slowloris: a header trickling in never completes a request, so never earns more time.
    Client slow(s.port);
    slow.send("GET /health HTTP/1.1\r\nX-Slow: ");
    auto start = Clock::now();
    bool closed = false;
    while (!closed && ms_since(start) < 3000) {
      slow.send("a");
      closed = slow.wait_closed(50);
    }
    CHECK(closed);
    CHECK(ms_since(start) < 1500);
  }
}

TEST_CASE("server: connections over the limit get 503; open ones are still served") {
  Running s(HttpServerSettings{.linger_ms = 100, .max_connections = 3});
  auto c1 = std::make_unique<Client>(s.port);
  Client c2(s.port), c3(s.port);
  for (Client* c : {c1.get(), &c2, &c3}) REQUIRE(c->get("/health").status == 200);

  Client over(s.port);
  Reply refused = over.read_response();
  CHECK(refused.status == 503);
  CHECK(refused.body == "too many connections\n");
  CHECK(over.wait_closed());

  Reply count = c2.get("/connections");
  CHECK(count.body == "3");

  c1.reset();  // one leaves: a newcomer fits again once the server has seen it go
  bool served = false;
  auto start = Clock::now();
  while (!served && ms_since(start) < 3000) {
    Client next(s.port);
    served = next.get("/health").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(served);
  CHECK(c3.get("/health").status == 200);
}

TEST_CASE("server: a client pipelining without reading is cut off") {
  Running s(HttpServerSettings{.max_queued_write_bytes = 256 * 1024});
  {
    Client greedy(s.port);
    std::string many;
    for (int i = 0; i < 64; ++i) many += "GET /big HTTP/1.1\r\n\r\n";
    greedy.send(many);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(greedy.wait_closed(5000));
    CHECK(greedy.leftover.size() < size_t(4) << 20);  // far from 64 responses of 1 MiB
  }
  Client after(s.port);
  CHECK(after.get("/health").status == 200);
}

TEST_CASE("server: closing with connections open ends the loop") {
  auto s = std::make_unique<Running>();
  Client a(s->port), b(s->port);
  a.send("GET /health HT");  // half a request
  CHECK(b.get("/health").status == 200);
  s.reset();  // joins the loop thread: it must end although clients are still connected
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
}

TEST_CASE("server: listen reports errors and leaves nothing open after one") {
  Running s;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    // A failed listen holds no handle: the server goes without running the loop.
    HttpServer taken(&loop);
    CHECK(taken.listen(*net::parse_address("127.0.0.1:" + std::to_string(s.port))) ==
          UV_EADDRINUSE);
    CHECK_FALSE(taken.local_address());
    HttpServer nowhere(&loop);
    CHECK(nowhere.listen(*net::parse_address("192.0.2.1:0")) == UV_EADDRNOTAVAIL);
  }
  {
    HttpServer twice(&loop);
    CHECK(twice.listen(*net::parse_address("127.0.0.1:0")) == 0);
    CHECK(twice.listen(*net::parse_address("127.0.0.1:0")) == UV_EALREADY);
    bool closed = false;
    twice.close([&] { closed = true; });
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("server: serves IPv6 too") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  HttpServer server(&loop);
  server.route("/health", [](const Request&) { return Response{.body = "ok\n"}; });
  int err = server.listen(*net::parse_address("[::1]:0"));
  if (err == UV_EADDRNOTAVAIL || err == UV_EAFNOSUPPORT) {
    WARN("no IPv6 loopback here");
  } else {
    REQUIRE(err == 0);
    auto bound = server.local_address();
    REQUIRE(bound);
    CHECK(bound->family() == AF_INET6);
    std::atomic<bool> finished{false};
    std::thread client([&] {
      int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ::connect(fd, bound->sa(), bound->len());
      std::string request = "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n";
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      std::string reply;
      char buf[1024];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, size_t(n));
      ::close(fd);
      CHECK(reply.starts_with("HTTP/1.1 200 OK\r\n"));
      CHECK(reply.ends_with("\r\n\r\nok\n"));
      finished = true;
    });
    // Once the client is done, the server is closed from its loop, as a uv_async would.
    struct Stopper {
      HttpServer* server;
      std::atomic<bool>* finished;
    } stopper{&server, &finished};
    uv_timer_t poll;
    uv_timer_init(&loop, &poll);
    poll.data = &stopper;
    uv_timer_start(
        &poll,
        [](uv_timer_t* t) {
          auto* s = static_cast<Stopper*>(t->data);
          if (!*s->finished) return;
          s->server->close();
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        },
        10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    client.join();
  }
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace
}  // namespace readyns::admin
