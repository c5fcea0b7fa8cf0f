// fuzz_config: the YAML config file, alone and under a few flags.
//
// It goes through config::effective_options, the path the daemon and --check-config take. A refusal
// must be a ConfigError naming the file; whatever validate() accepts must also be accepted by the
// parts that use it (addresses, the forwarder's zones, the endpoint table's cluster domain), or
// --check-config would pass a file the daemon then refuses.
//
// Input: the file's text. resolv.conf references may only name files in the fuzzer's scratch
// directory, /tmp/readyns-fuzz-config/ (the test keeps out of /dev and /proc:
// "resolv.conf:/dev/stdin" would block).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "config/cli.hpp"
#include "config/file.hpp"
#include "config/settings.hpp"
#include "fuzz_common.hpp"
#include "k8s/endpoint_table.hpp"
#include "net/address.hpp"
#include "readyns/options.hpp"
#include "upstream/forwarder.hpp"
#include "upstream/transport.hpp"

using namespace readyns;

namespace {

std::string config_path;  // in kScratch, with a resolv.conf and an empty one

struct NoTransport final : upstream::Transport {
  void send(const net::Address&, upstream::Protocol, std::span<uint8_t>, uint32_t,
            upstream::Exchange*) override {}
  uint64_t now_ms() const override { return 0; }
};

// What readyns::Server does with the options, short of binding sockets.
void check_usable(const Options& o) {
  for (const std::string& l : o.listen) FUZZ_CHECK(net::parse_address(l, 53).has_value());
  std::vector<upstream::ZoneServers> zones;
  auto add = [&](const std::string& zone, const std::vector<std::string>& servers) {
    upstream::ZoneServers z{.zone = zone.empty() ? "." : zone, .servers = {}};
    for (const std::string& s : servers) {
      std::optional<net::Address> a = net::parse_address(s, 53);
      FUZZ_CHECK(a.has_value());
      z.servers.push_back(*a);
    }
    zones.push_back(std::move(z));
  };
  if (!o.upstreams.empty()) add(".", o.upstreams);
  for (const ForwardZone& f : o.forward) add(f.zone, f.upstreams);
  NoTransport transport;
  upstream::ServerPool pool;
  try {
    upstream::Forwarder forwarder({}, zones, pool, transport);
    FUZZ_CHECK(forwarder.zone_for(std::vector<uint8_t>{0}) != nullptr);  // a default zone
  } catch (const std::exception& e) {
    std::fprintf(stderr, "validate() passed, the forwarder refused: %s\n", e.what());
    FUZZ_CHECK(!"forwarder refused validated zones");
  }
  if (o.kube != "off") {
    try {
      k8s::EndpointTable table({.cluster_domain = o.cluster_domain});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "validate() passed, the endpoint table refused: %s\n", e.what());
      FUZZ_CHECK(!"endpoint table refused a validated cluster domain");
    }
  }
  FUZZ_CHECK(o.min_ttl <= o.max_ttl);
  FUZZ_CHECK(o.cache_size >= 1);
}

void run(const std::vector<const char*>& argv) {
  config::CommandLine cl;
  try {
    cl = config::parse_command_line(int(argv.size()), argv.data());
  } catch (const config::ConfigError&) {
    FUZZ_CHECK(!"the fixed flags are valid");
  }
  try {
    Options o = config::effective_options(cl);
    config::validate(o);  // what effective_options() returns is valid
    check_usable(o);
  } catch (const config::ConfigError& e) {
    // Refusals name the file (or a flag).
    std::string what = e.what();
    FUZZ_CHECK(what.starts_with(config_path) || what.starts_with("--"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped: %s: %s\n", typeid(e).name(), e.what());
    FUZZ_CHECK(!"only ConfigError may leave effective_options()");
  }
}

constexpr std::string_view kScratch = "/tmp/readyns-fuzz-config/";

bool safe(std::string_view text) {
  // resolv.conf:PATH reads PATH: only files in our scratch directory ("resolv.conf" alone reads
  // /etc/resolv.conf, which is fine).
  for (size_t at = text.find("conf:"); at != std::string_view::npos;
       at = text.find("conf:", at + 1)) {
    std::string_view rest = text.substr(at + 5);
    if (!rest.starts_with(kScratch)) return false;
  }
  // Escapes could spell a path the check above does not see.
  return text.find('\\') == std::string_view::npos && text.find("..") == std::string_view::npos &&
         text.find("/dev") == std::string_view::npos &&
         text.find("/proc") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  std::string dir(kScratch);
  mkdir(dir.c_str(), 0700);  // shared by parallel runs; each has its own config file
  config_path = dir + "readyns-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(dir + "resolv.conf") << "# test\nnameserver 10.0.0.2\nnameserver fd00::2\n"
                                        "nameserver fe80::1%eth0\nsearch svc.cluster.local\n"
                                        "options ndots:5\n";
  std::ofstream(dir + "empty.conf") << "# nothing\n";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!safe(text)) return 0;
  std::ofstream(config_path, std::ios::binary | std::ios::trunc).write(text.data(), long(size));
  run({"readyns", "--config", config_path.c_str()});
  run({"readyns", "--config", config_path.c_str(), "--upstream", "10.0.0.1:53", "--max-ttl", "60",
       "--forward", "cluster.local=10.96.0.10:53", "--kube", "off"});
  return 0;
}
