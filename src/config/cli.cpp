// Command-line flags to Options.
#include "config/cli.hpp"

#include <charconv>
#include <functional>
#include <map>
#include <string_view>
#include <thread>

namespace readyns::config {
namespace {

template <class T>
T parse_number(std::string_view flag, std::string_view text, T lo, T hi) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi) {
    throw UsageError(std::string(flag) + ": expected a number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + ", got '" + std::string(text) + "'");
  }
  return value;
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

struct Flag {
  const char* help;
  std::function<void(Options&, std::string_view)> apply;  // null: takes no value
};

const std::map<std::string_view, Flag>& flags() {
  constexpr uint32_t kDay = 86400;
  static const std::map<std::string_view, Flag> table = {
      {"--listen",
       {"ADDR:PORT  answer UDP and TCP queries here (repeatable; default 127.0.0.1:53)",
        [](Options& o, std::string_view v) { o.listen.emplace_back(v); }}},
      {"--upstream",
       {"ADDR:PORT  forward the default zone '.' here (repeatable)",
        [](Options& o, std::string_view v) { o.upstreams.emplace_back(v); }}},
      {"--forward",
       {"ZONE=ADDR:PORT[,ADDR:PORT...]  forward ZONE to its own upstreams; the "
        "longest matching zone wins (repeatable)",
        [](Options& o, std::string_view v) {
          size_t eq = v.find('=');
          if (eq == std::string_view::npos || eq == 0 || eq + 1 == v.size()) {
            throw UsageError("--forward: expected ZONE=ADDR:PORT[,...], got '" + std::string(v) +
                             "'");
          }
          o.forward.push_back({std::string(v.substr(0, eq)), split(v.substr(eq + 1), ',')});
        }}},
      {"--cache-size",
       {"N  most answers kept in the cache (default 100000)",
        [](Options& o, std::string_view v) {
          o.cache_size = parse_number<size_t>("--cache-size", v, 1, 100000000);
        }}},
      {"--min-ttl",
       {"SECONDS  floor for cached positive answers (default 0)",
        [](Options& o, std::string_view v) {
          o.min_ttl = parse_number<uint32_t>("--min-ttl", v, 0, kDay);
        }}},
      {"--max-ttl",
       {"SECONDS  ceiling for cached positive answers (default 30)",
        [](Options& o, std::string_view v) {
          o.max_ttl = parse_number<uint32_t>("--max-ttl", v, 0, 7 * kDay);
        }}},
      {"--neg-ttl",
       {"SECONDS  ceiling for cached NXDOMAIN/NODATA answers (default 5)",
        [](Options& o, std::string_view v) {
          o.neg_ttl = parse_number<uint32_t>("--neg-ttl", v, 0, kDay);
        }}},
      {"--upstream-timeout",
       {"MS  longest wait for one upstream attempt (default 1000)",
        [](Options& o, std::string_view v) {
          o.upstream_timeout_ms = parse_number<uint32_t>("--upstream-timeout", v, 10, 60000);
        }}},
      {"--resolve-timeout",
       {"MS  longest wait for a whole resolution before SERVFAIL (default 4000)",
        [](Options& o, std::string_view v) {
          o.resolve_timeout_ms = parse_number<uint32_t>("--resolve-timeout", v, 10, 60000);
        }}},
      {"--randomize-case",
       {"send query names to upstreams in random case (0x20) and require it "
        "echoed",
        nullptr}},
      {"--tcp-idle-timeout",
       {"MS  close a client TCP connection idle this long (default 10000)",
        [](Options& o, std::string_view v) {
          o.tcp_idle_timeout_ms = parse_number<uint32_t>("--tcp-idle-timeout", v, 10, 600000);
        }}},
      {"--tcp-max-connections",
       {"N  client TCP connections at once (default 1000)",
        [](Options& o, std::string_view v) {
          o.tcp_max_connections = parse_number<unsigned>("--tcp-max-connections", v, 1, 1000000);
        }}},
      {"--kube",
       {"off|auto|on  answer headless Services from the EndpointSlice API: auto when an "
        "API server is found, on to require it (default auto)",
        [](Options& o, std::string_view v) {
          if (v != "off" && v != "auto" && v != "on") {
            throw UsageError("--kube: expected off, auto or on, got '" + std::string(v) + "'");
          }
          o.kube = v;
        }}},
      {"--kube-api",
       {"URL  the API server, e.g. https://10.0.0.1:6443 (default: in-pod environment)",
        [](Options& o, std::string_view v) { o.kube_api = v; }}},
      {"--kube-token-file",
       {"FILE  bearer token, re-read when it rotates (default: service account)",
        [](Options& o, std::string_view v) { o.kube_token_file = v; }}},
      {"--kube-ca-file",
       {"FILE  CA bundle for the API server (default: service account's)",
        [](Options& o, std::string_view v) { o.kube_ca_file = v; }}},
      {"--kube-namespace",
       {"NS  watch only this namespace (repeatable; default all)",
        [](Options& o, std::string_view v) { o.kube_namespaces.emplace_back(v); }}},
      {"--cluster-domain",
       {"DOMAIN  the cluster's DNS domain (default cluster.local)",
        [](Options& o, std::string_view v) { o.cluster_domain = v; }}},
      {"--threads",
       {"N  worker threads, each with its own sockets (default 1)",
        [](Options& o, std::string_view v) {
          o.threads = parse_number<unsigned>("--threads", v, 1, 256);
        }}},
      {"--log-level",
       {"LEVEL  trace, debug, info, warn, error or off (default info)",
        [](Options& o, std::string_view v) {
          static const char* levels[] = {"trace", "debug",    "info", "warn",
                                         "error", "critical", "off"};
          for (const char* l : levels) {
            if (v == l) return void(o.log_level = l);
          }
          throw UsageError("--log-level: unknown level '" + std::string(v) + "'");
        }}},
      {"--help", {"print this help", nullptr}},
  };
  return table;
}

}  // namespace

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  Options defaults;
  cl.options.listen.clear();
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    auto it = flags().find(arg);
    if (it == flags().end()) throw UsageError("unknown flag '" + std::string(argv[i]) + "'");
    if (arg == "--help") {
      cl.help = true;
      continue;
    }
    if (!it->second.apply) {
      if (inline_value) throw UsageError(std::string(arg) + ": takes no value");
      if (arg == "--randomize-case") cl.options.randomize_case = true;
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) throw UsageError(std::string(arg) + ": missing value");
      value = argv[++i];
    }
    it->second.apply(cl.options, value);
  }
  if (cl.options.listen.empty()) cl.options.listen = defaults.listen;
  return cl;
}

std::string usage() {
  std::string text =
      "Usage: readyns [FLAGS]\n"
      "A DNS cache and forwarder for Kubernetes service discovery.\n\n"
      "Example: readyns --listen 127.0.0.1:5353 --upstream 127.0.0.1:5300 "
      "--forward cluster.local=10.96.0.10:53\n\nFlags:\n";
  for (const auto& [name, flag] : flags()) {
    text += "  " + std::string(name) + " " + flag.help + "\n";
  }
  return text;
}

}  // namespace readyns::config
