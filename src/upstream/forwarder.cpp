// The forwarder: zone routing, attempts, failover, TCP retry on truncation, RTT and health.
#include "upstream/forwarder.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "upstream/random.hpp"
#include "wire/answer.hpp"
#include "wire/message.hpp"

namespace readyns::upstream {
namespace {

constexpr uint32_t kMinAttemptTimeoutMs = 250;
constexpr uint32_t kMaxAvoidMs = 30000;

// Gives each letter of a wire name a random case (0x20): a forger must guess it too.
void randomize_case(uint8_t* name, size_t len) {
  uint32_t bits = 0;
  int left = 0;
  for (size_t i = 0; i < len; i += 1 + name[i]) {
    for (size_t j = 1; j <= name[i]; ++j) {
      uint8_t& c = name[i + j];
      if ((c | 0x20) < 'a' || (c | 0x20) > 'z') continue;
      if (left == 0) bits = random32(), left = 32;
      c = (bits & 1) ? uint8_t(c & ~0x20) : uint8_t(c | 0x20);
      bits >>= 1, --left;
    }
  }
}

bool is_server_failure(uint8_t rcode) {
  return rcode == wire::kServFail || rcode == wire::kRefused || rcode == wire::kNotImp ||
         rcode == wire::kFormErr;
}

}  // namespace

ServerState* ServerPool::get(const net::Address& address) {
  std::lock_guard lock(mutex_);
  for (auto& s : servers_) {
    if (s->address == address) return s.get();
  }
  return servers_.emplace_back(std::make_unique<ServerState>(address)).get();
}

std::vector<ServerState*> ServerPool::all() const {
  std::lock_guard lock(mutex_);
  std::vector<ServerState*> out;
  for (auto& s : servers_) out.push_back(s.get());
  return out;
}

Forwarder::Forwarder(ForwarderSettings settings, const std::vector<ZoneServers>& zones,
                     ServerPool& pool, Transport& transport)
    : settings_(settings), transport_(transport), pool_(pool) {
  for (const ZoneServers& z : zones) {
    Zone zone;
    zone.name.resize(wire::kMaxNameLength);
    size_t len =
        wire::name_from_text(z.zone.data(), z.zone.size(), zone.name.data(), zone.name.size());
    if (len == 0) throw std::invalid_argument("bad zone name: " + z.zone);
    zone.name.resize(len);
    wire::lower_name(zone.name.data(), len, zone.name.data());
    if (z.servers.empty()) throw std::invalid_argument("zone " + z.zone + " has no upstreams");
    for (const net::Address& a : z.servers) {
      ServerState* state = pool.get(a);
      if (std::find(servers_.begin(), servers_.end(), state) == servers_.end()) {
        servers_.push_back(state);
      }
      zone.servers.push_back(state);
    }
    zones_.push_back(std::move(zone));
  }
  std::stable_sort(zones_.begin(), zones_.end(),
                   [](const Zone& a, const Zone& b) { return a.name.size() > b.name.size(); });
}

Forwarder::~Forwarder() = default;

const Zone* Forwarder::zone_for(std::span<const uint8_t> name) const {
  for (const Zone& z : zones_) {
    if (wire::name_in_zone(name.data(), name.size(), z.name.data(), z.name.size())) return &z;
  }
  return nullptr;
}

// A health probe: the zone's SOA, asked of a server that failed, once its back-off is over.
class Forwarder::Probe final : public Exchange {
 public:
  Probe(Forwarder& forwarder, ServerState& server, const Zone& zone)
      : forwarder_(forwarder), server_(server) {
    query_.assign(wire::kHeaderSize, 0);
    query_[2] = wire::kFlagRd;
    wire::put16(&query_[4], 1);
    query_.insert(query_.end(), zone.name.begin(), zone.name.end());
    query_.resize(query_.size() + 4);
    wire::put16(&query_[query_.size() - 4], wire::kTypeSoa);
    wire::put16(&query_[query_.size() - 2], wire::kClassIn);
    zone_len_ = zone.name.size();
  }
  void send() {
    forwarder_.transport_.send(server_.address, Protocol::kUdp, query_,
                               forwarder_.settings_.attempt_timeout_ms, this);
  }

 private:
  bool on_reply(uint16_t id, std::span<const uint8_t> reply) override {
    // Any well-formed answer to our question, even REFUSED, shows the server is back.
    if (wire::check_reply(reply, id, &query_[wire::kHeaderSize], zone_len_, wire::kTypeSoa,
                          wire::kClassIn, false) == wire::ReplyCheck::kMismatch) {
      return false;
    }
    server_.consecutive_failures = 0;
    server_.avoid_until_ms = 0;
    server_.last_answer_ms = forwarder_.transport_.now_ms();
    server_.probing = false;
    return true;
  }
  void on_failure(Failure) override {
    server_.probing = false;
    ++server_.probe_failures;
    forwarder_.record_failure(server_);
  }

  Forwarder& forwarder_;
  ServerState& server_;
  std::vector<uint8_t> query_;
  size_t zone_len_;
};

void Forwarder::order_servers(const Zone& zone, std::vector<ServerState*>& out) {
  // Healthy servers first, fastest first; a server that never answered counts as fast so it
  // gets tried. Failing servers follow, so with nothing else left they still get a chance.
  uint64_t now = transport_.now_ms();
  for (ServerState* s : zone.servers) {
    // One probe per server, whichever worker's forwarder notices first.
    if (s->consecutive_failures > 0 && s->avoid_until_ms <= now && !s->probing &&
        !s->probing.exchange(true)) {
      probe(*s, zone);
    }
  }
  // Other workers update the states while we sort: sort a snapshot. Ties keep the zone's order
  // (as std::stable_sort would, but it allocates).
  ranks_.clear();
  for (ServerState* s : zone.servers) {
    ranks_.push_back({s->avoided(now), s->srtt_us, uint32_t(ranks_.size()), s});
  }
  std::sort(ranks_.begin(), ranks_.end(), [](const Rank& a, const Rank& b) {
    if (a.avoided != b.avoided) return b.avoided;
    if (a.srtt != b.srtt) return a.srtt < b.srtt;
    return a.position < b.position;
  });
  if (ranks_.front().avoided) pool_.all_failing_resolutions.fetch_add(1, std::memory_order_relaxed);
  out.clear();
  for (const Rank& r : ranks_) out.push_back(r.server);
}

void Forwarder::probe(ServerState& server, const Zone& zone) {
  size_t index = size_t(std::find(servers_.begin(), servers_.end(), &server) - servers_.begin());
  if (probes_.size() < servers_.size()) probes_.resize(servers_.size());
  if (!probes_[index]) probes_[index] = std::make_unique<Probe>(*this, server, zone);
  probes_[index]->send();
}

void Forwarder::record_failure(ServerState& server) {
  ++server.failures;
  server.last_failure_ms = transport_.now_ms();
  uint32_t n = std::min<uint32_t>(server.consecutive_failures.fetch_add(1) + 1, 10);
  server.avoid_until_ms = transport_.now_ms() + std::min<uint64_t>(uint64_t(500) << n, kMaxAvoidMs);
}

uint32_t Forwarder::attempt_timeout(const ServerState& s) const {
  uint32_t srtt_us = s.srtt_us;
  if (srtt_us == 0) return settings_.attempt_timeout_ms;
  uint32_t ceiling = settings_.attempt_timeout_ms;
  return std::clamp(4 * srtt_us / 1000 + 100, std::min(kMinAttemptTimeoutMs, ceiling), ceiling);
}

void Forwarder::resolve(std::span<const uint8_t> question, bool do_bit, Resolution& r) {
  size_t qname_len = question.size() - 4;
  r.forwarder_ = this;
  r.zone_ = zone_for(question.first(qname_len));
  if (!r.zone_) throw std::logic_error("no zone for a name: the root zone must be configured");
  r.qname_len_ = qname_len;
  r.started_ms_ = transport_.now_ms();
  r.attempts_ = 0;

  // ID (set by the transport), RD, one question, one OPT: EDNS lets big answers come over UDP.
  r.query_.assign(wire::kHeaderSize, 0);
  r.query_[2] = wire::kFlagRd;
  wire::put16(&r.query_[4], 1);
  r.query_.insert(r.query_.end(), question.begin(), question.end());
  if (settings_.randomize_case) randomize_case(&r.query_[wire::kHeaderSize], qname_len);
  size_t len = r.query_.size();
  r.query_.resize(len + wire::kOptRecordSize);
  wire::append_opt(r.query_, len, do_bit, 0);

  order_servers(*r.zone_, r.order_);
  // The first attempt goes out whatever the deadline: on_resolved() must never run inside
  // resolve(), where the caller still holds the resolution.
  r.server_ = r.order_[r.attempts_++ % r.order_.size()];
  r.send(Protocol::kUdp);
}

void Resolution::next_attempt() {
  const ForwarderSettings& settings = forwarder_->settings_;
  uint64_t now = forwarder_->transport_.now_ms();
  uint64_t elapsed = now - started_ms_;
  if (elapsed + 10 >= settings.resolve_timeout_ms) {
    on_resolved({{}, zone_->name});
    return;
  }
  server_ = order_[attempts_++ % order_.size()];
  send(Protocol::kUdp);
}

void Resolution::send(Protocol protocol) {
  Transport& transport = forwarder_->transport_;
  uint64_t now = transport.now_ms();
  uint64_t left = forwarder_->settings_.resolve_timeout_ms - (now - started_ms_);
  uint32_t timeout = uint32_t(std::min<uint64_t>(forwarder_->attempt_timeout(*server_), left));
  protocol_ = protocol;
  sent_us_ = transport.now_us();
  ++server_->queries;
  transport.send(server_->address, protocol, query_, timeout, this);
}

bool Resolution::on_reply(uint16_t id, std::span<const uint8_t> reply) {
  const uint8_t* qname = &query_[wire::kHeaderSize];
  uint16_t qtype = wire::get16(qname + qname_len_), qclass = wire::get16(qname + qname_len_ + 2);
  wire::ReplyCheck check = wire::check_reply(reply, id, qname, qname_len_, qtype, qclass,
                                             forwarder_->settings_.randomize_case);
  if (check == wire::ReplyCheck::kMismatch) return false;
  uint8_t rcode = wire::rcode_of(reply.data());
  const uint64_t rtt = std::max<uint64_t>(1, forwarder_->transport_.now_us() - sent_us_);
  // A broken reply's header RCODE may be the lower bits of an extended one: not its RCODE.
  if (check != wire::ReplyCheck::kBroken) {
    server_->reply_durations[rcode].observe_concurrently(double(rtt) * 1e-6);
  }

  uint64_t srtt = server_->srtt_us;
  server_->srtt_us = uint32_t(std::min<uint64_t>(srtt ? (7 * srtt + rtt) / 8 : rtt, UINT32_MAX));
  if (check == wire::ReplyCheck::kTruncated && protocol_ == Protocol::kUdp) {
    send(Protocol::kTcp);  // RFC 7766 / 1035 4.2.1: the whole answer is only over TCP
    return true;
  }
  // Truncated even over TCP, broken, or a server error: this server cannot help (asked again, it
  // would only say the same); another one of the zone might. Unbound does the same.
  if (check != wire::ReplyCheck::kAccept || is_server_failure(rcode)) {
    ++server_->failures;
    if (attempts_ < order_.size()) {
      next_attempt();
    } else {
      on_resolved({{}, zone_->name});
    }
    return true;
  }
  server_->last_answer_ms = forwarder_->transport_.now_ms();
  if (!server_->probing) {
    server_->consecutive_failures = 0;
    server_->avoid_until_ms = 0;
  }
  on_resolved({reply, zone_->name});
  return true;
}

void Resolution::on_failure(Failure) {
  forwarder_->record_failure(*server_);
  next_attempt();
}

}  // namespace readyns::upstream
