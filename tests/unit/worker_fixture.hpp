// Test helpers for driving a core::Worker without the network upstream.
//
// Queries, a scripted transport that stands in for the upstreams, a counting answer sink, a worker
// fixture, and a UDP listener with a client socket on 127.0.0.1.
#pragma once

#include <uv.h>
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/mesh.hpp"
#include "core/worker.hpp"
#include "net/listeners.hpp"
#include "wire/message.hpp"

namespace readyns::test {

using Bytes = std::vector<uint8_t>;

inline Bytes make_query(const std::string& name, uint16_t qtype) {
  Bytes q = {0x12, 0x34, wire::kFlagRd, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  uint8_t wire_name[wire::kMaxNameLength];
  size_t len = wire::name_from_text(name.data(), name.size(), wire_name, sizeof wire_name);
  q.insert(q.end(), wire_name, wire_name + len);
  q.insert(q.end(), {uint8_t(qtype >> 8), uint8_t(qtype), 0, 1});
  return q;
}

// The RCODE of an answer the worker sent.
inline uint8_t rcode(const Bytes& answer) {
  REQUIRE(answer.size() >= wire::kHeaderSize);
  return wire::rcode_of(answer.data());
}

// Keeps what the forwarder sends; the test answers it when it likes.
class ScriptedTransport final : public upstream::Transport {
 public:
  void send(const net::Address& server, upstream::Protocol protocol, std::span<uint8_t> query,
            uint32_t, upstream::Exchange* exchange) override {
    wire::put16(query.data(), 0x4242);
    sent.assign(query.begin(), query.end());
    this->server = server;
    this->protocol = protocol;
    ++queries;
    this->exchange = exchange;
  }
  uint64_t now_ms() const override { return now; }
  uint64_t now_us() const override { return now * 1000 + micros; }

  // An answer to the last query with `rcode`, and with an A record of `ttl` if `address`; it
  // lives in reply_bytes.
  Bytes& answer(uint8_t rcode, bool address = false, uint8_t ttl = 60) {
    Bytes& reply = reply_bytes;
    reply.assign(sent.begin(), sent.end() - wire::kOptRecordSize);
    reply[2] |= wire::kFlagQr;
    reply[3] = uint8_t(wire::kFlagRa | rcode);
    wire::put16(&reply[10], 0);
    if (address) {
      wire::put16(&reply[6], 1);
      reply.insert(reply.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, ttl, 0, 4, 10, 0, 0, 1});
    }
    return reply;
  }
  void reply_with(std::span<const uint8_t> reply) {
    REQUIRE(std::exchange(exchange, nullptr)->on_reply(0x4242, reply));
  }
  void reply(uint8_t rcode, bool address = false, uint8_t ttl = 60) {
    reply_with(answer(rcode, address, ttl));
  }

  uint64_t now = 1000;  // the test moves it
  uint64_t micros = 0;  // added to `now` on the microsecond clock, for round trips under 1 ms
  Bytes sent;
  net::Address server;  // where the last query went, and how
  upstream::Protocol protocol = upstream::Protocol::kUdp;
  int queries = 0;
  Bytes reply_bytes;  // kept, so that a reply allocates nothing once it has grown
  upstream::Exchange* exchange = nullptr;
};

class CountingSink final : public net::AnswerSink {
 public:
  void send(std::span<const uint8_t> answer) override {
    ++answers;
    last.assign(answer.begin(), answer.end());
    if (on_send) on_send();
  }
  void abandon() override {}
  void ref() override {}
  void unref() override {}
  bool open() const override { return true; }
  int answers = 0;
  Bytes last;
  std::function<void()> on_send;
};

struct Fixture {
  uv_loop_t loop;
  ScriptedTransport transport;
  upstream::ServerPool servers;
  cache::Cache cache{{.max_entries = 1000, .stale_max = 86400}};
  core::Mesh mesh;
  std::unique_ptr<core::Worker> worker;
  CountingSink sink;
  net::Address upstream = *net::parse_address("192.0.2.53:53", 53);

  explicit Fixture(const std::function<void(core::WorkerSettings&)>& adjust = {}) {
    uv_loop_init(&loop);
    core::WorkerSettings settings;
    settings.zones = {{.zone = ".", .servers = {upstream}}};
    settings.servers = &servers;
    if (adjust) adjust(settings);
    worker = std::make_unique<core::Worker>(&loop, settings, cache, mesh, transport, nullptr);
  }
  ~Fixture() {
    worker->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    worker.reset();
    uv_loop_close(&loop);
  }

  const core::Counters& counters() const { return worker->counters(); }
  uint64_t requests(bool stream, bool ipv6, uint16_t qtype) const {
    return counters()
        .requests[core::Counters::request_index(stream, ipv6, admin::coredns::qtype_index(qtype))]
        .get();
  }
  admin::HistogramSnapshot durations(uint16_t qtype) const {
    return counters().request_duration[admin::coredns::qtype_index(qtype)].snapshot();
  }
  // Asks `query` (type A) once, so that upstream's answer is cached.
  void cache_answer(const Bytes& query) {
    worker->on_query(query, {.sink = &sink});
    transport.reply(wire::kNoError, true);
  }
};

// A UDP listener feeding the fixture's worker, and a client socket, both on 127.0.0.1.
struct Udp {
  std::unique_ptr<net::UdpListener> listener;
  sockaddr_in server{};
  int client = -1;

  explicit Udp(Fixture& f) {
    int fd = net::bind_socket(*net::parse_address("127.0.0.1:0", 0), SOCK_DGRAM);
    REQUIRE(fd >= 0);
    socklen_t len = sizeof server;
    getsockname(fd, reinterpret_cast<sockaddr*>(&server), &len);
    listener = std::make_unique<net::UdpListener>(&f.loop, fd, *f.worker);
    client = net::bind_socket(*net::parse_address("127.0.0.1:0", 0), SOCK_DGRAM);
    REQUIRE(client >= 0);
  }
  ~Udp() {
    listener->close();
    ::close(client);
  }
  // Where the listener sends the answers.
  sockaddr_in client_address() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(client, reinterpret_cast<sockaddr*>(&a), &len);
    return a;
  }
  void send(const Bytes& query) {
    ::sendto(client, query.data(), query.size(), 0, reinterpret_cast<const sockaddr*>(&server),
             sizeof server);
  }
  int answers_waiting() {
    int n = 0;
    uint8_t buf[wire::kMaxMessageSize];
    while (::recv(client, buf, sizeof buf, MSG_DONTWAIT) > 0) ++n;
    return n;
  }
};

}  // namespace readyns::test
