// Every setting's key, flag, reading and checks, and validate() over all of them.
#include "config/settings.hpp"

#include <charconv>
#include <set>
#include <utility>

#include "k8s/settings.hpp"
#include "net/address.hpp"
#include "wire/message.hpp"

namespace readyns::config {

InvalidSetting::InvalidSetting(std::string key_, std::string_view flag_,
                               const std::string& problem_)
    : std::invalid_argument(std::string(flag_) + ": " + problem_),
      key(std::move(key_)),
      flag(flag_),
      problem(problem_) {}

namespace {

constexpr uint32_t kDay = 86400;

// Returns why `text` is refused, or an empty string if it is fine.
using Check = std::string (*)(std::string_view text);

template <class T>
std::string range_problem(T lo, T hi, std::string_view got) {
  return "expected a number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got '" +
         std::string(got) + "'";
}

template <class T>
T parse_number(std::string_view text, T lo, T hi) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi) {
    throw BadValue(range_problem(lo, hi, text));
  }
  return value;
}

// YAML 1.1's words for booleans, as yaml-cpp reads them, so `randomize_case: yes` works too.
bool parse_bool(std::string_view text) {
  std::string lower;
  for (char c : text) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  throw BadValue("expected true or false, got '" + std::string(text) + "'");
}

std::string indexed(std::string_view key, size_t i) {
  return std::string(key) + "[" + std::to_string(i) + "]";
}

std::string listen_problem(std::string_view text) {
  return address_problem(text, 53);
}

// Accepted from flags and files: resolv.conf references are read later, once the final listen
// addresses are known.
std::string upstream_item_problem(std::string_view text) {
  return upstream_problem(text);
}

// What a Server can use: by then every resolv.conf reference must have been read.
std::string resolved_upstream_problem(std::string_view text) {
  if (is_resolv_conf(text)) {
    return "'" + std::string(text) + "' not read yet (config::expand_resolv_conf)";
  }
  std::optional<net::Address> address = net::parse_address(text, 53);
  if (!address) return address_problem(text, 53);
  return address->port() == 0 ? "bad address '" + std::string(text) + "' (port 0)" : "";
}

// Off when empty; otherwise the port is required, since these have no conventional one.
std::string admin_problem(std::string_view text) {
  return text.empty() ? std::string() : address_problem(text, -1);
}

std::string url_problem(std::string_view text) {
  if (text.empty()) return {};
  for (std::string_view scheme : {"https://", "http://"}) {
    if (text.starts_with(scheme) && text.size() > scheme.size()) return {};
  }
  return "expected an https:// or http:// URL, got '" + std::string(text) + "'";
}

std::string any_text(std::string_view) {
  return {};
}

// A namespace name is an RFC 1123 label.
std::string namespace_problem(std::string_view text) {
  bool ok = !text.empty() && text.size() <= 63 && text.front() != '-' && text.back() != '-';
  for (char c : text) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  return ok ? std::string() : "bad namespace name '" + std::string(text) + "'";
}

std::string log_level_problem(std::string_view text) {
  for (std::string_view level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    if (text == level) return {};
  }
  return "expected trace, debug, info, warn, error, critical or off, got '" + std::string(text) +
         "'";
}

std::string kube_mode_problem(std::string_view text) {
  if (text == "off" || text == "auto" || text == "on") return {};
  return "expected off, auto or on, got '" + std::string(text) + "'";
}

template <class T>
Setting number(std::string_view key, std::string_view flag, std::string_view arg,
               std::string_view help, T Options::*field, T lo, T hi) {
  return {key,
          flag,
          arg,
          help,
          Kind::kNumber,
          [=](Options& o, std::string_view v) { o.*field = parse_number<T>(v, lo, hi); },
          nullptr,
          [=](Options& o, const Options& from) { o.*field = from.*field; },
          [=](const Options& o) {
            if (o.*field < lo || o.*field > hi) {
              throw InvalidSetting(std::string(key), flag,
                                   range_problem(lo, hi, std::to_string(o.*field)));
            }
          }};
}

Setting text(std::string_view key, std::string_view flag, std::string_view arg,
             std::string_view help, std::string Options::*field, Check check) {
  return {key,
          flag,
          arg,
          help,
          Kind::kText,
          [=](Options& o, std::string_view v) {
            if (std::string problem = check(v); !problem.empty()) throw BadValue(problem);
            o.*field = v;
          },
          nullptr,
          [=](Options& o, const Options& from) { o.*field = from.*field; },
          [=](const Options& o) {
            if (std::string problem = check(o.*field); !problem.empty()) {
              throw InvalidSetting(std::string(key), flag, problem);
            }
          }};
}

Setting toggle(std::string_view key, std::string_view flag, std::string_view help,
               bool Options::*field) {
  return {key,
          flag,
          "",
          help,
          Kind::kSwitch,
          [=](Options& o, std::string_view v) { o.*field = parse_bool(v); },
          nullptr,
          [=](Options& o, const Options& from) { o.*field = from.*field; },
          [](const Options&) {}};
}

// `accept` judges items as flags and files give them, `check` what validate() lets through.
Setting list(std::string_view key, std::string_view flag, std::string_view arg,
             std::string_view help, std::vector<std::string> Options::*field, Check accept,
             Check check) {
  return {key,
          flag,
          arg,
          help,
          Kind::kList,
          [=](Options& o, std::string_view v) {
            if (std::string problem = accept(v); !problem.empty()) throw BadValue(problem);
            (o.*field).emplace_back(v);
          },
          [=](Options& o) { (o.*field).clear(); },
          [=](Options& o, const Options& from) { o.*field = from.*field; },
          [=](const Options& o) {
            const auto& items = o.*field;
            for (size_t i = 0; i < items.size(); ++i) {
              if (std::string problem = check(items[i]); !problem.empty()) {
                throw InvalidSetting(indexed(key, i), flag, problem);
              }
            }
          }};
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      parts.emplace_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

Setting forward() {
  constexpr std::string_view kFlag = "--forward";
  return {
      "forward",
      kFlag,
      "ZONE=ADDR:PORT[,...]",
      "forward ZONE to its own upstreams; the longest matching zone wins (repeatable)",
      Kind::kForward,
      [](Options& o, std::string_view v) {
        size_t eq = v.find('=');
        if (eq == std::string_view::npos || eq == 0 || eq + 1 == v.size()) {
          throw BadValue("expected ZONE=ADDR:PORT[,...], got '" + std::string(v) + "'");
        }
        ForwardZone zone{std::string(v.substr(0, eq)), split(v.substr(eq + 1), ',')};
        if (std::string problem = zone_problem(zone.zone); !problem.empty()) {
          throw BadValue(problem);
        }
        for (const std::string& u : zone.upstreams) {
          if (std::string problem = upstream_problem(u); !problem.empty()) {
            throw BadValue(problem);
          }
        }
        o.forward.push_back(std::move(zone));
      },
      [](Options& o) { o.forward.clear(); },
      [](Options& o, const Options& from) { o.forward = from.forward; },
      [=](const Options& o) {
        for (size_t i = 0; i < o.forward.size(); ++i) {
          const ForwardZone& f = o.forward[i];
          std::string at = indexed("forward", i);
          // Server reads an empty zone as the root, as embedders may rely on.
          if (!f.zone.empty()) {
            if (std::string problem = zone_problem(f.zone); !problem.empty()) {
              throw InvalidSetting(at + ".zone", kFlag, problem);
            }
          }
          if (f.upstreams.empty()) {
            throw InvalidSetting(at + ".upstreams", kFlag,
                                 "zone " + (f.zone.empty() ? "." : f.zone) + " has no upstream");
          }
          for (size_t j = 0; j < f.upstreams.size(); ++j) {
            if (std::string problem = resolved_upstream_problem(f.upstreams[j]); !problem.empty()) {
              throw InvalidSetting(indexed(at + ".upstreams", j), kFlag, problem);
            }
          }
        }
      }};
}

std::vector<Setting> make_settings() {
  return {
      list("listen", "--listen", "ADDR[:PORT]",
           "answer UDP and TCP queries here, port 53 if none (repeatable; default 127.0.0.1:53)",
           &Options::listen, listen_problem, listen_problem),
      list("upstreams", "--upstream", "ADDR[:PORT]",
           "forward the default zone '.' here, port 53 if none (repeatable); 'resolv.conf' or "
           "'resolv.conf:PATH' for the nameservers of /etc/resolv.conf or PATH, less our own "
           "listen addresses",
           &Options::upstreams, upstream_item_problem, resolved_upstream_problem),
      forward(),
      number<size_t>("cache.size", "--cache-size", "N",
                     "most answers kept in the cache (default 100000)", &Options::cache_size, 1,
                     100000000),
      number<size_t>("cache.memory_mib", "--cache-memory", "MIB",
                     "most memory the cached answers may take, in MiB (default 128)",
                     &Options::cache_memory_mib, 1, 1 << 20),
      number<uint32_t>("cache.min_ttl", "--min-ttl", "SECONDS",
                       "floor for cached positive answers (default 0)", &Options::min_ttl, 0, kDay),
      number<uint32_t>("cache.max_ttl", "--max-ttl", "SECONDS",
                       "ceiling for cached positive answers (default 30)", &Options::max_ttl, 0,
                       7 * kDay),
      number<uint32_t>("cache.neg_ttl", "--neg-ttl", "SECONDS",
                       "ceiling for cached NXDOMAIN/NODATA answers (default 5)", &Options::neg_ttl,
                       0, kDay),
      toggle("cache.prefetch", "--prefetch",
             "refresh an entry in the background when a hit comes in the last tenth of its TTL, "
             "so popular names never miss (off by default: a hit never reaches the upstream)",
             &Options::prefetch),
      number<uint32_t>("upstream.timeout_ms", "--upstream-timeout", "MS",
                       "longest wait for one upstream attempt (default 1000)",
                       &Options::upstream_timeout_ms, 10, 60000),
      number<uint32_t>("upstream.resolve_timeout_ms", "--resolve-timeout", "MS",
                       "longest wait for a whole resolution before SERVFAIL (default 4000)",
                       &Options::resolve_timeout_ms, 10, 60000),
      number<size_t>("upstream.max_in_flight", "--max-in-flight", "N",
                     "distinct misses upstream at once per worker thread; more get a stale "
                     "answer or REFUSED (default 10000)",
                     &Options::max_in_flight, 1, 1000000),
      toggle("upstream.randomize_case", "--randomize-case",
             "send query names to upstreams in random case (0x20) and require it echoed "
             "(--randomize-case=false to turn off)",
             &Options::randomize_case),
      number<uint32_t>("cache.stale_max", "--stale-max", "SECONDS",
                       "serve expired answers up to this old when upstreams fail (RFC 8767; "
                       "0 never; default 86400)",
                       &Options::stale_max, 0, 7 * 86400),
      number<uint32_t>("upstream.stale_answer_timeout_ms", "--stale-answer-timeout", "MS",
                       "with an expired answer at hand, wait this long for upstream before "
                       "serving it (0 never; default 1800)",
                       &Options::stale_answer_timeout_ms, 0, 60000),
      number<uint32_t>("tcp.idle_timeout_ms", "--tcp-idle-timeout", "MS",
                       "close a client TCP connection idle this long (default 10000)",
                       &Options::tcp_idle_timeout_ms, 10, 600000),
      number<unsigned>("tcp.max_connections", "--tcp-max-connections", "N",
                       "client TCP connections at once (default 1000)",
                       &Options::tcp_max_connections, 1, 1000000),
      number<unsigned>("tcp.max_connections_per_client", "--tcp-max-connections-per-client", "N",
                       "client TCP connections at once from one IP address (default 100)",
                       &Options::tcp_max_connections_per_client, 1, 1000000),
      number<unsigned>("tcp.max_pipelined", "--tcp-max-pipelined", "N",
                       "unanswered queries per client TCP connection before it is read no "
                       "further (default 100)",
                       &Options::tcp_max_pipelined, 1, 65535),
      number<uint32_t>("rrl.rate", "--rrl-rate", "N",
                       "UDP answers a second per client /24 (IPv4) or /56 (IPv6) and worker "
                       "thread; 0 for no limit (default 0)",
                       &Options::rrl_rate, 0, 1000000),
      number<uint32_t>("rrl.slip", "--rrl-slip", "N",
                       "of the answers over --rrl-rate, send one in N empty with TC=1 and drop "
                       "the rest; 0 drops them all (default 2)",
                       &Options::rrl_slip, 0, 10),
      text("kube.mode", "--kube", "off|auto|on",
           "answer headless Services from the EndpointSlice API: auto when an API server is "
           "found, on to require it (default auto)",
           &Options::kube, kube_mode_problem),
      text("kube.api", "--kube-api", "URL",
           "the API server, e.g. https://10.0.0.1:6443 (default: in-pod environment)",
           &Options::kube_api, url_problem),
      text("kube.token_file", "--kube-token-file", "FILE",
           "bearer token, re-read when it rotates (default: service account)",
           &Options::kube_token_file, any_text),
      text("kube.ca_file", "--kube-ca-file", "FILE",
           "CA bundle for the API server (default: service account's)", &Options::kube_ca_file,
           any_text),
      list("kube.namespaces", "--kube-namespace", "NS",
           "watch only this namespace (repeatable; default all)", &Options::kube_namespaces,
           namespace_problem, namespace_problem),
      text("kube.cluster_domain", "--cluster-domain", "DOMAIN",
           "the cluster's DNS domain (default cluster.local)", &Options::cluster_domain,
           k8s::cluster_domain_problem),
      // CoreDNS's kubernetes plugin takes 0 to 3600 for its `ttl`.
      number<uint32_t>("kube.ttl", "--kube-ttl", "SECONDS",
                       "TTL of the headless Services' records, and of the SOA in their denials "
                       "(at most 300 there), as CoreDNS's kubernetes ttl (0-3600; default 5)",
                       &Options::kube_ttl, 0, 3600),
      number<unsigned>("threads", "--threads", "N",
                       "worker threads, each with its own sockets (default 0: one per CPU)",
                       &Options::threads, 0, 256),
      text("log_level", "--log-level", "LEVEL",
           "trace, debug, info, warn, error, critical or off (default info)", &Options::log_level,
           log_level_problem),
      text("health", "--health", "ADDR:PORT",
           "serve /health and /ready over HTTP here; empty for none (default 127.0.0.1:8080)",
           &Options::health, admin_problem),
      text("metrics", "--metrics", "ADDR:PORT",
           "serve Prometheus /metrics over HTTP here; empty for none (default 127.0.0.1:9253)",
           &Options::metrics, admin_problem),
      toggle("query_log.enabled", "--query-log",
             "log a line per query (--query-log=false to turn off; default off)",
             &Options::query_log),
      number<uint32_t>("query_log.sample", "--query-log-sample", "N",
                       "log one query in N (default 1: every query)", &Options::query_log_sample, 1,
                       1000000),
      toggle("watch_config", "--watch-config",
             "reload when the --config file changes, as on SIGHUP (--watch-config=false to turn "
             "off; default off)",
             &Options::watch_config),
  };
}

std::string zone_key(std::string_view zone) {
  std::string key;
  for (char c : zone) key += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (key.size() > 1 && key.back() == '.') key.pop_back();
  return key.empty() ? "." : key;
}

}  // namespace

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = make_settings();
  return table;
}

const Setting* setting_by_key(std::string_view key) {
  for (const Setting& s : settings()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

const Setting* setting_by_flag(std::string_view flag) {
  for (const Setting& s : settings()) {
    if (s.flag == flag) return &s;
  }
  return nullptr;
}

bool is_resolv_conf(std::string_view upstream) {
  return upstream == "resolv.conf" || upstream.starts_with("resolv.conf:");
}

std::string address_problem(std::string_view text, int default_port) {
  if (net::parse_address(text, default_port)) return {};
  return "bad address '" + std::string(text) + "'" +
         (default_port < 0 ? " (expected IP:PORT or [IPv6]:PORT)" : "");
}

std::string domain_problem(std::string_view text) {
  uint8_t scratch[wire::kMaxNameLength];
  if (text.empty() || text == "." ||
      !wire::name_from_text(text.data(), text.size(), scratch, sizeof scratch)) {
    return "bad domain name '" + std::string(text) + "'";
  }
  return {};
}

std::string zone_problem(std::string_view text) {
  if (text == ".") return {};
  if (text.empty()) return "empty zone name (the root zone is '.')";
  uint8_t scratch[wire::kMaxNameLength];
  if (!wire::name_from_text(text.data(), text.size(), scratch, sizeof scratch)) {
    return "bad zone name '" + std::string(text) + "'";
  }
  return {};
}

std::string upstream_problem(std::string_view text) {
  if (text == "resolv.conf:") return "expected a path after 'resolv.conf:'";
  if (is_resolv_conf(text)) return {};
  return address_problem(text, 53);
}

void validate(const Options& o, bool listeners_required) {
  for (const Setting& s : settings()) s.check(o);
  if (listeners_required && o.listen.empty())
    throw InvalidSetting("listen", "--listen", "no listen address given");
  if (o.max_ttl < o.min_ttl) {
    throw InvalidSetting(
        "cache.max_ttl", "--max-ttl",
        std::to_string(o.max_ttl) + " is below the minimum TTL " + std::to_string(o.min_ttl));
  }
  // One set of upstreams per zone: a second would be silently ignored or shadow the first.
  std::set<std::string> zones;
  if (!o.upstreams.empty()) zones.insert(".");
  for (size_t i = 0; i < o.forward.size(); ++i) {
    std::string zone = zone_key(o.forward[i].zone);
    if (!zones.insert(zone).second) {
      throw InvalidSetting(
          indexed("forward", i) + ".zone", "--forward",
          "zone " + zone + " given twice" +
              (zone == "." && !o.upstreams.empty() ? " (upstreams already serve '.')" : ""));
    }
  }
  if (!zones.contains(".")) {
    throw InvalidSetting("upstreams", "--upstream", "no upstream for the default zone '.'");
  }
}

}  // namespace readyns::config
