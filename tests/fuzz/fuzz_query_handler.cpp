// fuzz_query_handler: end to end through core::Worker.
//
// Two workers share a cache and a mesh; clients reach them through net::AnswerSink (no sockets),
// upstream is a fake upstream::Transport whose replies, failures and clock come from the input.
// Checked: every query that is not dropped is answered exactly once by the time everything has
// timed out, each answer carries the client's ID and question (in its case), references to sinks
// balance, no exchange is left behind, and the queries sent upstream are well formed.
//
// Input: 4 setting bytes, then operations, each an opcode byte and its operands (see `run`).
#include <uv.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache.hpp"
#include "core/mesh.hpp"
#include "core/parts.hpp"
#include "core/worker.hpp"
#include "fuzz_common.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/slice.hpp"
#include "net/address.hpp"
#include "net/listeners.hpp"
#include "upstream/transport.hpp"
#include "wire/message.hpp"

using namespace readyns;
using fuzz::rd16;

namespace {

// ---- Input -----------------------------------------------------------------------------------

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() {
    uint16_t hi = byte();
    return uint16_t(hi << 8 | byte());
  }
  std::vector<uint8_t> bytes(size_t k) {
    k = std::min(k, n);
    std::vector<uint8_t> out(p, p + k);
    p += k, n -= k;
    return out;
  }
};

// ---- The client side -------------------------------------------------------------------------

// One client query and where its answer went.
struct Client final : net::AnswerSink {
  std::vector<uint8_t> query;
  wire::QueryCheck check = wire::QueryCheck::kDrop;
  wire::Query parsed;
  unsigned refs = 1;  // the client's own
  unsigned answers = 0, abandons = 0;
  bool closed = false;

  void send(std::span<const uint8_t> a) override {
    FUZZ_CHECK(refs > 0);
    if (closed) return;  // a closed TCP session ignores it too
    ++answers;
    FUZZ_CHECK(answers == 1);
    FUZZ_CHECK(check != wire::QueryCheck::kDrop);
    FUZZ_CHECK(a.size() >= 12 && a.size() <= wire::kMaxMessageSize);
    FUZZ_CHECK(rd16(&a[0]) == parsed.id);
    FUZZ_CHECK(a[2] & wire::kFlagQr);
    if (parsed.question_valid) {
      const wire::Question& q = parsed.question;
      FUZZ_CHECK(rd16(&a[4]) == 1 && a.size() >= 12u + q.name_len + 4);
      FUZZ_CHECK(std::memcmp(&a[12], query.data() + 12, q.name_len + 4u) == 0);
    }
    if (check != wire::QueryCheck::kOk) FUZZ_CHECK(rd16(&a[6]) == 0);
    if (check == wire::QueryCheck::kOk && (a[3] & 0x0f) == wire::kNoError &&
        !(a[2] & wire::kFlagTc)) {
      // A real answer: every record walks.
      fuzz::OracleMessage m;
      FUZZ_CHECK(fuzz::oracle_walk(a, m));
    }
  }
  void abandon() override {
    FUZZ_CHECK(refs > 0);
    ++abandons;
    FUZZ_CHECK(check == wire::QueryCheck::kDrop && abandons == 1);
  }
  void ref() override {
    FUZZ_CHECK(refs > 0);
    ++refs;
  }
  void unref() override {
    FUZZ_CHECK(refs > 1);  // the client's own reference is never the worker's to drop
    --refs;
  }
  bool open() const override { return !closed; }
};

// ---- The upstream side -----------------------------------------------------------------------

struct Pending {
  upstream::Exchange* exchange;
  uint16_t id;
  std::vector<uint8_t> query;  // as sent, with our ID
  upstream::Protocol protocol;
  uint64_t deadline;
};

class FakeTransport final : public upstream::Transport {
 public:
  void send(const net::Address&, upstream::Protocol protocol, std::span<uint8_t> query,
            uint32_t timeout_ms, upstream::Exchange* exchange) override {
    FUZZ_CHECK(timeout_ms > 0 && timeout_ms <= 60000);
    uint16_t id = next_id_++;
    wire::put16(query.data(), id);
    // The forwarder's query: one question, RD, EDNS (but for the SOA of a health probe).
    wire::Query q;
    FUZZ_CHECK(wire::parse_query(query, q) == wire::QueryCheck::kOk);
    FUZZ_CHECK(q.rd() && (q.edns.present || q.question.qtype == wire::kTypeSoa));
    FUZZ_CHECK(std::none_of(pending_.begin(), pending_.end(),
                            [&](const Pending& p) { return p.exchange == exchange; }));
    pending_.push_back({exchange, id, {query.begin(), query.end()}, protocol, now_ + timeout_ms});
  }
  uint64_t now_ms() const override { return now_; }

  std::vector<Pending>& pending() { return pending_; }

  // Takes exchange `i` out before calling it: it may end, and may send again from inside.
  void reply(size_t i, std::span<const uint8_t> bytes) {
    Pending p = std::move(pending_[i]);
    pending_.erase(pending_.begin() + long(i));
    if (!p.exchange->on_reply(p.id, bytes)) pending_.push_back(std::move(p));
  }
  void fail(size_t i, upstream::Failure failure) {
    Pending p = std::move(pending_[i]);
    pending_.erase(pending_.begin() + long(i));
    p.exchange->on_failure(failure);
  }
  // Moves the clock, timing out exchanges in deadline order as a real transport would.
  void advance(uint64_t ms) {
    uint64_t target = now_ + ms;
    for (;;) {
      auto due = std::min_element(
          pending_.begin(), pending_.end(),
          [](const Pending& a, const Pending& b) { return a.deadline < b.deadline; });
      if (due == pending_.end() || due->deadline > target) break;
      now_ = std::max(now_, due->deadline);
      fail(size_t(due - pending_.begin()), upstream::Failure::kTimeout);
    }
    now_ = target;
  }

 private:
  std::vector<Pending> pending_;
  uint64_t now_ = 1'000'000'000;
  uint16_t next_id_ = 0x4000;
};

// ---- Fixed parts -----------------------------------------------------------------------------

const char* const kNames[] = {
    "www.example.com.",
    "example.com.",
    "a.b.example.org.",
    "hl0.ns0.svc.cluster.local.",
    "web-0.hl0.ns0.svc.cluster.local.",
    "other.ns0.svc.cluster.local.",
    ".",
    "_http._tcp.hl0.ns0.svc.cluster.local.",
};
constexpr uint16_t kTypes[] = {1, 28, 33, 15, 6, 16, 255, 2};
constexpr uint32_t kTtls[] = {0, 1, 5, 30, 300, 86400, 0x80000000u, 0xffffffffu};
constexpr uint64_t kSteps[] = {1, 10, 100, 250, 999, 1000, 5000, 60000};

k8s::EndpointTable* table = nullptr;
uv_loop_t* loop = nullptr;

std::vector<uint8_t> wire_name(const char* text) {
  uint8_t buf[wire::kMaxNameLength];
  size_t len = std::strcmp(text, ".") == 0
                   ? (buf[0] = 0, 1)
                   : wire::name_from_text(text, std::strlen(text), buf, sizeof buf);
  return {buf, buf + len};
}

void add16(std::vector<uint8_t>& m, uint16_t v) {
  m.push_back(uint8_t(v >> 8));
  m.push_back(uint8_t(v));
}
void add32(std::vector<uint8_t>& m, uint32_t v) {
  add16(m, uint16_t(v >> 16));
  add16(m, uint16_t(v));
}

// A client query from the name and type tables, in a case and with flags from the input.
std::vector<uint8_t> templated_query(Reader& in) {
  std::vector<uint8_t> name = wire_name(kNames[in.byte() % std::size(kNames)]);
  uint8_t mask = in.byte(), flags = in.byte();
  for (size_t i = 0; i < name.size(); i += 1 + name[i]) {
    for (size_t j = 1; j <= name[i]; ++j) {
      if ((mask >> ((i + j) % 8)) & 1 && name[i + j] >= 'a' && name[i + j] <= 'z')
        name[i + j] ^= 0x20;
    }
  }
  std::vector<uint8_t> m;
  add16(m, 0);
  m.push_back((flags & 1) ? wire::kFlagRd : 0);
  m.push_back((flags & 2) ? wire::kFlagCd : 0);
  add16(m, 1);
  add16(m, 0);
  add16(m, 0);
  add16(m, (flags & 4) ? 1 : 0);
  m.insert(m.end(), name.begin(), name.end());
  add16(m, kTypes[(flags >> 4) % std::size(kTypes)]);
  add16(m, (flags & 0x80) ? 3 : 1);
  if (flags & 4) {
    m.push_back(0);
    add16(m, wire::kTypeOpt);
    add16(m, (flags & 8) ? 4096 : 512);
    m.push_back(0);
    m.push_back(0);
    m.push_back((flags & 0x40) ? 0x80 : 0);  // DO
    m.push_back(0);
    add16(m, 0);
  }
  return m;
}

// Names a templated reply may use: the question by pointer, beneath it, and out of zone.
std::vector<uint8_t> reply_name(uint8_t choice) {
  switch (choice % 5) {
    case 0:
      return {0xc0, 0x0c};
    case 1:
      return {3, 'c', 'd', 'n', 0xc0, 0x0c};
    case 2:
      return {3, 'c', 'd', 'n', 4, 'e', 'v', 'i', 'l', 3, 'c', 'o', 'm', 0};
    case 3:
      return {0};
    default:
      return {4, 'e', 'v', 'i', 'l', 3, 'c', 'o', 'm', 0};
  }
}

// A reply built around the question exchange `p` asked: header and question echoed, records
// of kinds chosen by the input.
std::vector<uint8_t> templated_reply(const Pending& p, Reader& in) {
  uint8_t flags = in.byte(), rcode = in.byte();
  wire::Query q;
  wire::parse_query(p.query, q);
  std::vector<uint8_t> m(p.query.begin(), p.query.begin() + long(q.question_end));
  if (flags & 0x10) wire::put16(&m[0], uint16_t(p.id ^ 1));  // a forged or stray ID
  m[2] = uint8_t(wire::kFlagQr | wire::kFlagRd | ((flags & 1) ? wire::kFlagTc : 0) |
                 ((flags & 2) ? wire::kFlagAa : 0));
  m[3] = uint8_t(wire::kFlagRa | (rcode & 0x0f));
  unsigned counts[3] = {unsigned(in.byte() % 5), unsigned(in.byte() % 3), unsigned(in.byte() % 3)};
  for (int s = 0; s < 3; ++s) wire::put16(&m[6 + 2 * s], uint16_t(counts[s]));
  for (int s = 0; s < 3; ++s) {
    for (unsigned i = 0; i < counts[s]; ++i) {
      uint8_t kind = in.byte();
      std::vector<uint8_t> owner = reply_name(kind >> 4);
      uint32_t ttl = kTtls[in.byte() % std::size(kTtls)];
      std::vector<uint8_t> rdata;
      uint16_t type;
      switch (kind % 8) {
        case 0:
          type = wire::kTypeA, rdata = {192, 0, 2, uint8_t(i)};
          break;
        case 1:
          type = wire::kTypeAaaa, rdata.assign(16, 0x20);
          break;
        case 2:
          type = wire::kTypeCname, rdata = reply_name(in.byte());
          break;
        case 3: {
          type = wire::kTypeSoa;
          rdata = {2, 'n', 's', 0xc0, 0x0c, 4, 'h', 'o', 's', 't', 0xc0, 0x0c};
          for (int k = 0; k < 4; ++k) add32(rdata, 100);
          add32(rdata, kTtls[in.byte() % std::size(kTtls)]);
          break;
        }
        case 4:
          type = wire::kTypeOpt, owner = {0}, ttl = 0;
          break;
        case 5:
          type = wire::kTypeNs, rdata = reply_name(in.byte());
          break;
        case 6:
          type = 16, rdata = {3, 'a', 'b', 'c'};
          break;
        default:
          type = in.u16(), rdata = in.bytes(in.byte() % 16);
          break;
      }
      m.insert(m.end(), owner.begin(), owner.end());
      add16(m, type);
      add16(m, type == wire::kTypeOpt ? 1232 : wire::kClassIn);
      add32(m, ttl);
      add16(m, uint16_t(rdata.size()));
      m.insert(m.end(), rdata.begin(), rdata.end());
    }
  }
  return m;
}

void run_loop() {
  uv_run(loop, UV_RUN_NOWAIT);
}

void run(Reader& in) {
  uint8_t s0 = in.byte(), s1 = in.byte(), s2 = in.byte(), s3 = in.byte();
  core::WorkerSettings settings;
  settings.forwarder.randomize_case = s0 & 1;
  // --upstream-timeout accepts 10 ms and up; below 250 ms the forwarder's std::clamp() once got
  // lo > hi when a server had an RTT (undefined; _GLIBCXX_ASSERTIONS aborts).
  settings.forwarder.attempt_timeout_ms =
      std::array<uint32_t, 4>{10, 100, 1000, 250}[(s0 >> 2) & 3];
  // 10 ms is the smallest --resolve-timeout the configuration accepts; with it the forwarder once
  // resolved inside resolve(), before the worker had added the waiter.
  settings.forwarder.resolve_timeout_ms =
      std::array<uint32_t, 4>{10, 300, 1500, 4000}[(s0 >> 4) & 3];
  settings.stale_answer_timeout_ms = std::array<uint32_t, 4>{0, 1, 500, 1800}[(s0 >> 6) & 3];
  settings.max_in_flight = std::array<size_t, 4>{1, 2, 4, 10000}[s1 & 3];
  settings.max_waiters_per_miss = std::array<size_t, 4>{1, 2, 3, 1000}[(s1 >> 2) & 3];
  settings.max_prefetches = std::array<size_t, 4>{0, 1, 2, 64}[(s1 >> 4) & 3];
  settings.ttl = std::array<wire::TtlPolicy, 4>{wire::TtlPolicy{0, 30, 5}, wire::TtlPolicy{0, 0, 0},
                                                wire::TtlPolicy{5, 3600, 60},
                                                wire::TtlPolicy{0, 30, 5}}[(s1 >> 6) & 3];
  auto addr = [](const char* text) { return *net::parse_address(text); };
  settings.zones = {{".", {addr("10.0.0.1:53"), addr("10.0.0.2:53")}},
                    {"example.org", {addr("10.0.0.3:53")}},
                    {"cluster.local", {addr("10.0.0.4:53"), addr("10.0.0.1:53")}}};
  bool local = s0 & 2;

  std::vector<std::unique_ptr<Client>> clients;  // outlive the workers: waiters hold references
  cache::Cache cache({.max_entries = size_t(1 + s2 % 16),
                      .shards = unsigned(1 + s2 / 64),
                      .min_entries_per_shard = 1,  // several shards however small
                      .stale_max = std::array<uint32_t, 4>{0, 10, 3600, 1}[s3 & 3]});
  core::Mesh mesh;
  upstream::ServerPool pool;  // upstream health, shared by both workers
  settings.servers = &pool;
  FakeTransport transport;
  core::TableAnswerer answerer(*table);
  std::optional<core::Worker> workers[2];
  for (auto& w : workers)
    w.emplace(loop, settings, cache, mesh, transport, local ? &answerer : nullptr);

  for (unsigned steps = 0; !in.empty() && steps < 400; ++steps) {
    uint8_t op = in.byte();
    core::Worker& worker = *workers[(op >> 7) & 1];
    switch (op % 8) {
      case 0:
      case 1: {  // a client query, from the tables or raw
        auto c = std::make_unique<Client>();
        c->query = (op % 8 == 0) ? templated_query(in) : in.bytes(in.byte());
        if (c->query.size() >= 2) wire::put16(c->query.data(), uint16_t(clients.size()));
        c->check = wire::parse_query(c->query, c->parsed);
        Client* client = c.get();
        clients.push_back(std::move(c));
        worker.on_query(client->query, {.sink = client});
        break;
      }
      case 2:
      case 3: {  // a reply to an outstanding exchange, templated or raw
        if (transport.pending().empty()) break;
        size_t i = in.byte() % transport.pending().size();
        std::vector<uint8_t> reply =
            (op % 8 == 2) ? templated_reply(transport.pending()[i], in) : in.bytes(in.u16() % 1024);
        transport.reply(i, reply);
        break;
      }
      case 4:  // a network failure
        if (!transport.pending().empty()) {
          transport.fail(in.byte() % transport.pending().size(), upstream::Failure::kNetwork);
        }
        break;
      case 5:  // time passes
        transport.advance(kSteps[in.byte() % std::size(kSteps)]);
        break;
      case 6:  // a client goes away
        if (!clients.empty()) clients[in.byte() % clients.size()]->closed = true;
        break;
      case 7:  // the loop turns: outcomes cross between workers
        run_loop();
        break;
    }
  }

  // Everything times out in the end: every resolution must finish.
  for (int round = 0; round < 100 && (!transport.pending().empty() || workers[0]->in_flight() ||
                                      workers[1]->in_flight());
       ++round) {
    transport.advance(10000);
    run_loop();
  }
  FUZZ_CHECK(transport.pending().empty());
  FUZZ_CHECK(workers[0]->in_flight() == 0 && workers[1]->in_flight() == 0);
  for (const auto& c : clients) {
    FUZZ_CHECK(c->refs == 1);  // every waiter let go of its client
    if (c->check == wire::QueryCheck::kDrop) {
      FUZZ_CHECK(c->answers == 0 && c->abandons == 1);
    } else if (!c->closed) {
      FUZZ_CHECK(c->answers == 1);  // never silence
    }
  }
  for (auto& w : workers) w.reset();
  run_loop();  // the workers' handles close
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  loop = new uv_loop_t;
  uv_loop_init(loop);
  // The endpoint table: one headless Service with two ready endpoints and a named port.
  table = new k8s::EndpointTable({.cluster_domain = "cluster.local", .ttl = 5});
  auto list = k8s::parse_slice_list(R"({"metadata":{"resourceVersion":"1"},"items":[{
    "metadata":{"name":"hl0-a","namespace":"ns0","labels":{"kubernetes.io/service-name":"hl0",
      "service.kubernetes.io/headless":""}},
    "addressType":"IPv4",
    "endpoints":[{"addresses":["10.0.0.1"],"hostname":"web-0","conditions":{"ready":true}},
                 {"addresses":["10.0.0.2"],"conditions":{"ready":true}}],
    "ports":[{"name":"http","protocol":"TCP","port":8080}]}]})");
  FUZZ_CHECK(list && list->items.size() == 1);
  table->replace_all("", std::move(list->items));
  table->mark_synced();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  run(in);
  return 0;
}
