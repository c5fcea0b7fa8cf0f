// Unit tests for src/config.
//
// Every file key, refusals with file and line, resolv.conf upstreams, flags over the file, and
// validate().
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "config/cli.hpp"
#include "config/file.hpp"
#include "config/resolv_conf.hpp"
#include "config/settings.hpp"
#include "core/parts.hpp"
#include "k8s/endpoint_table.hpp"

using namespace readyns;
using namespace readyns::config;
using Strings = std::vector<std::string>;

namespace {

// A file in the temporary directory holding `text`, removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& text, const char* suffix = ".yaml") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "readyns-config-XXXXXX").string() + suffix;
    int fd = mkstemps(pattern.data(), int(std::string_view(suffix).size()));
    REQUIRE(fd >= 0);
    close(fd);
    path_ = pattern;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

CommandLine flags(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"readyns"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_command_line(int(argv.size()), argv.data());
}

// The message load_config() refuses `yaml` with, the temporary path shown as "F".
std::string load_error(const std::string& yaml) {
  TempFile file(yaml);
  try {
    load_config(file.path());
  } catch (const ConfigError& e) {
    std::string message = e.what();
    REQUIRE(message.starts_with(file.path()));
    return "F" + message.substr(file.path().size());
  }
  FAIL("accepted:\n" << yaml);
  return {};
}

// The message effective_options() refuses the file and flags with, the path shown as "F".
std::string effective_error(const std::string& yaml, std::initializer_list<const char*> args) {
  TempFile file(yaml);
  std::vector<const char*> all = {"--config", file.path().c_str()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<const char*> argv = {"readyns"};
  argv.insert(argv.end(), all.begin(), all.end());
  try {
    effective_options(parse_command_line(int(argv.size()), argv.data()));
  } catch (const ConfigError& e) {
    std::string message = e.what();
    if (message.starts_with(file.path())) message = "F" + message.substr(file.path().size());
    return message;
  }
  FAIL("accepted:\n" << yaml);
  return {};
}

std::string validate_error(const Options& o) {
  try {
    validate(o);
  } catch (const InvalidSetting& e) {
    return e.key + " | " + e.what();
  }
  return "valid";
}

Options valid_options() {
  Options o;
  o.upstreams = {"127.0.0.1:5300"};
  return o;
}

// Every key, each away from its default.
const char* const kEveryKey = R"(# every setting
listen: ["127.0.0.1:5353", "[::1]:5353"]
upstreams:
  - 192.0.2.1:53
  - "[2001:db8::1]:5300"
forward:
  - zone: cluster.local
    upstreams: [10.96.0.10:53, 10.96.0.11]
  - zone: in-addr.arpa.
    upstreams: 10.96.0.10:53
cache:
  size: 5000
  memory_mib: 64
  min_ttl: 2
  max_ttl: 600
  neg_ttl: 7
  stale_max: 3600
  prefetch: yes
upstream:
  timeout_ms: 300
  resolve_timeout_ms: 2500
  randomize_case: true
  max_in_flight: 500
  stale_answer_timeout_ms: 900
tcp:
  idle_timeout_ms: 7000
  max_connections: 50
  max_connections_per_client: 5
  max_pipelined: 8
rrl:
  rate: 200
  slip: 3
kube:
  mode: "on"
  api: https://10.0.0.1:6443
  token_file: /run/token
  ca_file: /run/ca.crt
  namespaces: [default, kube-system]
  cluster_domain: corp.example
  ttl: 30
threads: 4
log_level: debug
health: 127.0.0.1:18080
metrics: "[::1]:19253"
query_log:
  enabled: yes
  sample: 100
watch_config: true
)";

}  // namespace

TEST_CASE("config: every key is read into its option") {
  TempFile file(kEveryKey);
  Options o = load_config(file.path());
  CHECK(o.listen == Strings{"127.0.0.1:5353", "[::1]:5353"});
  CHECK(o.upstreams == Strings{"192.0.2.1:53", "[2001:db8::1]:5300"});
  REQUIRE(o.forward.size() == 2);
  CHECK(o.forward[0].zone == "cluster.local");
  CHECK(o.forward[0].upstreams == Strings{"10.96.0.10:53", "10.96.0.11"});
  CHECK(o.forward[1].zone == "in-addr.arpa.");
  CHECK(o.forward[1].upstreams == Strings{"10.96.0.10:53"});
  CHECK(o.cache_size == 5000);
  CHECK(o.cache_memory_mib == 64);
  CHECK(o.min_ttl == 2);
  CHECK(o.max_ttl == 600);
  CHECK(o.neg_ttl == 7);
  CHECK(o.prefetch);
  CHECK(o.upstream_timeout_ms == 300);
  CHECK(o.max_in_flight == 500);
  CHECK(o.resolve_timeout_ms == 2500);
  CHECK(o.randomize_case);
  CHECK(o.stale_max == 3600);
  CHECK(o.stale_answer_timeout_ms == 900);
  CHECK(o.tcp_idle_timeout_ms == 7000);
  CHECK(o.tcp_max_connections == 50);
  CHECK(o.tcp_max_connections_per_client == 5);
  CHECK(o.tcp_max_pipelined == 8);
  CHECK(o.rrl_rate == 200);
  CHECK(o.rrl_slip == 3);
  CHECK(o.kube == "on");
  CHECK(o.kube_api == "https://10.0.0.1:6443");
  CHECK(o.kube_token_file == "/run/token");
  CHECK(o.kube_ca_file == "/run/ca.crt");
  CHECK(o.kube_namespaces == Strings{"default", "kube-system"});
  CHECK(o.cluster_domain == "corp.example");
  CHECK(o.kube_ttl == 30);
  CHECK(o.threads == 4);
  CHECK(o.log_level == "debug");
  CHECK(o.health == "127.0.0.1:18080");
  CHECK(o.metrics == "[::1]:19253");
  CHECK(o.query_log);
  CHECK(o.query_log_sample == 100);
  CHECK(o.watch_config);
  CHECK_NOTHROW(validate(o));
}

TEST_CASE("config: the every-key file covers the whole setting table") {
  // A setting added to the table without a line in kEveryKey fails here, not silently.
  std::string text = kEveryKey;
  for (const Setting& s : settings()) {
    std::string_view key = s.key;
    std::string_view leaf = key.substr(key.rfind('.') + 1);
    INFO(key);
    CHECK(text.find("\n" + std::string(key.find('.') == key.npos ? "" : "  ") + std::string(leaf) +
                    ":") != std::string::npos);
    CHECK(setting_by_flag(s.flag) == &s);
  }
}

TEST_CASE("config: an empty file or empty group leaves the defaults") {
  Options defaults;
  for (const char* yaml : {"", "# nothing\n", "cache:\n", "cache: {}\nkube:\n"}) {
    TempFile file(yaml);
    Options o = load_config(file.path());
    CHECK(o.listen == defaults.listen);
    CHECK(o.cache_size == defaults.cache_size);
    CHECK(o.kube == defaults.kube);
    CHECK(o.health == defaults.health);
  }
}

TEST_CASE("config: a lone value stands for a list of one") {
  TempFile file("listen: 127.0.0.1:5353\nupstreams: 192.0.2.1\nkube: {namespaces: default}\n");
  Options o = load_config(file.path());
  CHECK(o.listen == Strings{"127.0.0.1:5353"});
  CHECK(o.upstreams == Strings{"192.0.2.1"});
  CHECK(o.kube_namespaces == Strings{"default"});
}

TEST_CASE("config: booleans in YAML's words, and mode off unquoted") {
  TempFile file("upstream: {randomize_case: on}\nquery_log: {enabled: False}\nkube: {mode: off}\n");
  Options o = load_config(file.path());
  CHECK(o.randomize_case);
  CHECK_FALSE(o.query_log);
  CHECK(o.kube == "off");  // YAML 1.1 would call it false; the key wants the word
}

TEST_CASE("config: unknown keys are refused with file, line and key") {
  CHECK(load_error("upstreams: [192.0.2.1]\ncache:\n  size: 10\n  max_tll: 5\n") ==
        "F:4: cache.max_tll: unknown key (did you mean cache.max_ttl?)");
  CHECK(load_error("\n\nmax_ttl: 5\n") ==
        "F:3: max_ttl: unknown key (did you mean cache.max_ttl?)");
  CHECK(load_error("cache-size: 5\n") == "F:1: cache-size: unknown key (did you mean cache.size?)");
  CHECK(load_error("bogus: 1\n") == "F:1: bogus: unknown key");
  CHECK(load_error("kube:\n  mode: auto\n  watch: all\n") == "F:3: kube.watch: unknown key");
  CHECK(load_error("forward:\n  - zone: a.example\n    upstreams: [192.0.2.1]\n"
                   "  - zone: b.example\n    upstream: [192.0.2.1]\n") ==
        "F:5: forward[1].upstream: unknown key (expected zone or upstreams)");
}

TEST_CASE("config: bad values and wrong types are refused with file, line and key") {
  using Case = std::pair<const char*, const char*>;
  auto [yaml, message] = GENERATE(
      Case{"cache:\n  size: lots\n",
           "F:2: cache.size: expected a number from 1 to 100000000, got 'lots'"},
      Case{"cache:\n  size: -1\n",
           "F:2: cache.size: expected a number from 1 to 100000000, got '-1'"},
      Case{"cache:\n  size: 0\n",
           "F:2: cache.size: expected a number from 1 to 100000000, got '0'"},
      Case{"cache:\n  size: \"10\"\n", "F:2: cache.size: expected a number, got the string \"10\""},
      Case{"cache:\n  size: 1.5\n",
           "F:2: cache.size: expected a number from 1 to 100000000, got '1.5'"},
      Case{"cache:\n  max_ttl: 604801\n",
           "F:2: cache.max_ttl: expected a number from 0 to 604800, got '604801'"},
      Case{"cache:\n  neg_ttl:\n", "F:2: cache.neg_ttl: missing value, expected a number"},
      Case{"cache:\n  min_ttl: [1]\n", "F:2: cache.min_ttl: expected a number, got a list"},
      Case{"threads: 257\n", "F:1: threads: expected a number from 0 to 256, got '257'"},
      Case{"threads: 99999999999999999999\n",
           "F:1: threads: expected a number from 0 to 256, got '99999999999999999999'"},
      Case{"upstream:\n  timeout_ms: 5\n",
           "F:2: upstream.timeout_ms: expected a number from 10 to 60000, got '5'"},
      Case{"upstream:\n  randomize_case: maybe\n",
           "F:2: upstream.randomize_case: expected true or false, got 'maybe'"},
      Case{"upstream:\n  randomize_case: \"true\"\n",
           "F:2: upstream.randomize_case: expected true or false, got the string \"true\""},
      Case{"tcp:\n  max_pipelined: 0\n",
           "F:2: tcp.max_pipelined: expected a number from 1 to 65535, got '0'"},
      Case{"listen: [127.0.0.1:53, not-an-ip:53]\n", "F:1: listen[1]: bad address 'not-an-ip:53'"},
      Case{"listen:\n  - 127.0.0.1:70000\n", "F:2: listen[0]: bad address '127.0.0.1:70000'"},
      Case{"listen: {a: 1}\n", "F:1: listen: expected a list"},
      Case{"upstreams:\n  - 192.0.2.1\n  - [192.0.2.2]\n",
           "F:3: upstreams[1]: expected a string, got a list"},
      Case{"upstreams: [999.1.1.1]\n", "F:1: upstreams[0]: bad address '999.1.1.1'"},
      Case{"upstreams: [\"resolv.conf:\"]\n",
           "F:1: upstreams[0]: expected a path after 'resolv.conf:'"},
      Case{"forward: {zone: a}\n", "F:1: forward: expected a list of {zone, upstreams}"},
      Case{"forward:\n  - a.example\n",
           "F:2: forward[0]: expected {zone: ZONE, upstreams: [ADDR:PORT, ...]}"},
      Case{"forward:\n  - upstreams: [192.0.2.1]\n", "F:2: forward[0]: zone missing"},
      Case{"forward:\n  - zone: a.example\n", "F:2: forward[0]: upstreams missing"},
      Case{"forward:\n  - zone: a..example\n    upstreams: [192.0.2.1]\n",
           "F:2: forward[0].zone: bad zone name 'a..example'"},
      Case{"forward:\n  - zone: a.example\n    upstreams:\n      - 10.0.0.1:x\n",
           "F:4: forward[0].upstreams[0]: bad address '10.0.0.1:x'"},
      Case{"kube:\n  mode: sometimes\n",
           "F:2: kube.mode: expected off, auto or on, got 'sometimes'"},
      Case{"kube:\n  api: 10.0.0.1:6443\n",
           "F:2: kube.api: expected an https:// or http:// URL, got '10.0.0.1:6443'"},
      Case{"kube:\n  namespaces: [default, Kube_System]\n",
           "F:2: kube.namespaces[1]: bad namespace name 'Kube_System'"},
      Case{"kube:\n  cluster_domain: .\n", "F:2: kube.cluster_domain: bad domain name '.'"},
      Case{"kube:\n  ttl: 3601\n", "F:2: kube.ttl: expected a number from 0 to 3600, got '3601'"},
      Case{"kube: on\n",
           "F:1: kube: expected a mapping of settings (mode, api, token_file, ca_file, namespaces, "
           "cluster_domain, ttl); did you mean kube.mode?"},
      Case{"upstream: 192.0.2.1\n",
           "F:1: upstream: expected a mapping of settings (timeout_ms, resolve_timeout_ms, "
           "max_in_flight, randomize_case, stale_answer_timeout_ms); did you mean upstreams?"},
      Case{"log_level: loud\n",
           "F:1: log_level: expected trace, debug, info, warn, error, critical or off, got 'loud'"},
      Case{"health: 127.0.0.1\n",
           "F:1: health: bad address '127.0.0.1' (expected IP:PORT or [IPv6]:PORT)"},
      Case{"metrics: [127.0.0.1:9253]\n", "F:1: metrics: expected a string, got a list"},
      Case{"query_log:\n  sample: 0\n",
           "F:2: query_log.sample: expected a number from 1 to 1000000, got '0'"},
      Case{"threads: 2\ncache: {size: 5}\nthreads: 3\n",
           "F:3: threads: given twice (first on line 1)"},
      Case{"- listen\n", "F:1: expected a mapping of settings"},
      Case{"cache:\n  size: [1,\n", "F:3: bad YAML: end of sequence flow not found"},
      Case{"cache:\n size: 1\n  min_ttl: 2\n", "F:3: bad YAML: illegal map value"});
  INFO(yaml);
  CHECK(load_error(yaml) == message);
}

TEST_CASE("config: an unreadable file is named") {
  CHECK_THROWS_WITH(load_config("/nonexistent/readyns.yaml"),
                    "/nonexistent/readyns.yaml: cannot read: No such file or directory");
  CHECK_THROWS_WITH(load_config("/"), "/: cannot read: is a directory");
}

TEST_CASE("config: whole-option problems point at the file's line, or at the flag") {
  // min_ttl from the file against the default max_ttl: the nearest line is the cache group's.
  CHECK(effective_error("upstreams: [192.0.2.1]\ncache:\n  min_ttl: 60\n", {}) ==
        "F:2: cache.max_ttl: 30 is below the minimum TTL 60");
  CHECK(effective_error("upstreams: [192.0.2.1]\ncache:\n  max_ttl: 10\n", {"--min-ttl", "20"}) ==
        "F:3: cache.max_ttl: 10 is below the minimum TTL 20");
  CHECK(effective_error("upstreams: [192.0.2.1]\ncache:\n  min_ttl: 60\n", {"--max-ttl", "10"}) ==
        "--max-ttl: 10 is below the minimum TTL 60");
  CHECK(effective_error("cache: {size: 5}\n", {}) ==
        "F: upstreams: no upstream for the default zone '.'");
  CHECK(effective_error("upstreams: [192.0.2.1]\nlisten: []\n", {}) ==
        "F:2: listen: no listen address given");
  CHECK(effective_error(
            "upstreams: [192.0.2.1]\nforward:\n  - zone: a.example\n    upstreams: []\n", {}) ==
        "F:4: forward[0].upstreams: zone a.example has no upstream");
  CHECK(effective_error("upstreams: [192.0.2.1]\nforward:\n  - zone: A.example.\n    upstreams: "
                        "[192.0.2.2]\n  - zone: a.example\n    upstreams: [192.0.2.3]\n",
                        {}) == "F:5: forward[1].zone: zone a.example given twice");
  CHECK(effective_error("upstreams: [resolv.conf:/nonexistent/resolv.conf]\n", {}) ==
        "F:1: upstreams[0]: cannot read /nonexistent/resolv.conf: No such file or directory");
}

TEST_CASE("config: flags override the file; a list flag replaces the file's list") {
  TempFile file(
      "listen: [127.0.0.1:5353, 127.0.0.1:5354]\nupstreams: [192.0.2.1]\n"
      "forward:\n  - zone: cluster.local\n    upstreams: [10.96.0.10]\n"
      "cache: {size: 5000, max_ttl: 60}\nupstream: {randomize_case: true}\n"
      "kube: {namespaces: [a, b]}\nthreads: 2\n");
  CommandLine cl =
      flags({"--config", file.path().c_str(), "--listen", "127.0.0.1:6000", "--cache-size", "42",
             "--randomize-case=false", "--kube-namespace", "c", "--health", "", "--query-log"});
  CHECK(cl.config_path == file.path());
  CHECK_FALSE(cl.check_config);
  Options o = effective_options(cl);
  CHECK(o.listen == Strings{"127.0.0.1:6000"});  // replaced, not appended to
  CHECK(o.cache_size == 42);
  CHECK_FALSE(o.randomize_case);
  CHECK(o.kube_namespaces == Strings{"c"});
  CHECK(o.health.empty());
  CHECK(o.query_log);
  // What the flags did not say comes from the file, then the defaults.
  CHECK(o.upstreams == Strings{"192.0.2.1"});
  REQUIRE(o.forward.size() == 1);
  CHECK(o.forward[0].zone == "cluster.local");
  CHECK(o.max_ttl == 60);
  CHECK(o.threads == 2);
  CHECK(o.neg_ttl == Options{}.neg_ttl);

  // merge() alone, as a reload uses it.
  Options merged = merge(load_config(file.path()), flags({"--forward", "a.example=192.0.2.9"}));
  REQUIRE(merged.forward.size() == 1);
  CHECK(merged.forward[0].zone == "a.example");
  CHECK(merged.listen == Strings{"127.0.0.1:5353", "127.0.0.1:5354"});
}

TEST_CASE("config: command line without a file") {
  CommandLine cl = flags({"--upstream", "192.0.2.1", "--tcp-max-pipelined", "7", "--metrics",
                          "[::1]:9253", "--query-log-sample=10", "--randomize-case"});
  CHECK(cl.config_path.empty());
  CHECK(cl.given == std::set<std::string_view>{"upstreams", "tcp.max_pipelined", "metrics",
                                               "query_log.sample", "upstream.randomize_case"});
  Options o = effective_options(cl);
  CHECK(o.listen == Options{}.listen);  // the default, since --listen was not given
  CHECK(o.tcp_max_pipelined == 7);
  CHECK(o.metrics == "[::1]:9253");
  CHECK(o.query_log_sample == 10);
  CHECK(o.randomize_case);

  CHECK(flags({"--check-config", "x.yaml"}).check_config);
  CHECK_THROWS_WITH(flags({"--config", "a.yaml", "--check-config", "b.yaml"}),
                    "--check-config: one config file only");
  CHECK_THROWS_WITH(flags({"--config"}), "--config: missing value");
  CHECK_THROWS_WITH(flags({"--tcp-max-pipelined", "0"}),
                    "--tcp-max-pipelined: expected a number from 1 to 65535, got '0'");
  CHECK_THROWS_WITH(flags({"--query-log=sometimes"}),
                    "--query-log: expected true or false, got 'sometimes'");
  CHECK_THROWS_WITH(flags({"--health", "localhost:80"}),
                    "--health: bad address 'localhost:80' (expected IP:PORT or [IPv6]:PORT)");
  CHECK_THROWS_WITH(flags({"--bogus"}), "unknown flag '--bogus'");
  // Problems found only with everything together still name the flag.
  CHECK_THROWS_WITH(effective_options(flags({"--listen", "127.0.0.1:53"})),
                    "--upstream: no upstream for the default zone '.'");
  CHECK_THROWS_WITH(effective_options(flags({"--upstream", "192.0.2.1", "--watch-config"})),
                    "--watch-config: there is no --config file to watch");
}

TEST_CASE("config: resolv.conf nameservers, without our own listen addresses") {
  TempFile conf(
      "# written by the kubelet\n"
      "search default.svc.cluster.local svc.cluster.local\n"
      "nameserver 192.0.2.53\n"
      "; a comment\n"
      "nameserver   127.0.0.1   # our own listener, left out\n"
      "nameserver 2001:db8::53\n"
      "nameserver fe80::1%eth0\n"
      "nameserver 192.0.2.53\n"
      "nameserver 10.0.0.3:53\n"
      "nameserver\n"
      "options ndots:5\n",
      ".conf");
  CHECK(read_resolv_conf(conf.path(), {"127.0.0.1:53"}) ==
        Strings{"192.0.2.53:53", "[2001:db8::53]:53"});
  // Another port is another server.
  CHECK(read_resolv_conf(conf.path(), {"127.0.0.1:5353"}) ==
        Strings{"192.0.2.53:53", "127.0.0.1:53", "[2001:db8::53]:53"});
  CHECK(read_resolv_conf(conf.path(), {"[2001:db8::53]:53", "192.0.2.53"}) ==
        Strings{"127.0.0.1:53"});
  // A wildcard listener on port 53 receives whatever is sent to a loopback address.
  CHECK(read_resolv_conf(conf.path(), {"0.0.0.0:53"}) ==
        Strings{"192.0.2.53:53", "[2001:db8::53]:53"});
  CHECK(read_resolv_conf(conf.path(), {"[::]:53"}) ==
        Strings{"192.0.2.53:53", "127.0.0.1:53", "[2001:db8::53]:53"});
}

TEST_CASE("config: resolv.conf with nothing usable is refused") {
  TempFile only_us("nameserver 127.0.0.1\nnameserver ::1\n", ".conf");
  CHECK_THROWS_WITH(read_resolv_conf(only_us.path(), {"127.0.0.1:53", "[::1]:53"}),
                    "no usable nameserver in " + only_us.path() +
                        " (127.0.0.1: one of our listen addresses, ::1: one of our listen "
                        "addresses)");
  TempFile empty("search example.org\n", ".conf");
  CHECK_THROWS_WITH(read_resolv_conf(empty.path(), {}), "no usable nameserver in " + empty.path());
  CHECK_THROWS_WITH(read_resolv_conf("/nonexistent/resolv.conf", {}),
                    "cannot read /nonexistent/resolv.conf: No such file or directory");
}

TEST_CASE("config: resolv.conf references expand in upstreams and forward zones") {
  TempFile conf("nameserver 192.0.2.53\nnameserver 169.254.20.10\nnameserver fd00::2\n", ".conf");
  TempFile file("listen: [169.254.20.10:53]\nupstreams: resolv.conf:" + conf.path() +
                "\nforward:\n  - zone: corp.example\n    upstreams: [192.0.2.1, resolv.conf:" +
                conf.path() + "]\n");
  Options o = effective_options(flags({"--config", file.path().c_str()}));
  CHECK(o.upstreams == Strings{"192.0.2.53:53", "[fd00::2]:53"});
  REQUIRE(o.forward.size() == 1);
  CHECK(o.forward[0].upstreams == Strings{"192.0.2.1", "192.0.2.53:53", "[fd00::2]:53"});

  // The listen addresses that count are the final ones, after the flags.
  o = effective_options(flags({"--config", file.path().c_str(), "--listen", "192.0.2.53:53"}));
  CHECK(o.upstreams == Strings{"169.254.20.10:53", "[fd00::2]:53"});

  // From a flag too; the plain word means /etc/resolv.conf.
  o = effective_options(flags({"--upstream", ("resolv.conf:" + conf.path()).c_str()}));
  CHECK(o.upstreams == Strings{"192.0.2.53:53", "169.254.20.10:53", "[fd00::2]:53"});
  Options plain;
  plain.upstreams = {"resolv.conf"};
  if (std::ifstream("/etc/resolv.conf")) {
    try {
      expand_resolv_conf(plain);
      CHECK_FALSE(plain.upstreams.empty());
    } catch (const InvalidSetting& e) {
      CHECK(e.key == "upstreams[0]");  // a machine whose resolv.conf names no nameserver
    }
  }
}

TEST_CASE("config: validate() refuses what Server cannot use, naming key and flag") {
  Options o = valid_options();
  CHECK(validate_error(o) == "valid");
  o.listen.clear();
  CHECK(validate_error(o) == "listen | --listen: no listen address given");
  o = valid_options();
  o.listen = {"127.0.0.1:53", "nowhere"};
  CHECK(validate_error(o) == "listen[1] | --listen: bad address 'nowhere'");
  o = valid_options();
  o.upstreams = {"resolv.conf"};
  CHECK(validate_error(o) ==
        "upstreams[0] | --upstream: 'resolv.conf' not read yet (config::expand_resolv_conf)");
  o = valid_options();
  o.upstreams.clear();
  CHECK(validate_error(o) == "upstreams | --upstream: no upstream for the default zone '.'");
  o.forward = {{.zone = ".", .upstreams = {"192.0.2.1"}}};
  CHECK(validate_error(o) == "valid");
  o.forward.push_back({.zone = "", .upstreams = {"192.0.2.2"}});  // Server reads "" as "."
  CHECK(validate_error(o) == "forward[1].zone | --forward: zone . given twice");
  o = valid_options();
  o.forward = {{.zone = "a.example", .upstreams = {"192.0.2.1", "192.0.2.2:x"}}};
  CHECK(validate_error(o) == "forward[0].upstreams[1] | --forward: bad address '192.0.2.2:x'");
  o = valid_options();
  o.min_ttl = 40;
  CHECK(validate_error(o) == "cache.max_ttl | --max-ttl: 30 is below the minimum TTL 40");
  o = valid_options();
  o.cache_size = 0;
  CHECK(validate_error(o) ==
        "cache.size | --cache-size: expected a number from 1 to 100000000, got '0'");
  o = valid_options();
  o.threads = 257;
  CHECK(validate_error(o) == "threads | --threads: expected a number from 0 to 256, got '257'");
  o = valid_options();
  o.kube = "maybe";
  CHECK(validate_error(o) == "kube.mode | --kube: expected off, auto or on, got 'maybe'");
  o = valid_options();
  o.cluster_domain = "";
  CHECK(validate_error(o) == "kube.cluster_domain | --cluster-domain: bad domain name ''");
  // Fuzzing (fuzz_config): the endpoint table refused a domain validate() let through.
  o = valid_options();
  std::string label(63, 'a');
  o.cluster_domain = label + "." + label + "." + label + "." + std::string(50, 'a');
  CHECK(validate_error(o) == "valid");
  CHECK_NOTHROW(k8s::EndpointTable({.cluster_domain = o.cluster_domain}));
  o.cluster_domain += "a";
  CHECK(validate_error(o) ==
        "kube.cluster_domain | --cluster-domain: domain too long: 'hostmaster." + o.cluster_domain +
            "' must fit in 255 bytes");
  CHECK_THROWS_AS(k8s::EndpointTable({.cluster_domain = o.cluster_domain}), std::invalid_argument);
  o = valid_options();
  o.health = "";
  o.metrics = "127.0.0.1";
  CHECK(validate_error(o) ==
        "metrics | --metrics: bad address '127.0.0.1' (expected IP:PORT or [IPv6]:PORT)");
  o = valid_options();
  o.query_log_sample = 0;
  CHECK(validate_error(o) ==
        "query_log.sample | --query-log-sample: expected a number from 1 to 1000000, got '0'");
}

TEST_CASE("config: threads 0, the default, runs one worker per CPU the process may run on") {
  Options o;
  CHECK(o.threads == 0);
  CHECK(core::worker_count(o) == uv_available_parallelism());
  o.threads = 3;
  CHECK(core::worker_count(o) == 3);
}
