// Unit tests of what a Worker counts per query: requests by transport, family and type, request
// durations (a UDP batch's answers timed together, later ones from when their query was read,
// always before the answer leaves), and the upstream replies by RCODE. A scripted transport stands
// in for the upstreams.
#include <uv.h>
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/mesh.hpp"
#include "core/worker.hpp"
#include "net/listeners.hpp"
#include "wire/message.hpp"

using namespace readyns;
using core::Counters;

namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint16_t kTypeTxt = 16;

Bytes make_query(const std::string& name, uint16_t qtype) {
  Bytes q = {0x12, 0x34, wire::kFlagRd, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  uint8_t wire_name[wire::kMaxNameLength];
  size_t len = wire::name_from_text(name.data(), name.size(), wire_name, sizeof wire_name);
  q.insert(q.end(), wire_name, wire_name + len);
  q.insert(q.end(), {uint8_t(qtype >> 8), uint8_t(qtype), 0, 1});
  return q;
}

// Keeps what the forwarder sends; the test answers it when it likes.
class ScriptedTransport final : public upstream::Transport {
 public:
  void send(const net::Address&, upstream::Protocol, std::span<uint8_t> query, uint32_t,
            upstream::Exchange* exchange) override {
    wire::put16(query.data(), 0x4242);
    sent.assign(query.begin(), query.end());
    this->exchange = exchange;
  }
  uint64_t now_ms() const override { return 1000; }

  // Answers the last query with `rcode`, and with an A record (TTL 60) if `address`.
  void reply(uint8_t rcode, bool address = false) {
    Bytes reply(sent.begin(), sent.end() - wire::kOptRecordSize);
    reply[2] |= wire::kFlagQr;
    reply[3] = uint8_t(wire::kFlagRa | rcode);
    wire::put16(&reply[10], 0);
    if (address) {
      wire::put16(&reply[6], 1);
      reply.insert(reply.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1});
    }
    REQUIRE(std::exchange(exchange, nullptr)->on_reply(0x4242, reply));
  }

  Bytes sent;
  upstream::Exchange* exchange = nullptr;
};

class CountingSink final : public net::AnswerSink {
 public:
  void send(std::span<const uint8_t>) override {
    ++answers;
    if (on_send) on_send();
  }
  void abandon() override {}
  void ref() override {}
  void unref() override {}
  bool open() const override { return true; }
  int answers = 0;
  std::function<void()> on_send;
};

struct Fixture {
  uv_loop_t loop;
  ScriptedTransport transport;
  upstream::ServerPool servers;
  cache::Cache cache{{.max_entries = 1000}};
  core::Mesh mesh;
  std::unique_ptr<core::Worker> worker;
  CountingSink sink;
  net::Address upstream = *net::parse_address("192.0.2.53:53", 53);

  Fixture() {
    uv_loop_init(&loop);
    core::WorkerSettings settings;
    settings.zones = {{.zone = ".", .servers = {upstream}}};
    settings.servers = &servers;
    worker = std::make_unique<core::Worker>(&loop, settings, cache, mesh, transport, nullptr);
  }
  ~Fixture() {
    worker->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    worker.reset();
    uv_loop_close(&loop);
  }

  const Counters& counters() const { return worker->counters(); }
  uint64_t requests(bool stream, bool ipv6, uint16_t qtype) const {
    return counters()
        .requests[Counters::request_index(stream, ipv6, admin::coredns::qtype_index(qtype))]
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

sockaddr_in6 ipv6_client() {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(40000);
  return a;
}

}  // namespace

TEST_CASE("queries are counted by transport, client family and type") {
  Fixture f;
  sockaddr_in6 v6 = ipv6_client();
  f.worker->on_query(make_query("a.example", wire::kTypeA), {.sink = &f.sink});
  f.worker->on_query(make_query("a.example", wire::kTypeAaaa),
                     {.peer = reinterpret_cast<const sockaddr*>(&v6), .sink = &f.sink});
  f.worker->on_query(make_query("a.example", 99), {.sink = &f.sink});
  Bytes short_query = {0x12, 0x34, 0};  // dropped unanswered: counted, type unknown
  f.worker->on_query(short_query, {.sink = &f.sink});

  CHECK(f.requests(true, false, wire::kTypeA) == 1);
  CHECK(f.requests(true, true, wire::kTypeAaaa) == 1);
  CHECK(f.requests(true, false, 99) == 2);  // "other": type 99 and the unparsed one
  uint64_t total = 0;
  for (const core::Counter& c : f.counters().requests) total += c.get();
  CHECK(total == 4);
}

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

// Runs the loop until `done()`, for five seconds at most.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  uv_timer_t tick;  // so that the loop wakes up to look even when nothing happens
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  uint64_t deadline = uv_now(loop) + 5000;
  while (!done() && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

TEST_CASE("UDP answers of one batch are timed together, before they go out") {
  Fixture f;
  Udp udp(f);
  Bytes query = make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);  // over a stream, outside any batch
  REQUIRE(f.durations(wire::kTypeA).count() == 1);

  for (int i = 0; i < 3; ++i) udp.send(query);
  udp.send(make_query("miss.example", kTypeTxt));
  // All four arrive before the loop looks: one recvmmsg, one batch.
  REQUIRE(run_until(&f.loop, [&] { return f.durations(wire::kTypeA).count() == 4; }));
  CHECK(f.requests(false, false, wire::kTypeA) == 3);
  CHECK(f.requests(false, false, kTypeTxt) == 1);
  CHECK(udp.answers_waiting() == 3);
  // The three hits share the batch's one duration, so one bucket holds them all.
  admin::HistogramSnapshot a = f.durations(wire::kTypeA);
  CHECK(std::count_if(a.counts.begin(), a.counts.end(), [](uint64_t n) { return n >= 3; }) == 1);

  CHECK(f.durations(kTypeTxt).count() == 0);  // still upstream
  f.transport.reply(wire::kNxDomain);
  CHECK(f.durations(kTypeTxt).count() == 1);  // timed from when its batch was read
  CHECK(udp.answers_waiting() == 1);
}

TEST_CASE("an answer sent at once is timed before it is sent") {
  Fixture f;
  Bytes query = make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);
  uint64_t timed_when_sent = 0;
  f.sink.on_send = [&] { timed_when_sent = f.durations(wire::kTypeA).count(); };
  f.worker->on_query(query, {.sink = &f.sink});
  CHECK(timed_when_sent == 2);
  // Within a listener's batch too: a stream's answers are not held for the batch.
  f.worker->begin_batch();
  f.worker->on_query(query, {.sink = &f.sink});
  CHECK(timed_when_sent == 3);
  f.worker->end_batch();
  CHECK(f.durations(wire::kTypeA).count() == 3);
}

TEST_CASE("upstream replies are timed by the upstream and the reply's RCODE") {
  Fixture f;
  f.worker->on_query(make_query("one.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNoError);
  f.worker->on_query(make_query("two.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNxDomain);
  f.worker->on_query(make_query("three.example", wire::kTypeA), {.sink = &f.sink});
  f.transport.reply(wire::kNxDomain);

  upstream::ServerState& s = *f.servers.get(f.upstream);
  CHECK(s.queries == 3);
  CHECK(s.reply_durations[wire::kNoError].snapshot().count() == 1);
  CHECK(s.reply_durations[wire::kNxDomain].snapshot().count() == 2);
  CHECK(s.reply_durations[wire::kServFail].snapshot().count() == 0);
  CHECK(f.durations(wire::kTypeA).count() == 3);
}
