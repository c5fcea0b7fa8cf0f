// A worker: query handling from parse to answer, with the mesh of coalesced misses.
#include "core/worker.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <bit>
#include <cstring>

namespace readyns::core {

// A client waiting for a miss to resolve: enough of its query to answer it later.
struct Worker::Waiter {
  wire::Query query;
  uint8_t name[wire::kMaxNameLength];  // the question name as the client cased it
  net::UdpListener* udp = nullptr;
  sockaddr_storage peer{};
  net::AnswerSink* sink = nullptr;  // holds a reference until answered
  uint64_t stale_after_ms = 0;      // non-zero: a stale answer may go out from then on
  uint64_t asked_ns = 0;            // when the query was read

  Waiter(const wire::Query& q, const net::ReplyTo& to, uint64_t asked)
      : query(q), udp(to.udp), sink(to.sink), asked_ns(asked) {
    std::memcpy(name, q.question.name, q.question.name_len);
    query.question.name = name;
    if (to.peer) {
      std::memcpy(&peer, to.peer,
                  to.peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    }
    if (sink) sink->ref();
  }
  Waiter(Waiter&& o) noexcept
      : query(o.query),
        udp(o.udp),
        peer(o.peer),
        sink(o.sink),
        stale_after_ms(o.stale_after_ms),
        asked_ns(o.asked_ns) {
    std::memcpy(name, o.name, sizeof name);
    query.question.name = name;
    o.sink = nullptr;
  }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(Waiter&& o) noexcept {
    std::swap(query, o.query);
    std::swap(name, o.name);
    query.question.name = name;
    o.query.question.name = o.name;
    std::swap(udp, o.udp);
    std::swap(peer, o.peer);
    std::swap(sink, o.sink);
    std::swap(stale_after_ms, o.stale_after_ms);
    std::swap(asked_ns, o.asked_ns);
    return *this;
  }
  ~Waiter() {
    if (sink) sink->unref();
  }
  net::ReplyTo reply_to() const {
    return {.udp = udp, .peer = reinterpret_cast<const sockaddr*>(&peer), .sink = sink};
  }
};

// One miss in flight upstream and everyone waiting for it.
struct Worker::Miss final : upstream::Resolution {
  Worker* worker;
  std::string key;  // question bytes, then the DO bit
  uint64_t hash;
  std::vector<Waiter> waiters;
  bool leading = false;   // this worker resolves it; otherwise another worker's outcome comes
  bool prefetch = false;  // started by a hit to refresh the entry, not by a miss

  cache::Key cache_key() const {
    return {reinterpret_cast<const uint8_t*>(key.data()), uint16_t(key.size() - 1),
            key.back() == '1', hash};
  }

  Miss(Worker* w, std::string k, uint64_t h) : worker(w), key(std::move(k)), hash(h) {}
  void on_resolved(Result result) override { worker->complete(*this, result); }
};

Worker::Worker(uv_loop_t* loop, WorkerSettings settings, cache::Cache& cache, Mesh& mesh,
               upstream::Transport& transport, const LocalAnswerer* local)
    : loop_(loop),
      settings_(std::move(settings)),
      cache_(cache),
      mesh_(mesh),
      transport_(transport),
      forwarder_(std::make_unique<upstream::Forwarder>(settings_.forwarder, settings_.zones,
                                                       *settings_.servers, transport)),
      local_(local),
      rrl_(settings_.rrl_rate, settings_.rrl_slip),
      out_(wire::kMaxMessageSize),
      stale_timer_(new uv_timer_t),
      mailbox_async_(new uv_async_t) {
  uv_timer_init(loop_, stale_timer_);
  stale_timer_->data = this;
  uv_async_init(loop_, mailbox_async_,
                [](uv_async_t* a) { static_cast<Worker*>(a->data)->drain_mailbox(); });
  mailbox_async_->data = this;
}

Worker::~Worker() {
  close();
  for (auto& [key, miss] : in_flight_) delete miss;
}

void Worker::reconfigure(WorkerSettings settings) {
  // The old forwarder stays: misses and health probes in flight still call back into it.
  retired_forwarders_.push_back(std::move(forwarder_));
  forwarder_ = std::make_unique<upstream::Forwarder>(settings.forwarder, settings.zones,
                                                     *settings.servers, transport_);
  if (settings.rrl_rate != settings_.rrl_rate || settings.rrl_slip != settings_.rrl_slip) {
    rrl_ = RateLimiter(settings.rrl_rate, settings.rrl_slip);
  }
  settings_ = std::move(settings);
}

void Worker::close() {
  if (closed_) return;
  closed_ = true;
  mesh_.leave(this);
  uv_close(reinterpret_cast<uv_handle_t*>(stale_timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(mailbox_async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void Worker::add_listeners(const std::vector<int>& udp_fds, const std::vector<int>& tcp_fds,
                           net::TcpSettings tcp, net::ConnectionLimits& limits) {
  for (int fd : udp_fds) udp_.push_back(std::make_unique<net::UdpListener>(loop_, fd, *this));
  for (int fd : tcp_fds) {
    tcp_.push_back(std::make_unique<net::TcpListener>(loop_, fd, *this, tcp, limits));
  }
}

void Worker::close_listeners() {
  for (auto& l : udp_) l->close();
  for (auto& l : tcp_) l->close();
}

void Worker::respond(const wire::Query& q, const net::ReplyTo& to, std::span<const uint8_t> answer,
                     size_t type, uint64_t asked_ns) {
  uint8_t slip[wire::kHeaderSize + wire::kMaxNameLength + 4 + wire::kOptRecordSize];
  if (to.udp) {
    switch (rrl_.check(to.peer, transport_.now_ms())) {
      case RateLimiter::Verdict::kSend:
        break;
      case RateLimiter::Verdict::kDrop:
        return counters_.rrl_dropped.add();
      case RateLimiter::Verdict::kSlip:
        // Its own buffer: `answer` may live in out_.
        answer = {slip, wire::build_empty_answer(q, wire::kNoError, slip)};
        slip[2] |= wire::kFlagTc;
        counters_.rrl_slipped.add();
        break;
    }
  }
  // Counted and timed before the answer leaves, so a client that has it sees it in /metrics.
  counters_.responses_by_rcode[wire::rcode_of(answer.data())].add();
  if (to.udp && in_batch_ && asked_ns == batch_started_ns_ && to.udp->holds(answer.size())) {
    // Goes out with the rest of the batch it was read in: timed with them at its end.
    ++batch_answers_[type];
    batch_types_ |= uint32_t(1) << type;
  } else {
    counters_.request_duration[type].observe_ns(admin::monotonic_ns() - asked_ns);
  }
  if (to.sink) {
    to.sink->send(answer);
  } else {
    to.udp->send(to.peer, answer);
  }
}

void Worker::respond_empty(const wire::Query& q, uint64_t asked_ns, const net::ReplyTo& to,
                           uint16_t rcode) {
  size_t len = wire::build_empty_answer(q, rcode, out_);
  respond(q, to, {out_.data(), len}, admin::coredns::qtype_index(q.question.qtype), asked_ns);
}

void Worker::begin_batch() {
  in_batch_ = true;
  batch_started_ns_ = admin::monotonic_ns();
}

void Worker::end_batch() {
  in_batch_ = false;
  if (!batch_types_) return;
  uint64_t took_ns = admin::monotonic_ns() - batch_started_ns_;
  for (uint32_t types = batch_types_; types; types &= types - 1) {
    int type = std::countr_zero(types);
    counters_.request_duration[type].observe_ns(took_ns, batch_answers_[type]);
    batch_answers_[type] = 0;
  }
  batch_types_ = 0;
}

void Worker::on_query(std::span<const uint8_t> msg, const net::ReplyTo& to) {
  bool own_batch = !in_batch_;
  if (own_batch) begin_batch();
  handle_query(msg, to);
  if (own_batch) end_batch();
}

void Worker::handle_query(std::span<const uint8_t> msg, const net::ReplyTo& to) {
  wire::Query q;
  wire::QueryCheck check = wire::parse_query(msg, q);
  // Unparsed queries have type 0: "other", as CoreDNS counts them.
  const size_t type = admin::coredns::qtype_index(q.question.qtype);
  counters_
      .requests[Counters::request_index(to.sink != nullptr,
                                        to.peer && to.peer->sa_family == AF_INET6, type)]
      .add();
  const uint64_t asked_ns = batch_started_ns_;
  switch (check) {
    case wire::QueryCheck::kOk:
      break;
    case wire::QueryCheck::kDrop:
      counters_.dropped.add();
      if (to.sink) to.sink->abandon();
      return;
    case wire::QueryCheck::kFormErr:
      return respond_empty(q, asked_ns, to, wire::kFormErr);
    case wire::QueryCheck::kNotImp:
      return respond_empty(q, asked_ns, to, wire::kNotImp);
    case wire::QueryCheck::kBadVers:
      return respond_empty(q, asked_ns, to, wire::kExtRcodeBadVers);
    case wire::QueryCheck::kRefused:
      return respond_empty(q, asked_ns, to, wire::kRefused);
  }
  size_t limit = to.sink ? wire::kMaxMessageSize : q.udp_limit();

  if (local_) {
    if (size_t len = local_->answer(q, out_, limit)) {
      if (settings_.query_log) log_query(q, to, "endpoints");
      return respond(q, to, {out_.data(), len}, type, asked_ns);
    }
  }

  uint8_t key_bytes[cache::kMaxKeySize];
  cache::Key key = cache::make_key(q.question, q.edns.do_bit, key_bytes);
  size_t len = 0;
  bool refresh = false;
  cache::Found found = cache_.find(key, now_seconds(), [&](const cache::EntryView& e) {
    len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, limit, out_);
    refresh = e.ttl >= 10 && uint64_t(e.elapsed) * 10 >= uint64_t(e.ttl) * 9;
  });
  if (found == cache::Found::kFresh && len) {
    counters_.cache_hits.add();
    if (settings_.query_log) log_query(q, to, "cache");
    respond(q, to, {out_.data(), len}, type, asked_ns);
    if (refresh && prefetches_ < settings_.max_prefetches) {
      std::string mesh_key(reinterpret_cast<const char*>(key.question), key.len);
      mesh_key.push_back(key.do_bit ? '1' : '0');
      if (!in_flight_.count(mesh_key)) {
        if (Miss* miss = start_miss(key, std::move(mesh_key))) {
          miss->prefetch = true;
          ++prefetches_;
          counters_.prefetches.add();
        }
      }
    }
    return;
  }
  counters_.cache_misses.add();
  if (settings_.query_log)
    log_query(q, to, found == cache::Found::kStale ? "stale-refresh" : "upstream");

  std::string mesh_key(reinterpret_cast<const char*>(key.question), key.len);
  mesh_key.push_back(key.do_bit ? '1' : '0');
  Miss* miss;
  if (auto it = in_flight_.find(mesh_key); it != in_flight_.end()) {
    miss = it->second;
    if (miss->waiters.size() >= settings_.max_waiters_per_miss) {
      return respond_empty(q, asked_ns, to, wire::kServFail);
    }
    counters_.coalesced.add();
  } else if (in_flight_.size() >= settings_.max_in_flight) {
    return respond_empty(q, asked_ns, to, wire::kServFail);
  } else {
    miss = start_miss(key, std::move(mesh_key));
  }
  Waiter& w = miss->waiters.emplace_back(q, to, asked_ns);
  if (found == cache::Found::kStale && settings_.stale_answer_timeout_ms > 0) {
    w.stale_after_ms = transport_.now_ms() + settings_.stale_answer_timeout_ms;
    if (stale_waiters_++ == 0) {
      uv_timer_start(
          stale_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->on_stale_tick(); }, 100,
          100);
    }
  }
}

Worker::Miss* Worker::start_miss(const cache::Key& key, std::string mesh_key) {
  auto* miss = new Miss(this, mesh_key, key.hash);
  in_flight_.emplace(std::move(mesh_key), miss);
  miss->leading = mesh_.join(miss->key, this);
  if (miss->leading) {
    counters_.upstream_queries.add();
    forwarder_->resolve({key.question, key.len}, key.do_bit, *miss);
  } else {
    counters_.coalesced.add();  // another worker is already asking upstream
  }
  return miss;
}

void Worker::complete(Miss& miss, upstream::Resolution::Result result) {
  auto prepared = std::make_shared<wire::PreparedAnswer>();
  bool ok = !result.reply.empty() &&
            wire::prepare_answer(result.reply, settings_.ttl, result.zone, *prepared);
  if (!ok) {
    counters_.upstream_failures.add();
    if (!result.reply.empty()) spdlog::debug("malformed answer from upstream: SERVFAIL");
  } else if (prepared->ttl > 0) {
    cache_.insert(miss.cache_key(), now_seconds(), prepared->ttl, prepared->wire,
                  prepared->ttl_offsets);
  }
  Outcome outcome = ok ? Outcome(std::move(prepared)) : nullptr;
  mesh_.finish(miss.key, this, outcome);
  answer_waiters(miss, outcome);
}

void Worker::answer_waiters(Miss& miss, const Outcome& outcome) {
  in_flight_.erase(miss.key);
  std::unique_ptr<Miss> owned(&miss);
  if (miss.prefetch) --prefetches_;
  for (Waiter& w : miss.waiters) {
    if (w.stale_after_ms) --stale_waiters_;
    net::ReplyTo to = w.reply_to();
    if (to.sink && !to.sink->open()) continue;
    if (!outcome) {
      // RFC 8767: when upstream fails, an expired answer beats SERVFAIL.
      if (!(w.stale_after_ms && answer_stale(miss, w))) {
        respond_empty(w.query, w.asked_ns, to, wire::kServFail);
      }
      continue;
    }
    size_t limit = to.sink ? wire::kMaxMessageSize : w.query.udp_limit();
    size_t len =
        wire::render_answer(outcome->wire, outcome->ttl_offsets, 0, 0, w.query, limit, out_);
    respond(w.query, to, {out_.data(), len}, admin::coredns::qtype_index(w.query.question.qtype),
            w.asked_ns);
  }
  if (stale_waiters_ == 0 && !closed_) uv_timer_stop(stale_timer_);
}

bool Worker::answer_stale(const Miss& miss, const Waiter& w) {
  constexpr uint32_t kStaleTtl = 30;  // RFC 8767 4
  net::ReplyTo to = w.reply_to();
  size_t limit = to.sink ? wire::kMaxMessageSize : w.query.udp_limit();
  size_t len = 0;
  cache_.find(miss.cache_key(), now_seconds(), [&](const cache::EntryView& e) {
    len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, kStaleTtl, w.query, limit, out_);
  });
  if (len == 0) return false;
  counters_.stale_answers.add();
  respond(w.query, to, {out_.data(), len}, admin::coredns::qtype_index(w.query.question.qtype),
          w.asked_ns);
  return true;
}

void Worker::on_stale_tick() {
  uint64_t now = transport_.now_ms();
  for (auto& [key, miss] : in_flight_) {
    auto& waiters = miss->waiters;
    for (size_t i = 0; i < waiters.size();) {
      Waiter& w = waiters[i];
      if (w.stale_after_ms && w.stale_after_ms <= now && answer_stale(*miss, w)) {
        --stale_waiters_;
        std::swap(w, waiters.back());  // answered: the refresh goes on without it
        waiters.pop_back();
      } else {
        ++i;
      }
    }
  }
  if (stale_waiters_ == 0) uv_timer_stop(stale_timer_);
}

void Worker::log_query(const wire::Query& q, const net::ReplyTo& to, const char* outcome) {
  // One count for all workers, so "one in N" holds whichever worker a query reaches.
  static std::atomic<uint64_t> queries_seen{0};
  if (queries_seen.fetch_add(1, std::memory_order_relaxed) % settings_.query_log_sample != 0)
    return;
  std::string name;
  wire::append_name_text(q.question.name, q.question.name_len, name);
  std::string client = "in-process";
  if (to.peer) {
    net::Address a;
    std::memcpy(&a.storage, to.peer,
                to.peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    client = a.to_string();
  } else if (to.sink) {
    client = "tcp";
  }
  // The "query" logger's pattern wraps this in {"ts":...,} so each line is one JSON object.
  static const auto logger = spdlog::get("query");
  if (!logger) return;
  logger->info(
      R"("query":{{"client":"{}","name":"{}","type":{},"class":{},"id":{},"do":{},"answer":"{}"}})",
      client, name, q.question.qtype, q.question.qclass, q.id, q.edns.do_bit, outcome);
}

void Worker::post(const std::string& key, Outcome outcome) {
  std::lock_guard lock(mailbox_mutex_);
  mailbox_.emplace_back(key, std::move(outcome));
  uv_async_send(mailbox_async_);
}

void Worker::drain_mailbox() {
  std::vector<std::pair<std::string, Outcome>> arrived;
  {
    std::lock_guard lock(mailbox_mutex_);
    arrived.swap(mailbox_);
  }
  for (auto& [key, outcome] : arrived) {
    auto it = in_flight_.find(key);
    if (it != in_flight_.end() && !it->second->leading) answer_waiters(*it->second, outcome);
  }
}

}  // namespace readyns::core
