// The embedded resolver's machinery: setup, queries, endpoint lookups, watches, shutdown.
//
// Setting up from Options, queries through the worker into a caller's sink, endpoint lookups from
// the EndpointSlice table or from DNS, watches, shutdown.
#include "embed/engine.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "config/resolv_conf.hpp"
#include "config/settings.hpp"
#include "core/parts.hpp"
#include "embed/dns.hpp"
#include "k8s/api_access.hpp"
#include "net/address.hpp"
#include "net/listeners.hpp"
#include "wire/message.hpp"

namespace readyns::embed {

// Options checked and turned into what the parts take, with the listen sockets bound.
struct Prepared {
  Options options;
  core::WorkerSettings worker;
  net::TcpSettings tcp;
  core::ListenSockets sockets;
  std::optional<k8s::WatcherSettings> watcher;  // set when an API server is there to watch
};

namespace {

constexpr uint64_t kTickMs = 250;          // how often DNS watches look whether they are due
constexpr uint32_t kMinRefreshS = 1;       // DNS watches: not more often than this,
constexpr uint32_t kMaxRefreshS = 30;      // nor less often than this,
constexpr uint32_t kErrorRetryS = 2;       // and this soon again after a failure
constexpr uint32_t kNegativeRefreshS = 5;  // nothing found: as a negative answer's TTL would
constexpr int kRcodeServFail = 2, kRcodeNxDomain = 3;

Prepared prepare(const Options& given) {
  Prepared p{.options = core::checked_options(given, false),
             .worker = {},
             .tcp = {},
             .sockets = {},
             .watcher = std::nullopt};
  const Options& o = p.options;
  p.worker = core::worker_settings(o, nullptr);
  p.tcp = core::tcp_settings(o);
  if (core::kube_mode(o) != k8s::Mode::kOff) {
    k8s::WatcherSettings settings = core::watcher_settings(o);
    std::string error;
    if (k8s::locate_api(settings, error)) {
      p.watcher = std::move(settings);
    } else if (settings.mode == k8s::Mode::kOn) {
      throw std::runtime_error("--kube=on: no Kubernetes API server found: " + error);
    }
  }

  // Last, so that nothing above can throw with sockets open.
  p.sockets = core::bind_listeners(o, /*first=*/true);
  return p;
}

// Kubernetes names are lower-case; callers may write them in any case.
std::optional<Error> check_names(const std::string& service, const std::string& ns,
                                 const std::string& port) {
  if (!is_kube_name(service)) {
    return Error{Errc::kInvalidArgument, "bad Service name '" + service + "'"};
  }
  if (!is_kube_name(ns)) return Error{Errc::kInvalidArgument, "bad namespace '" + ns + "'"};
  if (!port.empty() && (port.size() > 62 || !is_kube_name(port))) {
    return Error{Errc::kInvalidArgument, "bad port name '" + port + "'"};
  }
  return std::nullopt;
}

void sort_endpoints(Endpoints& endpoints) {
  std::sort(endpoints.begin(), endpoints.end(), [](const Endpoint& a, const Endpoint& b) {
    return std::tie(a.address, a.port, a.hostname) < std::tie(b.address, b.port, b.hostname);
  });
}

std::string dashed(std::string_view address) {
  std::string out(address);
  for (char& c : out) {
    if (c == '.' || c == ':') c = '-';
  }
  return out;
}

// Takes an answer for a caller inside the process, and hands it to the call's callback.
class CallerSink final : public net::AnswerSink {
 public:
  explicit CallerSink(std::shared_ptr<Call<Answer>> call) : call_(std::move(call)) {}
  void send(std::span<const uint8_t> answer) override {
    if (std::exchange(answered_, true)) return;
    if (call_->live()) call_->deliver(parse_answer(answer));
  }
  void abandon() override {
    if (std::exchange(answered_, true)) return;
    call_->deliver(Error{Errc::kBadAnswer, "the query was dropped unanswered"});
  }
  void ref() override { ++refs_; }
  void unref() override {
    if (--refs_ == 0) delete this;
  }
  // Cancelled: the worker need not render an answer nobody will read.
  bool open() const override { return call_->live(); }

 private:
  std::shared_ptr<Call<Answer>> call_;
  unsigned refs_ = 1;
  bool answered_ = false;
};

}  // namespace

// One endpoint set from DNS: SRV for the port (TCP, then UDP), then A and AAAA for targets whose
// addresses the additional section did not carry.
class DnsLookup : public std::enable_shared_from_this<DnsLookup> {
 public:
  using Done = std::function<void(Result<Endpoints>, uint32_t ttl)>;
  DnsLookup(Engine& engine, std::string service, std::string ns, std::string port, Done done)
      : engine_(engine),
        service_name_(service + "." + ns + ".svc." + engine.cluster_domain() + "."),
        port_(std::move(port)),
        done_(std::move(done)) {}

  void start() { ask_srv(port_.empty() ? "" : "_tcp"); }

 private:
  struct Target {
    std::string name;  // lower-cased, final dot
    std::vector<uint16_t> ports;
    std::vector<std::string> addresses;
  };

  void ask_srv(std::string proto) {
    std::string name =
        port_.empty() ? service_name_ : "_" + port_ + "." + proto + "." + service_name_;
    engine_.query(name, kTypeSrv, [self = shared_from_this(), proto, name](Result<Answer> r) {
      self->on_srv(proto, name, std::move(r));
    });
  }

  void on_srv(const std::string& proto, const std::string& name, Result<Answer> r) {
    if (!r) return done_(r.error(), 0);
    if (r->rcode != 0 && r->rcode != kRcodeNxDomain) {
      return done_(Error{Errc::kUpstream, "SRV " + name + ": rcode " + std::to_string(r->rcode) +
                                              (r->rcode == kRcodeServFail ? " (SERVFAIL)" : "")},
                   0);
    }
    for (const Record& rr : r->records) {
      if (rr.type != kTypeSrv) continue;
      // "priority weight port target"
      unsigned priority = 0, weight = 0, port = 0;
      char target[256] = {};
      if (std::sscanf(rr.data.c_str(), "%u %u %u %255s", &priority, &weight, &port, target) != 4 ||
          port > 65535) {
        continue;
      }
      if (std::strcmp(target, ".") == 0) continue;  // RFC 2782: "decidedly not available"
      ttl_ = std::min(ttl_, rr.ttl);
      std::string target_name = lowered(target);
      auto it = std::find_if(targets_.begin(), targets_.end(),
                             [&](const Target& t) { return t.name == target_name; });
      if (it == targets_.end()) it = targets_.insert(targets_.end(), Target{target_name, {}, {}});
      if (std::find(it->ports.begin(), it->ports.end(), port) == it->ports.end()) {
        it->ports.push_back(uint16_t(port));
      }
    }
    if (targets_.empty()) {
      if (proto == "_tcp") return ask_srv("_udp");
      return done_(Endpoints{}, kNegativeRefreshS);
    }
    for (const Record& rr : r->additional) take_address(rr);
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (!targets_[i].addresses.empty()) continue;
      for (uint16_t type : {kTypeA, kTypeAaaa}) {
        ++pending_;
        engine_.query(targets_[i].name, type, [self = shared_from_this()](Result<Answer> a) {
          if (a && a->rcode == 0) {
            for (const Record& rr : a->records) self->take_address(rr);
          } else {
            self->failed_ = a ? "rcode " + std::to_string(a->rcode) : a.error().message;
          }
          if (--self->pending_ == 0) self->finish();
        });
      }
    }
    if (pending_ == 0) finish();
  }

  // An A or AAAA record of one of the targets (CNAMEs in between are skipped).
  void take_address(const Record& rr) {
    if (rr.type != kTypeA && rr.type != kTypeAaaa) return;
    std::string owner = lowered(rr.name);
    for (Target& t : targets_) {
      if (t.name != owner) continue;
      if (std::find(t.addresses.begin(), t.addresses.end(), rr.data) == t.addresses.end()) {
        t.addresses.push_back(rr.data);
      }
      ttl_ = std::min(ttl_, rr.ttl);
    }
  }

  void finish() {
    Endpoints out;
    for (const Target& t : targets_) {
      // "web-0.web.shop.svc.cluster.local." names endpoint web-0; a dashed address is no name.
      std::string label;
      if (t.name.size() > service_name_.size() + 1 && t.name.ends_with(service_name_) &&
          t.name[t.name.size() - service_name_.size() - 1] == '.') {
        label = t.name.substr(0, t.name.size() - service_name_.size() - 1);
        if (label.find('.') != std::string::npos) label.clear();
      }
      for (const std::string& address : t.addresses) {
        for (uint16_t port : t.ports) {
          out.push_back({.address = address,
                         .port = port,
                         .hostname = label == dashed(address) ? "" : label,
                         .zone = ""});
        }
      }
    }
    if (out.empty() && !failed_.empty()) {
      return done_(Error{Errc::kUpstream, "addresses of " + service_name_ + ": " + failed_}, 0);
    }
    sort_endpoints(out);
    out.erase(std::unique(out.begin(), out.end()), out.end());
    done_(std::move(out), ttl_);
  }

  Engine& engine_;
  const std::string service_name_;  // "web.shop.svc.cluster.local."
  const std::string port_;
  Done done_;
  std::vector<Target> targets_;
  uint32_t ttl_ = kMaxRefreshS;
  int pending_ = 0;
  std::string failed_;
};

struct Engine::Watch {
  std::shared_ptr<Subscription::State> state;
  std::string service, ns, port;
  bool from_table = false;
  std::optional<Endpoints> last;   // the set last delivered
  std::optional<Errc> last_error;  // the error last delivered, until a set follows
  uint64_t next_ms = 0;            // DNS: when to resolve again
  bool in_flight = false;          // DNS: a lookup is out
};

Engine::Engine(uv_loop_t* loop, const Options& options, ClosedFlag closed)
    : loop_(loop), closed_(std::move(closed)) {
  Prepared p = prepare(options);  // throws; nothing is on the loop yet
  const Options& o = p.options;
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  cluster_domain_ = o.cluster_domain;
  while (!cluster_domain_.empty() && cluster_domain_.back() == '.') cluster_domain_.pop_back();
  kube_namespaces_ = o.kube_namespaces;
  for (std::string& ns : kube_namespaces_) ns = lowered(ns);

  cache_ = std::make_unique<cache::Cache>(core::cache_settings(o));
  if (p.watcher) {
    table_ = std::make_unique<k8s::EndpointTable>(
        k8s::TableSettings{.cluster_domain = cluster_domain_, .ttl = o.kube_ttl});
    table_->track_all_services();
    // A Service whose endpoints changed: no cached answer about it may outlive the change.
    table_->set_on_change(
        [c = cache_.get()](std::span<const uint8_t> name) { c->erase_subtree(name); });
    // Called inside the table's writer: watchers are told from the loop, after it returns.
    table_->set_on_endpoints_change([this](std::string_view ns, std::string_view service) {
      post([this, ns = std::string(ns), service = std::string(service)] {
        on_service_changed(ns, service);
      });
    });
    local_ = std::make_unique<core::TableAnswerer>(*table_);
  }
  p.worker.servers = &servers_;
  transport_ = std::make_unique<net::UvTransport>(
      loop_, net::UvTransportSettings{.tcp_idle_timeout_ms = o.tcp_idle_timeout_ms});
  worker_ = std::make_unique<core::Worker>(loop_, std::move(p.worker), *cache_, mesh_, *transport_,
                                           local_.get());
  connections_ = core::connection_limits(o);
  if (!p.sockets.udp.empty()) {
    worker_->add_listeners(p.sockets.udp, p.sockets.tcp, p.tcp, *connections_);
  }

  tasks_async_ = new uv_async_t;
  uv_async_init(loop_, tasks_async_, [](uv_async_t* a) { static_cast<Engine*>(a->data)->drain(); });
  tasks_async_->data = this;
  tick_ = new uv_timer_t;
  uv_timer_init(loop_, tick_);
  tick_->data = this;
  uv_timer_start(
      tick_, [](uv_timer_t* t) { static_cast<Engine*>(t->data)->on_tick(); }, kTickMs, kTickMs);

  if (p.watcher) {
    watcher_ = std::make_unique<k8s::Watcher>(loop_, *p.watcher, *table_);
    watcher_->start();  // cannot fail: prepare() found the API server
  }
}

Engine::~Engine() {
  // The order the daemon tears down in: the worker's misses hold sinks, the transport their
  // exchanges (already dropped by close()).
  watcher_.reset();
  worker_.reset();
  transport_.reset();
  local_.reset();
  table_.reset();
}

bool Engine::post(std::function<void()> task) {
  std::lock_guard lock(tasks_mutex_);
  if (!accepting_) return false;
  tasks_.push_back(std::move(task));
  uv_async_send(tasks_async_);  // under the lock: shutdown() cannot close it meanwhile
  return true;
}

void Engine::request_shutdown() {
  std::lock_guard lock(tasks_mutex_);
  if (!accepting_) return;
  shutdown_asked_ = true;
  uv_async_send(tasks_async_);
}

void Engine::drain() {
  std::vector<std::function<void()>> tasks;
  bool stop;
  {
    std::lock_guard lock(tasks_mutex_);
    tasks.swap(tasks_);
    stop = shutdown_asked_;
  }
  for (auto& task : tasks) {
    if (closing_) break;  // a callback destroyed the resolver
    task();
  }
  if (stop) shutdown(nullptr);
}

void Engine::shutdown(std::function<void()> on_closed) {
  if (closing_) return;
  closing_ = true;
  on_closed_ = std::move(on_closed);
  closed_->store(true, std::memory_order_release);
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lock(tasks_mutex_);
    accepting_ = false;
    dropped.swap(tasks_);
  }
  dropped.clear();
  watches_.clear();
  open_handles_ = 2;  // tasks_async_ and tick_
  uv_close(reinterpret_cast<uv_handle_t*>(tasks_async_), [](uv_handle_t* h) {
    auto* self = static_cast<Engine*>(h->data);
    delete reinterpret_cast<uv_async_t*>(h);
    self->handle_closed();
  });
  worker_->close_listeners();
  worker_->close();
  transport_->close();
  // tick_ closes last, after the watcher's handles: its close callback may delete the engine, and
  // must not run inside the watcher's own callbacks.
  auto close_tick = [this] {
    uv_close(reinterpret_cast<uv_handle_t*>(tick_), [](uv_handle_t* h) {
      auto* self = static_cast<Engine*>(h->data);
      delete reinterpret_cast<uv_timer_t*>(h);
      self->handle_closed();
    });
  };
  if (watcher_) {
    watcher_->stop(close_tick);
  } else {
    close_tick();
  }
}

void Engine::handle_closed() {
  if (--open_handles_ == 0 && on_closed_) std::exchange(on_closed_, nullptr)();
}

void Engine::resolve(std::shared_ptr<Call<Answer>> call, std::vector<uint8_t> query) {
  if (closing_ || !call->live()) return;
  auto* sink = new CallerSink(std::move(call));
  worker_->on_query(query, net::ReplyTo{.udp = nullptr, .peer = nullptr, .sink = sink});
  sink->unref();  // the worker holds its own reference while the answer is pending
}

void Engine::query(const std::string& name, uint16_t type,
                   std::function<void(Result<Answer>)> done) {
  auto call = std::make_shared<Call<Answer>>(std::move(done), closed_);
  std::vector<uint8_t> q = build_query(name, type);
  // Always through the queue: a cache hit must not call back into the asker's own stack.
  post([this, call, q = std::move(q), name]() mutable {
    if (q.empty()) {
      call->deliver(Error{Errc::kInvalidArgument, "bad domain name '" + name + "'"});
    } else {
      resolve(std::move(call), std::move(q));
    }
  });
}

bool Engine::table_covers(const std::string& ns) const {
  if (!table_) return false;
  return kube_namespaces_.empty() ||
         std::find(kube_namespaces_.begin(), kube_namespaces_.end(), ns) != kube_namespaces_.end();
}

Result<Endpoints> Engine::table_endpoints(const std::string& service, const std::string& ns,
                                          const std::string& port) const {
  if (auto problem = check_names(service, ns, port)) return *problem;
  std::string service_l = lowered(service), ns_l = lowered(ns);
  if (!table_covers(ns_l)) {
    return Error{Errc::kNoTable, "no EndpointSlice watcher covers namespace " + ns_l};
  }
  if (!table_->synced()) {
    return Error{Errc::kNotSynced, "the EndpointSlice table has not completed its first list"};
  }
  Endpoints out;
  for (auto& e : table_->endpoints(ns_l, service_l, port)) {
    out.push_back({.address = std::move(e.address),
                   .port = e.port,
                   .hostname = std::move(e.hostname),
                   .zone = std::move(e.zone)});
  }
  sort_endpoints(out);
  return out;
}

void Engine::endpoints(std::shared_ptr<Call<Endpoints>> call, std::string service, std::string ns,
                       std::string port) {
  if (closing_ || !call->live()) return;
  if (auto problem = check_names(service, ns, port)) {
    call->deliver(*problem);
    return;
  }
  service = lowered(service);
  ns = lowered(ns);
  port = lowered(port);
  if (table_covers(ns) && table_->synced()) {
    call->deliver(table_endpoints(service, ns, port));
    return;
  }
  // No table for it, or not synced yet: the worker forwards the SRV query upstream.
  auto lookup = std::make_shared<DnsLookup>(
      *this, std::move(service), std::move(ns), std::move(port),
      [call](Result<Endpoints> r, uint32_t) { call->deliver(std::move(r)); });
  lookup->start();
}

void Engine::watch(std::shared_ptr<Subscription::State> state, std::string service, std::string ns,
                   std::string port) {
  if (closing_ || !state->active()) return;
  if (auto problem = check_names(service, ns, port)) {
    state->deliver(*problem);
    return;
  }
  auto w = std::make_shared<Watch>();
  w->state = std::move(state);
  w->service = lowered(service);
  w->ns = lowered(ns);
  w->port = lowered(port);
  w->from_table = table_covers(w->ns);
  watches_.push_back(w);
  if (!w->from_table) {
    refresh_from_dns(w);
  } else if (table_->synced()) {
    refresh_from_table(*w);
  }  // else the table's first sync delivers the first set
}

void Engine::refresh_from_table(Watch& w) {
  Result<Endpoints> now = table_endpoints(w.service, w.ns, w.port);
  if (!now) return;  // cannot happen once synced
  if (w.last && *w.last == *now) return;
  w.last = *now;
  w.state->deliver(std::move(now));
}

void Engine::refresh_from_dns(const std::shared_ptr<Watch>& w) {
  w->in_flight = true;
  std::weak_ptr<Watch> weak = w;
  auto lookup = std::make_shared<DnsLookup>(
      *this, w->service, w->ns, w->port, [this, weak](Result<Endpoints> r, uint32_t ttl) {
        std::shared_ptr<Watch> w = weak.lock();
        if (!w) return;  // cancelled meanwhile
        w->in_flight = false;
        if (r) {
          w->next_ms = now_ms() + 1000ull * std::clamp(ttl, kMinRefreshS, kMaxRefreshS);
          w->last_error.reset();
          if (w->last && *w->last == *r) return;
          w->last = *r;
        } else {
          w->next_ms = now_ms() + 1000ull * kErrorRetryS;
          if (w->last_error == r.error().code) return;
          w->last_error = r.error().code;
          w->last.reset();  // the next good set is news again
        }
        w->state->deliver(std::move(r));
      });
  lookup->start();
}

void Engine::on_service_changed(const std::string& ns, const std::string& service) {
  bool all = ns.empty() && service.empty();  // the table (re)synced
  std::erase_if(watches_, [](const auto& w) { return !w->state->active(); });
  // A callback may add or end watches, or close the engine: go over a copy.
  std::vector<std::shared_ptr<Watch>> watches = watches_;
  for (const auto& w : watches) {
    if (closing_) return;
    if (!w->from_table || !w->state->active()) continue;
    if (all || (w->ns == ns && w->service == service)) refresh_from_table(*w);
  }
}

void Engine::on_tick() {
  if (closing_) return;
  std::erase_if(watches_, [](const auto& w) { return !w->state->active(); });
  uint64_t now = now_ms();
  std::vector<std::shared_ptr<Watch>> watches = watches_;
  for (const auto& w : watches) {
    if (closing_) return;
    if (!w->from_table && !w->in_flight && w->next_ms <= now) refresh_from_dns(w);
  }
}

}  // namespace readyns::embed
