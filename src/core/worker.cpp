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

namespace {

// A miss's key in flight: the cache key's question bytes, then its DO bit as '0' or '1'.
constexpr size_t kFlightKeySize = cache::kMaxKeySize + 1;

// Finished misses kept for reuse: enough for bursts, not so many that a past flood stays in memory.
constexpr size_t kMaxSpareMisses = 1024;
// A spare miss keeps room for this many waiters; a crowd's room goes back to the heap.
constexpr size_t kMaxSpareWaiters = 16;

}  // namespace

// One miss in flight upstream and everyone waiting for it. Recycled when it is over.
struct Worker::Miss final : upstream::Resolution {
  Worker* worker;
  char key_bytes[kFlightKeySize];
  uint16_t key_len = 0;
  uint64_t hash = 0;
  std::vector<Waiter> waiters;
  bool leading = false;   // this worker resolves it; otherwise another worker's outcome comes
  bool prefetch = false;  // started by a hit to refresh the entry, not by a miss

  explicit Miss(Worker* w) : worker(w) {}
  // Makes this (new, or recycled without waiters) the miss of `key`, in flight as `flight_key`.
  void reset(const cache::Key& key, std::string_view flight_key) {
    std::memcpy(key_bytes, flight_key.data(), flight_key.size());
    key_len = uint16_t(flight_key.size());
    hash = key.hash;
    leading = prefetch = false;
  }
  std::string_view key() const { return {key_bytes, key_len}; }
  cache::Key cache_key() const {
    return {reinterpret_cast<const uint8_t*>(key_bytes), uint16_t(key_len - 1),
            key_bytes[key_len - 1] == '1', hash};
  }
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
  if (to.udp && rrl_.enabled()) {
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

  uint8_t key_bytes[kFlightKeySize];
  cache::Key key = cache::make_key(q.question, q.edns.do_bit, key_bytes);
  key_bytes[key.len] = key.do_bit ? '1' : '0';
  const std::string_view flight_key(reinterpret_cast<const char*>(key_bytes), key.len + 1u);
  size_t len = 0;
  bool refresh = false;
  cache::Found found = cache_.find(key, now_seconds(), [&](const cache::EntryView& e) {
    if (e.elapsed >= e.ttl) return;  // stale: served, if at all, by answer_stale()
    len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, limit, out_);
    refresh = e.ttl >= 10 && uint64_t(e.elapsed) * 10 >= uint64_t(e.ttl) * 9;
  });
  if (found == cache::Found::kFresh && len) {
    counters_.cache_hits.add();
    if (settings_.query_log) log_query(q, to, "cache");
    respond(q, to, {out_.data(), len}, type, asked_ns);
    if (refresh && prefetches_ < settings_.max_prefetches &&
        in_flight_.size() < settings_.max_in_flight) {
      if (in_flight_.find(flight_key) == in_flight_.end()) {
        if (Miss* miss = start_miss(key, flight_key)) {
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

  Miss* miss;
  if (auto it = in_flight_.find(flight_key); it != in_flight_.end()) {
    miss = it->second;
    if (miss->waiters.size() >= settings_.max_waiters_per_miss) {
      return shed(q, key, found == cache::Found::kStale, to, asked_ns);
    }
    counters_.coalesced.add();
  } else if (in_flight_.size() >= settings_.max_in_flight) {
    return shed(q, key, found == cache::Found::kStale, to, asked_ns);
  } else {
    miss = start_miss(key, flight_key);
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

Worker::Miss* Worker::start_miss(const cache::Key& key, std::string_view flight_key) {
  Miss* miss;
  if (spare_misses_.empty()) {
    miss = new Miss(this);
  } else {
    miss = spare_misses_.back().release();
    spare_misses_.pop_back();
  }
  miss->reset(key, flight_key);
  // Keyed by the miss's own copy: the caller's bytes go when it returns.
  in_flight_.try_insert(miss->key()).first->second = miss;
  miss->leading = mesh_.join(miss->key(), this);
  if (miss->leading) {
    counters_.upstream_queries.add();
    forwarder_->resolve({key.question, key.len}, key.do_bit, *miss);
  } else {
    counters_.coalesced.add();  // another worker is already asking upstream
  }
  return miss;
}

void Worker::complete(Miss& miss, upstream::Resolution::Result result) {
  bool ok = !result.reply.empty() &&
            wire::prepare_answer(result.reply, settings_.ttl, result.zone, prepared_);
  if (!ok) {
    counters_.upstream_failures.add();
    if (!result.reply.empty()) spdlog::debug("malformed answer from upstream: SERVFAIL");
  } else if (prepared_.ttl > 0) {
    cache_.insert(miss.cache_key(), now_seconds(), prepared_.ttl, prepared_.wire,
                  prepared_.ttl_offsets);
  } else if (prepared_.rcode == wire::kNoError || prepared_.rcode == wire::kNxDomain) {
    // An answer not to keep (TTL 0, or a denial without SOA) is still the upstream's latest word:
    // an older entry of the key must not be served after it, stale or fresh. Errors leave it: RFC
    // 8767 serves it when the upstream cannot answer.
    cache_.erase(miss.cache_key());
  }
  const wire::PreparedAnswer* answer = ok ? &prepared_ : nullptr;
  mesh_.finish(miss.key(), this, answer);
  answer_waiters(miss, answer);
}

void Worker::answer_waiters(Miss& miss, const wire::PreparedAnswer* answer) {
  in_flight_.erase(in_flight_.find(miss.key()));
  if (miss.prefetch) --prefetches_;
  for (Waiter& w : miss.waiters) {
    if (w.stale_after_ms) --stale_waiters_;
    net::ReplyTo to = w.reply_to();
    if (to.sink && !to.sink->open()) continue;
    if (!answer) {
      // RFC 8767: when upstream fails, an expired answer beats SERVFAIL.
      if (!(w.stale_after_ms && answer_stale(miss.cache_key(), w.query, to, w.asked_ns))) {
        respond_empty(w.query, w.asked_ns, to, wire::kServFail);
      }
      continue;
    }
    size_t limit = to.sink ? wire::kMaxMessageSize : w.query.udp_limit();
    size_t len = wire::render_answer(answer->wire, answer->ttl_offsets, 0, 0, w.query, limit, out_);
    respond(w.query, to, {out_.data(), len}, admin::coredns::qtype_index(w.query.question.qtype),
            w.asked_ns);
  }
  if (stale_waiters_ == 0 && !closed_) uv_timer_stop(stale_timer_);
  // Only now: answering may have let a client ask again, starting a miss that must be another.
  if (spare_misses_.size() < kMaxSpareMisses) {
    // Cleared now, not on reuse: waiters hold references to their TCP sessions.
    if (miss.waiters.capacity() > kMaxSpareWaiters) {
      miss.waiters = std::vector<Waiter>();
    } else {
      miss.waiters.clear();
    }
    spare_misses_.emplace_back(&miss);
  } else {
    delete &miss;
  }
}

bool Worker::answer_stale(const cache::Key& key, const wire::Query& q, const net::ReplyTo& to,
                          uint64_t asked_ns) {
  constexpr uint32_t kStaleTtl = 30;  // RFC 8767 4
  size_t limit = to.sink ? wire::kMaxMessageSize : q.udp_limit();
  size_t len = 0;
  cache_.find(key, now_seconds(), [&](const cache::EntryView& e) {
    len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, kStaleTtl, q, limit, out_);
  });
  if (len == 0) return false;
  counters_.stale_answers.add();
  respond(q, to, {out_.data(), len}, admin::coredns::qtype_index(q.question.qtype), asked_ns);
  return true;
}

void Worker::shed(const wire::Query& q, const cache::Key& key, bool stale_at_hand,
                  const net::ReplyTo& to, uint64_t asked_ns) {
  if (stale_at_hand && settings_.stale_answer_timeout_ms > 0 &&
      answer_stale(key, q, to, asked_ns)) {
    return;
  }
  counters_.shed.add();
  respond_empty(q, asked_ns, to, wire::kRefused);
}

void Worker::on_stale_tick() {
  uint64_t now = transport_.now_ms();
  for (auto& [key, miss] : in_flight_) {
    auto& waiters = miss->waiters;
    for (size_t i = 0; i < waiters.size();) {
      Waiter& w = waiters[i];
      if (w.stale_after_ms && w.stale_after_ms <= now &&
          answer_stale(miss->cache_key(), w.query, w.reply_to(), w.asked_ns)) {
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

void Worker::post(std::string_view key, Outcome outcome) {
  std::lock_guard lock(mailbox_mutex_);
  mailbox_.emplace_back(std::string(key), std::move(outcome));
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
    if (it != in_flight_.end() && !it->second->leading) {
      answer_waiters(*it->second, outcome.get());
    }
  }
}

}  // namespace readyns::core
