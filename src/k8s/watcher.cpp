// The watcher: per stream, list (paged) then watch from the list's resourceVersion.
//
// It re-watches from the last seen version when a watch ends or drops, and relists when the watch
// reports an error (410: the version has expired; any other: the server's view may have moved on
// without us).
#include "k8s/watcher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "k8s/curl_uv.hpp"

namespace readyns::k8s {
namespace {

constexpr long kConnectTimeoutMs = 10000;
constexpr long kListTimeoutMs = 120000;
constexpr long kWatchGraceMs = 30000;               // past the watch's own timeoutSeconds
constexpr size_t kMaxListBody = size_t(256) << 20;  // one list page: far above 500 slices
constexpr size_t kMaxWatchLine = size_t(64) << 20;  // one event; an EndpointSlice is < 1 MiB
constexpr size_t kMaxErrorBody = 64 << 10;          // of a non-200 answer, kept for the log
// A watch the server ends cleanly after this long is healthy (its timeoutSeconds, or an API server
// without a watch cache, which ends quiet watches early): re-watch at once. Shorter and empty, it
// backs off, or a server ending every watch at once would be asked in a tight loop.
constexpr uint64_t kHealthyWatchMs = 1000;

std::string escaped(std::string_view text) {
  char* out = curl_easy_escape(nullptr, text.data(), int(text.size()));
  std::string result = out ? out : "";
  curl_free(out);
  return result;
}

}  // namespace

struct Watcher::Stream {
  Watcher* owner = nullptr;
  std::string namespace_name;  // empty: all namespaces
  uv_timer_t retry_timer;
  CURL* easy = nullptr;  // the transfer under way
  bool watching = false;
  std::string resource_version;  // the last one seen: where a watch resumes
  bool listed = false;           // the first list has completed
  bool must_list = true;         // no list yet, or the resourceVersion expired
  std::string continue_token;    // of a paged list under way
  std::vector<Slice> pending;    // its pages so far
  std::string body;              // the list's body, an error body, or the unfinished watch line
  std::optional<int32_t> watch_error;  // the code of the ERROR event that ended the watch
  bool watch_had_lines = false;
  uint64_t watch_started_ms = 0;  // loop time
  unsigned failures = 0;          // in a row, for the backoff

  static size_t on_write(char* data, size_t size, size_t count, void* self) {
    Stream& s = *static_cast<Stream*>(self);
    std::string_view bytes(data, size * count);
    long status = 0;
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &status);
    if (s.watching && status == 200) return s.owner->on_watch_bytes(s, bytes) ? bytes.size() : 0;
    size_t cap = status == 200 ? kMaxListBody : kMaxErrorBody;
    if (s.body.size() + bytes.size() > cap) return 0;
    s.body.append(bytes);
    return bytes.size();
  }
};

Watcher::Watcher(uv_loop_t* loop, WatcherSettings settings, EndpointTable& table)
    : loop_(loop), settings_(std::move(settings)), table_(table), random_(std::random_device{}()) {}

Watcher::~Watcher() = default;

bool Watcher::start() {
  std::string error;
  api_ = locate_api(settings_, error);
  if (!api_) {
    if (!error.empty()) {
      spdlog::error("k8s: {}", error);
      return false;
    }
    spdlog::info("k8s: not watching the Kubernetes API (mode off, or no API server found)");
    return true;
  }
  spdlog::info("k8s: watching EndpointSlices at {}", api_->base_url);
  curl_ = std::make_unique<CurlUv>(loop_);
  std::vector<std::string> namespaces = settings_.namespaces;
  if (namespaces.empty()) namespaces.emplace_back();
  for (std::string& namespace_name : namespaces) {
    auto stream = std::make_unique<Stream>();
    stream->owner = this;
    stream->namespace_name = std::move(namespace_name);
    uv_timer_init(loop_, &stream->retry_timer);
    stream->retry_timer.data = stream.get();
    begin_list(*stream);
    streams_.push_back(std::move(stream));
  }
  return true;
}

void Watcher::stop(std::function<void()> on_closed) {
  on_closed_ = std::move(on_closed);
  open_handles_ = 1;  // held until every close below is under way
  if (curl_) {
    ++open_handles_;
    curl_->close([this] { closed_one(); });
  }
  for (auto& stream : streams_) {
    ++open_handles_;
    uv_close(reinterpret_cast<uv_handle_t*>(&stream->retry_timer),
             [](uv_handle_t* handle) { static_cast<Stream*>(handle->data)->owner->closed_one(); });
  }
  closed_one();
}

void Watcher::closed_one() {
  if (--open_handles_ == 0 && on_closed_) std::exchange(on_closed_, nullptr)();
}

bool Watcher::synced() const {
  return !streams_.empty() &&
         std::all_of(streams_.begin(), streams_.end(), [](const auto& s) { return s->listed; });
}

std::string Watcher::collection_path(const Stream& s) const {
  if (s.namespace_name.empty()) return api_->base_url + "/apis/discovery.k8s.io/v1/endpointslices";
  return api_->base_url + "/apis/discovery.k8s.io/v1/namespaces/" + escaped(s.namespace_name) +
         "/endpointslices";
}

CURL* Watcher::new_request(Stream& s, const std::string& url, curl_slist*& headers,
                           long timeout_ms) {
  CURL* easy = curl_easy_init();
  headers = curl_slist_append(nullptr, "Accept: application/json");
  if (!api_->token_file.empty()) {
    // Read before every request: the kubelet rotates projected service account tokens.
    std::string token = read_token(api_->token_file);
    if (token.empty()) {
      spdlog::warn("k8s: no token could be read from {}", api_->token_file);
    } else {
      headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
    }
  }
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  if (!api_->ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, api_->ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Stream::on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  // A watch may be silent for minutes: keepalives find a peer that vanished meanwhile.
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // lists compress well
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "readyns");
  s.easy = easy;
  s.body.clear();
  return easy;
}

void Watcher::begin_list(Stream& s) {
  std::string url = collection_path(s) + "?limit=" + std::to_string(settings_.list_page_size);
  if (!s.continue_token.empty()) url += "&continue=" + escaped(s.continue_token);
  curl_slist* headers = nullptr;
  CURL* easy = new_request(s, url, headers, kListTimeoutMs);
  s.watching = false;
  curl_->start(easy, headers, [this, &s](CURL* done, CURLcode result) {
    long status = 0;
    curl_easy_getinfo(done, CURLINFO_RESPONSE_CODE, &status);
    s.easy = nullptr;
    on_list_done(s, status, result);
  });
}

void Watcher::on_list_done(Stream& s, long status, CURLcode result) {
  std::string scope = s.namespace_name.empty() ? "all namespaces" : s.namespace_name;
  if (result == CURLE_OK && status == 200) {
    std::optional<SliceList> page = parse_slice_list(s.body);
    s.body = std::string();  // a big list's buffer is not worth keeping
    if (page) {
      std::move(page->items.begin(), page->items.end(), std::back_inserter(s.pending));
      s.continue_token = std::move(page->continue_token);
      if (!s.continue_token.empty()) return begin_list(s);
      spdlog::info("k8s: listed {} EndpointSlices in {} at resourceVersion {}", s.pending.size(),
                   scope, page->resource_version);
      table_.replace_all(s.namespace_name, std::exchange(s.pending, {}));
      s.resource_version = std::move(page->resource_version);
      s.listed = true;
      s.must_list = false;
      if (synced()) table_.mark_synced();
      return begin_watch(s);
    }
  } else if (result == CURLE_OK && status == 410 && !s.continue_token.empty()) {
    spdlog::info("k8s: the list's continue token expired in {}: listing afresh", scope);
    s.continue_token.clear();
    s.pending.clear();
    return begin_list(s);
  } else if (result != CURLE_OK) {
    spdlog::warn("k8s: listing EndpointSlices in {} failed: {}", scope, curl_easy_strerror(result));
  } else {
    spdlog::warn("k8s: listing EndpointSlices in {} failed: HTTP {}{} {:.300}", scope, status,
                 status == 401 ? " (the token is re-read before the retry)" : "", s.body);
  }
  s.continue_token.clear();
  s.pending.clear();
  retry_later(s);
}

void Watcher::begin_watch(Stream& s) {
  // Jittered like client-go's, so that many caches do not re-watch all at once.
  uint32_t timeout_s = settings_.watch_timeout_s + std::uniform_int_distribution<uint32_t>(
                                                       0, settings_.watch_timeout_s)(random_);
  std::string url = collection_path(s) + "?watch=1&resourceVersion=" + escaped(s.resource_version) +
                    "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_s);
  curl_slist* headers = nullptr;
  CURL* easy = new_request(s, url, headers, long(timeout_s) * 1000 + kWatchGraceMs);
  s.watching = true;
  s.watch_error.reset();
  s.watch_had_lines = false;
  s.watch_started_ms = uv_now(loop_);
  curl_->start(easy, headers, [this, &s](CURL* done, CURLcode result) {
    long status = 0;
    curl_easy_getinfo(done, CURLINFO_RESPONSE_CODE, &status);
    s.easy = nullptr;
    on_watch_done(s, status, result);
  });
}

void Watcher::on_watch_done(Stream& s, long status, CURLcode result) {
  std::string scope = s.namespace_name.empty() ? "all namespaces" : s.namespace_name;
  if (status == 410 || s.watch_error == 410) {
    s.must_list = true;
    spdlog::info("k8s: resourceVersion {} is too old in {}: relisting", s.resource_version, scope);
    return begin_list(s);
  }
  if (s.watch_error) {  // any other ERROR, logged: relist after a pause, lest a failing server loop
                        // us
    s.must_list = true;
    return retry_later(s);
  }
  if (result == CURLE_OK && status == 200) {
    // The server ended the watch (timeoutSeconds): resume at once if it was a healthy one.
    if (s.watch_had_lines || uv_now(loop_) - s.watch_started_ms >= kHealthyWatchMs) {
      s.failures = 0;
      return begin_watch(s);
    }
  } else if (result != CURLE_OK && status == 200) {
    spdlog::warn("k8s: the EndpointSlice watch in {} broke off: {}", scope,
                 curl_easy_strerror(result));
  } else if (result != CURLE_OK) {
    spdlog::warn("k8s: watching EndpointSlices in {} failed: {}", scope,
                 curl_easy_strerror(result));
  } else {
    spdlog::warn("k8s: watching EndpointSlices in {} failed: HTTP {}{} {:.300}", scope, status,
                 status == 401 ? " (the token is re-read before the retry)" : "", s.body);
  }
  retry_later(s);
}

bool Watcher::on_watch_bytes(Stream& s, std::string_view bytes) {
  s.body.append(bytes);
  size_t start = 0;
  for (size_t end; (end = s.body.find('\n', start)) != std::string::npos; start = end + 1) {
    std::string_view line(s.body.data() + start, end - start);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (!apply_event(s, line)) return false;
  }
  s.body.erase(0, start);
  if (s.body.size() > kMaxWatchLine) {
    spdlog::warn("k8s: a watch event is larger than {} bytes: reconnecting", kMaxWatchLine);
    return false;
  }
  return true;
}

bool Watcher::apply_event(Stream& s, std::string_view line) {
  std::optional<WatchEvent> event = parse_watch_event(line);
  if (!event) return true;  // logged; the stream goes on
  const EventType type = event->type;
  s.watch_had_lines = true;
  bool go_on = true;
  if (type == EventType::kError) {
    s.watch_error = event->status_code;
    if (event->status_code != 410) {
      spdlog::warn("k8s: the watch reported an error {}: {}: relisting", event->status_code,
                   event->message);
    }
    go_on = false;  // the server ends the watch after an ERROR event; so do we
  } else {
    if (!event->resource_version.empty()) s.resource_version = event->resource_version;
    table_.apply(std::move(*event));
    s.failures = 0;
  }
  // Counted once applied: a reader that sees the count sees the event's effects (the table, the
  // invalidated answers) too.
  events_[size_t(type)].fetch_add(1, std::memory_order_release);
  return go_on;
}

void Watcher::retry_later(Stream& s) {
  uint64_t base = std::max<uint32_t>(settings_.backoff_initial_ms, 1);
  for (unsigned i = 0; i < s.failures && base < settings_.backoff_max_ms; ++i) base *= 2;
  base = std::min<uint64_t>(base, std::max(settings_.backoff_max_ms, settings_.backoff_initial_ms));
  // "Equal jitter": half the delay fixed, half random, so retries spread but still back off.
  uint64_t delay = base / 2 + std::uniform_int_distribution<uint64_t>(0, base - base / 2)(random_);
  ++s.failures;
  uv_timer_start(
      &s.retry_timer,
      [](uv_timer_t* timer) {
        Stream& stream = *static_cast<Stream*>(timer->data);
        Watcher& self = *stream.owner;
        if (stream.must_list) {
          self.begin_list(stream);
        } else {
          self.begin_watch(stream);
        }
      },
      delay, 0);
}

}  // namespace readyns::k8s
