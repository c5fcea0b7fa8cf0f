// A worker: query handling from parse to answer, with the mesh of coalesced misses.
#include "core/worker.hpp"

#include <spdlog/spdlog.h>

#include <cstring>

namespace readyns::core {

// A client waiting for a miss to resolve: enough of its query to answer it later.
struct Worker::Waiter {
  wire::Query query;
  uint8_t name[wire::kMaxNameLength];  // the question name as the client cased it
  net::UdpListener* udp = nullptr;
  sockaddr_storage peer{};
  net::AnswerSink* sink = nullptr;  // holds a reference until answered

  Waiter(const wire::Query& q, const net::ReplyTo& to) : query(q), udp(to.udp), sink(to.sink) {
    std::memcpy(name, q.question.name, q.question.name_len);
    query.question.name = name;
    if (to.peer) {
      std::memcpy(&peer, to.peer,
                  to.peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    }
    if (sink) sink->ref();
  }
  Waiter(Waiter&& o) noexcept : query(o.query), udp(o.udp), peer(o.peer), sink(o.sink) {
    std::memcpy(name, o.name, sizeof name);
    query.question.name = name;
    o.sink = nullptr;
  }
  Waiter(const Waiter&) = delete;
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

  Miss(Worker* w, std::string k, uint64_t h) : worker(w), key(std::move(k)), hash(h) {}
  void on_resolved(Result result) override { worker->complete(*this, result); }
};

Worker::Worker(uv_loop_t* loop, WorkerSettings settings, cache::Cache& cache,
               upstream::Transport& transport, const LocalAnswerer* local)
    : loop_(loop),
      settings_(std::move(settings)),
      cache_(cache),
      transport_(transport),
      forwarder_(settings_.forwarder, settings_.zones, transport),
      local_(local),
      out_(wire::kMaxMessageSize) {}

Worker::~Worker() {
  for (auto& [key, miss] : in_flight_) delete miss;
}

void Worker::add_listeners(const std::vector<int>& udp_fds, const std::vector<int>& tcp_fds,
                           net::TcpSettings tcp) {
  for (int fd : udp_fds) udp_.push_back(std::make_unique<net::UdpListener>(loop_, fd, *this));
  for (int fd : tcp_fds) tcp_.push_back(std::make_unique<net::TcpListener>(loop_, fd, *this, tcp));
}

void Worker::close_listeners() {
  for (auto& l : udp_) l->close();
  for (auto& l : tcp_) l->close();
}

void Worker::respond(const net::ReplyTo& to, std::span<const uint8_t> answer) {
  counters_.responses_by_rcode[wire::rcode_of(answer.data())].add();
  if (to.sink) {
    to.sink->send(answer);
  } else {
    to.udp->send(to.peer, answer);
  }
}

void Worker::respond_empty(const wire::Query& q, const net::ReplyTo& to, uint16_t rcode) {
  size_t len = wire::build_empty_answer(q, rcode, out_);
  respond(to, {out_.data(), len});
}

void Worker::on_query(std::span<const uint8_t> msg, const net::ReplyTo& to) {
  (to.sink ? counters_.stream_queries : counters_.udp_queries).add();
  wire::Query q;
  switch (wire::parse_query(msg, q)) {
    case wire::QueryCheck::kOk:
      break;
    case wire::QueryCheck::kDrop:
      counters_.dropped.add();
      if (to.sink) to.sink->abandon();
      return;
    case wire::QueryCheck::kFormErr:
      return respond_empty(q, to, wire::kFormErr);
    case wire::QueryCheck::kNotImp:
      return respond_empty(q, to, wire::kNotImp);
    case wire::QueryCheck::kBadVers:
      return respond_empty(q, to, wire::kExtRcodeBadVers);
    case wire::QueryCheck::kRefused:
      return respond_empty(q, to, wire::kRefused);
  }
  size_t limit = to.sink ? wire::kMaxMessageSize : q.udp_limit();

  if (local_) {
    if (size_t len = local_->answer(q, out_, limit)) return respond(to, {out_.data(), len});
  }

  uint8_t key_bytes[cache::kMaxKeySize];
  cache::Key key = cache::make_key(q.question, q.edns.do_bit, key_bytes);
  size_t len = 0;
  cache::Found found = cache_.find(key, now_seconds(), [&](const cache::EntryView& e) {
    len = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, limit, out_);
  });
  if (found == cache::Found::kFresh && len) {
    counters_.cache_hits.add();
    return respond(to, {out_.data(), len});
  }
  counters_.cache_misses.add();

  std::string mesh_key(reinterpret_cast<const char*>(key.question), key.len);
  mesh_key.push_back(key.do_bit ? '1' : '0');
  auto [it, fresh] = in_flight_.try_emplace(std::move(mesh_key), nullptr);
  if (!fresh) {
    if (it->second->waiters.size() >= settings_.max_waiters_per_miss) {
      return respond_empty(q, to, wire::kServFail);
    }
    counters_.coalesced.add();
    it->second->waiters.emplace_back(q, to);
    return;
  }
  if (in_flight_.size() > settings_.max_in_flight) {
    in_flight_.erase(it);
    return respond_empty(q, to, wire::kServFail);
  }
  Miss* miss = new Miss(this, it->first, key.hash);
  it->second = miss;
  miss->waiters.emplace_back(q, to);
  counters_.upstream_queries.add();
  forwarder_.resolve({key.question, key.len}, key.do_bit, *miss);
}

void Worker::complete(Miss& miss, upstream::Resolution::Result result) {
  in_flight_.erase(miss.key);
  std::unique_ptr<Miss> owned(&miss);

  wire::PreparedAnswer prepared;
  bool ok = !result.reply.empty() &&
            wire::prepare_answer(result.reply, settings_.ttl, result.zone, prepared);
  if (!ok) {
    counters_.upstream_failures.add();
    if (!result.reply.empty()) spdlog::debug("malformed answer from upstream: SERVFAIL");
  } else if (prepared.ttl > 0) {
    cache::Key key{reinterpret_cast<const uint8_t*>(miss.key.data()), uint16_t(miss.key.size() - 1),
                   miss.key.back() == '1', miss.hash};
    cache_.insert(key, now_seconds(), prepared.ttl, prepared.wire, prepared.ttl_offsets);
  }
  for (Waiter& w : miss.waiters) {
    net::ReplyTo to = w.reply_to();
    if (to.sink && !to.sink->open()) continue;
    if (!ok) {
      respond_empty(w.query, to, wire::kServFail);
      continue;
    }
    size_t limit = to.sink ? wire::kMaxMessageSize : w.query.udp_limit();
    size_t len =
        wire::render_answer(prepared.wire, prepared.ttl_offsets, 0, 0, w.query, limit, out_);
    respond(to, {out_.data(), len});
  }
}

}  // namespace readyns::core
