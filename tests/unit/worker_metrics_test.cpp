// Unit tests of what a Worker counts per query: requests by transport, family and type, request
// durations (batched answers timed together, later ones from when their query was read), and the
// upstream replies by RCODE. A scripted transport stands in for the network.
#include <uv.h>
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
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
  void send(std::span<const uint8_t>) override { ++answers; }
  void abandon() override {}
  void ref() override {}
  void unref() override {}
  bool open() const override { return true; }
  int answers = 0;
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

TEST_CASE("UDP queries are counted as udp, by the peer's family") {
  Fixture f;
  int fd = net::bind_socket(*net::parse_address("127.0.0.1:0", 0), SOCK_DGRAM);
  REQUIRE(fd >= 0);
  auto listener = std::make_unique<net::UdpListener>(&f.loop, fd, *f.worker);
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  client.sin_port = htons(9);  // discard: nobody reads the answer
  f.worker->on_query(make_query("a.example", wire::kTypeSrv),
                     {.udp = listener.get(), .peer = reinterpret_cast<const sockaddr*>(&client)});
  CHECK(f.requests(false, false, wire::kTypeSrv) == 1);
  CHECK(f.requests(true, false, wire::kTypeSrv) == 0);
  listener->close();
}

TEST_CASE("answers within a batch are timed together when it ends") {
  Fixture f;
  Bytes query = make_query("hit.example", wire::kTypeA);
  f.cache_answer(query);
  REQUIRE(f.durations(wire::kTypeA).count() == 1);  // the miss, answered outside any batch

  f.worker->begin_batch();
  for (int i = 0; i < 3; ++i) f.worker->on_query(query, {.sink = &f.sink});
  f.worker->on_query(make_query("hit.example", kTypeTxt), {.sink = &f.sink});  // a miss
  CHECK(f.sink.answers == 4);                     // the three hits went out...
  CHECK(f.durations(wire::kTypeA).count() == 1);  // ...but are timed at the batch's end
  f.worker->end_batch();

  admin::HistogramSnapshot a = f.durations(wire::kTypeA);
  CHECK(a.count() == 4);
  // The three share one duration: one bucket holds them all (the miss's may be elsewhere).
  CHECK(std::count_if(a.counts.begin(), a.counts.end(), [](uint64_t n) { return n >= 3; }) == 1);
  CHECK(f.durations(kTypeTxt).count() == 0);  // still upstream
  f.transport.reply(wire::kNxDomain);
  CHECK(f.durations(kTypeTxt).count() == 1);  // timed from when it was read
  CHECK(f.sink.answers == 5);
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
