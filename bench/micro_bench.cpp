// Micro-benchmarks of the hit path: its parts and a whole hit through the real Worker.
//
// The parts: parsing, key hashing, cache lookup and render; the whole hit with counters and metrics
// included.
// Run: build-release/bench/micro_bench (Catch2 benchmarks; not a test, never timed in CI).
// Instructions per hit: valgrind --tool=callgrind --toggle-collect='*run_*'
//   build-release/bench/micro_bench '[.hit-loop]'   (then Ir / kHitLoop; '[.udp-hit-loop]' for
//   hits over UDP, 32 to a recvmmsg batch as under load, syscalls' user side included)
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_ENABLE_BENCHMARKING
#include <catch2/catch.hpp>

#include <uv.h>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "cache/cache.hpp"
#include "core/mesh.hpp"
#include "core/worker.hpp"
#include "net/listeners.hpp"
#include "net/uv_transport.hpp"
#include "wire/answer.hpp"
#include "wire/message.hpp"

using namespace readyns;

namespace {

// A query as dnsperf sends it: header, question, OPT (EDNS, 4096).
std::vector<uint8_t> make_query(const std::string& name) {
  std::vector<uint8_t> q = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
  uint8_t wire_name[wire::kMaxNameLength];
  size_t len = wire::name_from_text(name.data(), name.size(), wire_name, sizeof wire_name);
  q.insert(q.end(), wire_name, wire_name + len);
  q.insert(q.end(), {0, 1, 0, 1});
  q.insert(q.end(), {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
  return q;
}

// The answer the cache would hold for it: one A record.
std::vector<uint8_t> make_answer(const std::vector<uint8_t>& query) {
  std::vector<uint8_t> a(query.begin(), query.end() - wire::kOptRecordSize);
  a[2] = 0x81, a[3] = 0x80, a[7] = 1, a[11] = 0;
  a.insert(a.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 1});
  return a;
}

// Takes answers as a TCP session would, and drops them.
class NullSink final : public net::AnswerSink {
 public:
  void send(std::span<const uint8_t> answer) override { bytes += answer.size(); }
  void abandon() override {}
  void ref() override {}
  void unref() override {}
  bool open() const override { return true; }
  size_t bytes = 0;
};

// A Worker on an idle loop with one cached answer, asked for it over and over.
struct WorkerHit {
  uv_loop_t loop;
  std::unique_ptr<net::UvTransport> transport;
  upstream::ServerPool servers;
  cache::Cache cache{{.max_entries = 100000}};
  core::Mesh mesh;
  std::unique_ptr<core::Worker> worker;
  NullSink sink;
  std::vector<uint8_t> query = make_query("svc12.ns3.svc.cluster.local");

  WorkerHit() {
    uv_loop_init(&loop);
    transport = std::make_unique<net::UvTransport>(&loop, net::UvTransportSettings{});
    core::WorkerSettings settings;
    settings.zones = {{.zone = ".", .servers = {*net::parse_address("127.0.0.1:53", 53)}}};
    settings.servers = &servers;
    worker = std::make_unique<core::Worker>(&loop, settings, cache, mesh, *transport, nullptr);
    std::vector<uint8_t> answer = make_answer(query);
    std::vector<uint16_t> offsets = {uint16_t(answer.size() - 10)};
    wire::Query q;
    wire::parse_query(query, q);
    uint8_t key_bytes[cache::kMaxKeySize];
    cache.insert(cache::make_key(q.question, false, key_bytes), uint32_t(uv_now(&loop) / 1000),
                 3600, answer, offsets);
  }
  ~WorkerHit() {
    worker->close();
    transport->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    worker.reset();
    transport.reset();
    uv_loop_close(&loop);
  }
};

constexpr int kHitLoop = 100000;

constexpr int kBatch = 32;  // the UDP listener's recvmmsg batch

// A UDP listener feeding the worker, and a client on 127.0.0.1 asking it kBatch queries at a time.
struct UdpHits {
  WorkerHit& h;
  std::unique_ptr<net::UdpListener> listener;
  sockaddr_storage server{};
  int client;

  explicit UdpHits(WorkerHit& hit) : h(hit) {
    int fd = net::bind_socket(*net::parse_address("127.0.0.1:0", 0), SOCK_DGRAM);
    socklen_t len = sizeof server;
    getsockname(fd, reinterpret_cast<sockaddr*>(&server), &len);
    listener = std::make_unique<net::UdpListener>(&h.loop, fd, *h.worker);
    client = net::bind_socket(*net::parse_address("127.0.0.1:0", 0), SOCK_DGRAM);
  }
  ~UdpHits() {
    listener->close();
    ::close(client);
  }
};

// Out of line, so callgrind can count exactly these instructions. Each hit is a batch of its own
// (the most a hit's timing can cost).
[[gnu::noinline]] void run_hits(WorkerHit& h, int n) {
  for (int i = 0; i < n; ++i) h.worker->on_query(h.query, net::ReplyTo{.sink = &h.sink});
}

// Sends kBatch queries, lets the listener take them in one recvmmsg and answer them in one
// sendmmsg, and reads the answers; `n` queries in all.
[[gnu::noinline]] void run_udp_batches(UdpHits& u, int n) {
  mmsghdr out[kBatch], in[kBatch];
  iovec query{u.h.query.data(), u.h.query.size()};
  static uint8_t answers[kBatch][512];
  iovec answer_vectors[kBatch];
  for (int i = 0; i < kBatch; ++i) {
    out[i].msg_hdr = {.msg_name = &u.server,
                      .msg_namelen = sizeof(sockaddr_in),
                      .msg_iov = &query,
                      .msg_iovlen = 1,
                      .msg_control = nullptr,
                      .msg_controllen = 0,
                      .msg_flags = 0};
    answer_vectors[i] = {answers[i], sizeof answers[i]};
    in[i].msg_hdr = {};
    in[i].msg_hdr.msg_iov = &answer_vectors[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  for (int sent = 0; sent < n; sent += kBatch) {
    ::sendmmsg(u.client, out, kBatch, 0);
    uv_run(&u.h.loop, UV_RUN_NOWAIT);
    for (int got = 0; got < kBatch;) {
      int r = ::recvmmsg(u.client, in, unsigned(kBatch - got), 0, nullptr);
      if (r <= 0) break;
      got += r;
    }
  }
}

}  // namespace

TEST_CASE("a whole hit through the worker") {
  WorkerHit h;
  run_hits(h, 1);
  REQUIRE(h.sink.bytes > 0);
  BENCHMARK("Worker::on_query, one hit") {
    h.worker->on_query(h.query, net::ReplyTo{.sink = &h.sink});
  };
  UdpHits udp(h);
  BENCHMARK("32 UDP hits in one batch, syscalls included (divide by 32)") {
    run_udp_batches(udp, kBatch);
  };
}

TEST_CASE("hit loop for callgrind", "[.hit-loop]") {
  WorkerHit h;
  run_hits(h, kHitLoop);
  CHECK(h.sink.bytes > 0);
}

TEST_CASE("UDP hit loop for callgrind", "[.udp-hit-loop]") {
  WorkerHit h;
  UdpHits udp(h);
  run_udp_batches(udp, kHitLoop);
}

TEST_CASE("hit path") {
  std::vector<uint8_t> query = make_query("svc12.ns3.svc.cluster.local");
  std::vector<uint8_t> answer = make_answer(query);
  std::vector<uint16_t> offsets = {uint16_t(answer.size() - 10)};
  std::vector<uint8_t> out(wire::kMaxMessageSize);
  cache::Cache cache({.max_entries = 100000});
  wire::Query q;
  REQUIRE(wire::parse_query(query, q) == wire::QueryCheck::kOk);
  uint8_t key_bytes[cache::kMaxKeySize];
  cache::Key key = cache::make_key(q.question, false, key_bytes);
  cache.insert(key, 100, 30, answer, offsets);

  BENCHMARK("parse_query") {
    return wire::parse_query(query, q);
  };
  BENCHMARK("make_key") {
    return cache::make_key(q.question, false, key_bytes).hash;
  };
  BENCHMARK("cache find + render_answer") {
    size_t len = 0;
    cache.find(key, 105, [&](const cache::EntryView& e) {
      len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, 4096, out);
    });
    return len;
  };
  BENCHMARK("whole hit: parse, key, find, render") {
    wire::parse_query(query, q);
    cache::Key k = cache::make_key(q.question, q.edns.do_bit, key_bytes);
    size_t len = 0;
    cache.find(k, 105, [&](const cache::EntryView& e) {
      len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, q.udp_limit(), out);
    });
    return len;
  };
}

TEST_CASE("miss path") {
  std::vector<uint8_t> query = make_query("svc12.ns3.svc.cluster.local");
  std::vector<uint8_t> reply = make_answer(query);
  uint8_t root = 0;
  wire::PreparedAnswer prepared;
  BENCHMARK("prepare_answer") {
    return wire::prepare_answer(reply, wire::TtlPolicy{}, {&root, 1}, prepared);
  };
}
