// readyns::Server: validates options, binds the listeners and runs one worker per thread.
#include "readyns/server.hpp"

#include <uv.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "admin/coredns_metrics.hpp"
#include "admin/health.hpp"
#include "admin/http_server.hpp"
#include "admin/metrics.hpp"
#include "cache/cache.hpp"
#include "config/file_watch.hpp"
#include "core/parts.hpp"
#include "core/worker.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/watcher.hpp"
#include "net/address.hpp"
#include "net/listeners.hpp"
#include "net/uv_transport.hpp"

namespace readyns {
namespace {

constexpr uint64_t kDrainDeadlineMs = 1500;  // SIGTERM: finish in-flight answers, then go
constexpr uint64_t kDrainPollMs = 20;

}  // namespace

struct Server::Impl {
  struct Thread {
    uv_loop_t loop;
    std::unique_ptr<net::UvTransport> transport;
    std::unique_ptr<core::Worker> worker;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    uint64_t drain_started = 0;
    k8s::Watcher* watcher = nullptr;       // the first thread's loop runs it
    uv_async_t* reload_request = nullptr;  // likewise
    admin::Heartbeat heartbeat;            // /health: this loop still turns
    uv_timer_t heartbeat_timer;
    uv_async_t reconfigure_async;  // new settings from reload(), applied on this loop
    std::mutex reconfigure_mutex;
    std::optional<core::WorkerSettings> new_settings;
    std::thread thread;
  };

  Options options;
  std::atomic<bool> stopping{false};
  uv_async_t reload_request;  // on the first loop: runs reload_handler
  std::function<void()> reload_handler;
  std::unique_ptr<cache::Cache> cache;
  core::Mesh mesh;
  upstream::ServerPool servers;
  std::unique_ptr<k8s::EndpointTable> table;
  std::unique_ptr<core::TableAnswerer> local;
  std::unique_ptr<k8s::Watcher> watcher;               // on the first worker's loop
  std::atomic<uint64_t> invalidations{0};              // Services whose cached answers were erased
  std::unique_ptr<net::ConnectionLimits> connections;  // every worker's client TCP
  std::vector<std::unique_ptr<Thread>> threads;

  // /health, /ready and /metrics on a loop and thread of their own, off the query path.
  uv_loop_t admin_loop;
  uv_async_t admin_stop;
  std::vector<std::unique_ptr<admin::HttpServer>> admin_servers;
  std::unique_ptr<config::FileWatch> config_watch;  // on the admin loop too
  std::thread admin_thread;
  bool admin_loop_ready = false;
  bool admin_ran = false;

  explicit Impl(const Options& given) : options(core::checked_options(given, true)) {
    // A part that cannot start (a listen address, the API under --kube=on, an admin address)
    // throws after loops and their handles exist: close what was built, as the destructor does.
    try {
      build();
    } catch (...) {
      tear_down();
      throw;
    }
  }

  void build() {
    const Options& o = options;
    core::WorkerSettings settings = core::worker_settings(o, &servers);
    if (o.query_log && !spdlog::get("query")) {
      spdlog::stderr_logger_mt("query")->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%f%z",%v})");
    }
    net::TcpSettings tcp = core::tcp_settings(o);
    connections = core::connection_limits(o);
    cache = std::make_unique<cache::Cache>(core::cache_settings(o));
    if (core::kube_mode(o) != k8s::Mode::kOff) {
      table = std::make_unique<k8s::EndpointTable>(
          k8s::TableSettings{.cluster_domain = o.cluster_domain, .ttl = o.kube_ttl});
      // A Service whose endpoints changed: no cached answer about it may outlive the change.
      table->set_on_change([c = cache.get(), n = &invalidations](std::span<const uint8_t> name) {
        c->erase_subtree(name);
        n->fetch_add(1, std::memory_order_relaxed);
      });
      local = std::make_unique<core::TableAnswerer>(*table);
    }

    for (unsigned i = 0, n = core::worker_count(o); i < n; ++i) {
      // Bound before the thread's loop exists, so that failing leaves nothing of it to close.
      core::ListenSockets sockets = core::bind_listeners(o, /*first=*/i == 0);
      auto t = std::make_unique<Thread>();
      uv_loop_init(&t->loop);
      t->transport = std::make_unique<net::UvTransport>(
          &t->loop, net::UvTransportSettings{.tcp_idle_timeout_ms = o.tcp_idle_timeout_ms});
      t->worker = std::make_unique<core::Worker>(&t->loop, settings, *cache, mesh, *t->transport,
                                                 local.get());
      t->worker->add_listeners(sockets.udp, sockets.tcp, tcp, *connections);
      uv_async_init(&t->loop, &t->reconfigure_async, [](uv_async_t* a) {
        Thread& th = *static_cast<Thread*>(a->data);
        std::optional<core::WorkerSettings> s;
        {
          std::lock_guard lock(th.reconfigure_mutex);
          s.swap(th.new_settings);
        }
        if (s) th.worker->reconfigure(std::move(*s));
      });
      t->reconfigure_async.data = t.get();
      uv_timer_init(&t->loop, &t->heartbeat_timer);
      t->heartbeat_timer.data = t.get();
      // A timer, not a per-iteration hook: an idle loop does not iterate but is not stuck.
      uv_timer_start(
          &t->heartbeat_timer,
          [](uv_timer_t* h) { static_cast<Thread*>(h->data)->heartbeat.beat(); }, 0, 1000);
      uv_async_init(&t->loop, &t->stop_async, on_stop);
      t->stop_async.data = t.get();
      uv_timer_init(&t->loop, &t->drain_timer);
      t->drain_timer.data = t.get();
      threads.push_back(std::move(t));
    }
    uv_async_init(&threads[0]->loop, &reload_request, [](uv_async_t* a) {
      auto* impl = static_cast<Impl*>(a->data);
      if (impl->reload_handler) impl->reload_handler();
    });
    reload_request.data = this;
    threads[0]->reload_request = &reload_request;
    if (table) {
      watcher =
          std::make_unique<k8s::Watcher>(&threads[0]->loop, core::watcher_settings(o), *table);
      threads[0]->watcher = watcher.get();
      if (!watcher->start()) {
        throw std::invalid_argument("--kube=on: no Kubernetes API server found");
      }
    }
    start_admin(o);
  }

  void start_admin(const Options& o) {
    uv_loop_init(&admin_loop);
    admin_loop_ready = true;
    uv_async_init(&admin_loop, &admin_stop, [](uv_async_t* a) {
      auto* impl = static_cast<Impl*>(a->data);
      for (auto& s : impl->admin_servers) s->close();
      if (impl->config_watch) impl->config_watch->close();
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    admin_stop.data = this;
    auto serve = [&](const std::string& address, const char* flag, bool health, bool metrics) {
      if (address.empty()) return;
      auto server = std::make_unique<admin::HttpServer>(&admin_loop);
      if (health) {
        server->route("/health", [this](const admin::Request&) { return liveness(); });
        server->route("/ready", [this](const admin::Request&) { return readiness(); });
      }
      if (metrics) {
        server->route("/metrics", [this](const admin::Request&) {
          return admin::Response{.status = 200,
                                 .body = render_metrics(),
                                 .content_type = std::string(admin::TextWriter::kContentType)};
        });
      }
      admin_servers.push_back(std::move(server));
      // checked_options() vetted the address.
      if (int err = admin_servers.back()->listen(net::parse_address(address, -1).value());
          err < 0) {
        stop_admin();
        throw std::runtime_error(std::string(flag) + ": cannot listen on " + address + ": " +
                                 uv_strerror(err));
      }
    };
    bool shared = o.health == o.metrics;
    serve(o.health, "--health", true, shared);
    if (!shared) serve(o.metrics, "--metrics", false, true);
  }

  // Closes the admin servers and runs their loop out (used when run() never started it).
  void stop_admin() {
    uv_async_send(&admin_stop);
    uv_run(&admin_loop, UV_RUN_DEFAULT);
    uv_loop_close(&admin_loop);
    admin_ran = true;
  }

  admin::Response liveness() {
    admin::LivenessFacts facts;
    for (auto& t : threads) facts.heartbeat_age_ms.push_back(t->heartbeat.age_ms());
    return admin::liveness(facts);
  }

  admin::Response readiness() {
    uint64_t now = admin::monotonic_ms();
    admin::ReadinessFacts facts{.listeners_bound = true,
                                .last_upstream_answer_age_ms = admin::kNever,
                                .last_upstream_failure_age_ms = admin::kNever,
                                .kube_required = options.kube == "on",
                                .kube_synced = table && table->synced(),
                                .draining = stopping.load()};
    for (upstream::ServerState* s : servers.all()) {
      facts.last_upstream_answer_age_ms =
          std::min(facts.last_upstream_answer_age_ms, admin::age_ms(s->last_answer_ms, now));
      facts.last_upstream_failure_age_ms =
          std::min(facts.last_upstream_failure_age_ms, admin::age_ms(s->last_failure_ms, now));
    }
    return admin::readiness(facts);
  }

  std::string render_metrics() {
    namespace cd = admin::coredns;
    using core::Counters;
    uint64_t hits = 0, misses = 0, coalesced = 0, stale = 0;
    uint64_t rrl_dropped = 0, rrl_slipped = 0, shed = 0, unknown_id = 0, wrong_source = 0;
    uint64_t rcodes[16] = {};
    std::array<uint64_t, Counters::kRequestSeries> requests{};
    std::vector<admin::HistogramSnapshot> durations(Counters::kTypes);
    for (auto& t : threads) {
      const Counters& c = t->worker->counters();
      for (size_t i = 0; i < requests.size(); ++i) requests[i] += c.requests[i].get();
      for (size_t i = 0; i < Counters::kTypes; ++i) c.request_duration[i].add_to(durations[i]);
      hits += c.cache_hits.get();
      misses += c.cache_misses.get();
      coalesced += c.coalesced.get();
      stale += c.stale_answers.get();
      rrl_dropped += c.rrl_dropped.get();
      rrl_slipped += c.rrl_slipped.get();
      shed += c.shed.get();
      unknown_id += t->transport->replies_with_unknown_id();
      wrong_source += t->transport->replies_from_wrong_source();
      for (int r = 0; r < 16; ++r) rcodes[r] += c.responses_by_rcode[r].get();
    }
    std::string server = cd::server_label(*net::parse_address(options.listen.front(), 53));
    constexpr std::string_view kView = "";  // CoreDNS's label when no view is configured
    admin::TextWriter w;
    // Only the series that saw a query, as CoreDNS writes them.
    w.begin(cd::kDnsRequestsTotal);
    for (bool stream : {false, true}) {
      for (bool ipv6 : {false, true}) {
        for (size_t type = 0; type < Counters::kTypes; ++type) {
          uint64_t n = requests[Counters::request_index(stream, ipv6, type)];
          if (!n) continue;
          w.sample({server, cd::kZoneRoot, kView, stream ? cd::kProtoTcp : cd::kProtoUdp,
                    ipv6 ? cd::kFamilyIpv6 : cd::kFamilyIpv4, cd::qtype_label_at(type)},
                   n);
        }
      }
    }
    w.begin(cd::kDnsRequestDurationSeconds);
    for (size_t type = 0; type < Counters::kTypes; ++type) {
      if (durations[type].count()) {
        w.histogram({server, cd::kZoneRoot, kView, cd::qtype_label_at(type)}, durations[type]);
      }
    }
    w.begin(cd::kDnsResponsesTotal);
    for (uint16_t r = 0; r < 16; ++r) {
      if (rcodes[r]) w.sample({server, cd::kZoneRoot, kView, cd::rcode_label(r), ""}, rcodes[r]);
    }
    w.begin(cd::kCacheEntries);
    w.sample({server, cd::kCacheSuccess}, cache->size());
    w.begin(cd::kCacheBytes);
    w.sample(cache->bytes());
    w.begin(cd::kCacheRequestsTotal);
    w.sample({server}, hits + misses);
    w.begin(cd::kCacheHitsTotal);
    w.sample({server, cd::kCacheSuccess}, hits);
    w.begin(cd::kCacheMissesTotal);
    w.sample({server}, misses);
    w.begin(cd::kCacheEvictionsTotal);
    w.sample({server, cd::kCacheSuccess}, cache->evictions());
    // CoreDNS's name for readyns_stale_answers_total, for its dashboards: the same count.
    w.begin(cd::kCacheServedStaleTotal);
    w.sample({server}, stale);
    render_forward_metrics(w);
    if (table) {
      w.begin(cd::kEndpointsReady);
      w.sample(table->ready_endpoints());
      w.begin(cd::kWatchEventsTotal);
      for (size_t type = 0; type < std::size(k8s::kEventTypeNames); ++type) {
        w.sample({k8s::kEventTypeNames[type]}, watcher->events(k8s::EventType(type)));
      }
      w.begin(cd::kInvalidationsTotal);
      w.sample(invalidations.load(std::memory_order_relaxed));
    }
    w.begin(cd::kCoalescedTotal);
    w.sample(coalesced);
    w.begin(cd::kStaleAnswersTotal);
    w.sample(stale);
    w.begin(cd::kUpstreamRefusedRepliesTotal);
    w.sample({"id"}, unknown_id);
    w.sample({"source"}, wrong_source);
    w.begin(cd::kTcpConnections);
    w.sample(connections->open());
    w.begin(cd::kTcpRefusedTotal);
    w.sample({"total"}, connections->refused_over_total());
    w.sample({"per_client"}, connections->refused_over_client());
    w.begin(cd::kRateLimitedTotal);
    w.sample({"drop"}, rrl_dropped);
    w.sample({"slip"}, rrl_slipped);
    w.begin(cd::kShedTotal);
    w.sample(shed);
    w.begin(cd::kBuildInfo);
    w.sample({READYNS_VERSION}, 1);
    return w.take();
  }

  // The forward plugin's families, and current CoreDNS's proxy_* names for the same data.
  void render_forward_metrics(admin::TextWriter& w) {
    namespace cd = admin::coredns;
    struct Upstream {
      std::string to;
      const upstream::ServerState* state;
      std::vector<admin::HistogramSnapshot> replies;  // by RCODE
    };
    std::vector<Upstream> upstreams;
    for (const upstream::ServerState* s : servers.all()) {
      Upstream& u = upstreams.emplace_back(Upstream{s->address.to_string(), s, {}});
      for (const admin::Histogram& h : s->reply_durations) u.replies.push_back(h.snapshot());
    }
    w.begin(cd::kForwardRequestsTotal);
    for (const Upstream& u : upstreams) w.sample({u.to}, u.state->queries.load());
    w.begin(cd::kForwardResponsesTotal);
    for (const Upstream& u : upstreams) {
      for (uint16_t r = 0; r < u.replies.size(); ++r) {
        if (uint64_t n = u.replies[r].count()) w.sample({u.to, cd::rcode_label(r)}, n);
      }
    }
    for (const admin::MetricSpec* spec :
         {&cd::kForwardRequestDurationSeconds, &cd::kProxyRequestDurationSeconds}) {
      w.begin(*spec);
      bool proxy = spec == &cd::kProxyRequestDurationSeconds;
      for (const Upstream& u : upstreams) {
        for (uint16_t r = 0; r < u.replies.size(); ++r) {
          if (!u.replies[r].count()) continue;
          std::string rcode = cd::rcode_label(r);
          if (proxy) {
            w.histogram({cd::kProxyNameForward, u.to, rcode}, u.replies[r]);
          } else {
            w.histogram({u.to, rcode}, u.replies[r]);
          }
        }
      }
    }
    w.begin(cd::kForwardHealthcheckFailuresTotal);
    for (const Upstream& u : upstreams) w.sample({u.to}, u.state->probe_failures.load());
    w.begin(cd::kForwardHealthcheckBrokenTotal);
    w.sample(servers.all_failing_resolutions.load(std::memory_order_relaxed));
    w.begin(cd::kProxyHealthcheckFailuresTotal);
    for (const Upstream& u : upstreams) {
      w.sample({cd::kProxyNameForward, u.to}, u.state->probe_failures.load());
    }
  }

  ~Impl() { tear_down(); }

  void tear_down() {
    if (admin_loop_ready && !admin_ran) stop_admin();
    for (auto& t : threads) {
      if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&t->stop_async))) stop_now(*t);
      uv_run(&t->loop, UV_RUN_DEFAULT);  // let every handle finish closing
      t->worker.reset();
      t->transport.reset();
      uv_loop_close(&t->loop);
    }
  }

  // Stops taking queries, then lets answers in flight go out before closing the rest.
  static void on_stop(uv_async_t* async) {
    Thread& t = *static_cast<Thread*>(async->data);
    if (t.watcher) std::exchange(t.watcher, nullptr)->stop([] {});
    t.worker->close_listeners();
    close_control_handles(t);
    t.drain_started = uv_now(&t.loop);
    uv_timer_start(&t.drain_timer, on_drain_tick, 0, kDrainPollMs);
  }

  static void on_drain_tick(uv_timer_t* timer) {
    Thread& t = *static_cast<Thread*>(timer->data);
    if (t.worker->in_flight() > 0 && uv_now(&t.loop) - t.drain_started < kDrainDeadlineMs) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&t.drain_timer), nullptr);
    t.worker->close();
    t.transport->close();
  }

  // The asyncs that steer a thread; the first thread also holds the reload request.
  static void close_control_handles(Thread& t) {
    uv_close(reinterpret_cast<uv_handle_t*>(&t.stop_async), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&t.reconfigure_async), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&t.heartbeat_timer), nullptr);
    if (t.reload_request) uv_close(reinterpret_cast<uv_handle_t*>(t.reload_request), nullptr);
  }

  static void stop_now(Thread& t) {
    if (t.watcher) std::exchange(t.watcher, nullptr)->stop([] {});
    t.worker->close_listeners();
    close_control_handles(t);
    uv_close(reinterpret_cast<uv_handle_t*>(&t.drain_timer), nullptr);
    t.worker->close();
    t.transport->close();
  }
};

Server::Server(const Options& options) : impl_(std::make_unique<Impl>(options)) {}
Server::~Server() = default;

void Server::run() {
  auto& threads = impl_->threads;
  impl_->admin_ran = true;
  impl_->admin_thread = std::thread([impl = impl_.get()] {
    uv_run(&impl->admin_loop, UV_RUN_DEFAULT);
    uv_loop_close(&impl->admin_loop);
  });
  for (size_t i = 1; i < threads.size(); ++i) {
    threads[i]->thread = std::thread([t = threads[i].get()] { uv_run(&t->loop, UV_RUN_DEFAULT); });
  }
  uv_run(&threads[0]->loop, UV_RUN_DEFAULT);
  for (size_t i = 1; i < threads.size(); ++i) threads[i]->thread.join();
  uv_async_send(&impl_->admin_stop);
  impl_->admin_thread.join();
}

void Server::reload(const Options& given) {
  const Options options = core::checked_options(given, true);  // throws: the old ones stay
  const Options& old = impl_->options;
  core::WorkerSettings settings = core::worker_settings(options, &impl_->servers);
  auto ignored = [](const char* what) {
    spdlog::warn("reload: {} changes need a restart; keeping the running value", what);
  };
  if (options.listen != old.listen) ignored("listen");
  if (options.threads != old.threads) ignored("threads");
  if (options.cache_size != old.cache_size || options.cache_memory_mib != old.cache_memory_mib ||
      options.stale_max != old.stale_max) {
    ignored("cache");
  }
  if (options.watch_config != old.watch_config) ignored("watch_config");
  if (options.tcp_idle_timeout_ms != old.tcp_idle_timeout_ms ||
      options.tcp_max_connections != old.tcp_max_connections ||
      options.tcp_max_connections_per_client != old.tcp_max_connections_per_client ||
      options.tcp_max_pipelined != old.tcp_max_pipelined) {
    ignored("tcp");
  }
  if (options.kube != old.kube || options.kube_api != old.kube_api ||
      options.kube_namespaces != old.kube_namespaces ||
      options.cluster_domain != old.cluster_domain || options.kube_ttl != old.kube_ttl) {
    ignored("kube");
  }
  for (auto& t : impl_->threads) {
    {
      std::lock_guard lock(t->reconfigure_mutex);
      t->new_settings = settings;
    }
    uv_async_send(&t->reconfigure_async);
  }
  spdlog::set_level(spdlog::level::from_str(options.log_level));
}

void Server::on_reload_request(std::function<void()> handler) {
  impl_->reload_handler = std::move(handler);
}

void Server::request_reload() {
  // Once stopping, the first loop may have closed the handle.
  if (!impl_->stopping.load()) uv_async_send(&impl_->reload_request);
}

void Server::reload_on_change(const std::string& path) {
  if (impl_->admin_ran) throw std::logic_error("reload_on_change() after run()");
  impl_->config_watch =
      std::make_unique<config::FileWatch>(&impl_->admin_loop, path, [this] { request_reload(); });
  impl_->config_watch->start();
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  for (auto& t : impl_->threads) uv_async_send(&t->stop_async);
}

}  // namespace readyns
