// Every setting once: its config-file key, its flag, how its text is read, and validate().
//
// validate() holds the checks the command line, the config file and readyns::Server all share.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "readyns/options.hpp"

namespace readyns::config {

// A refused configuration, its message complete ("readyns.yaml:12: cache.max_tll: unknown key"
// or "--max-ttl: ..."); the daemon prints it and exits 2, a reload keeps the old settings.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A value a setting cannot take. The message says why without naming the setting, so that the
// flag parser and the file loader can each name it their own way.
struct BadValue : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// validate()'s refusal. `key` locates the value in config-file terms ("cache.max_ttl",
// "forward[1].upstreams[0]") so a file's line can be found; what() is "FLAG: PROBLEM".
struct InvalidSetting : std::invalid_argument {
  InvalidSetting(std::string key, std::string_view flag, const std::string& problem);
  std::string key;
  std::string flag;
  std::string problem;
};

enum class Kind {
  kNumber,   // an unsigned integer in a range
  kText,     // a string, possibly checked (an address, a name, one of a few words)
  kSwitch,   // a boolean; as a flag, present means true
  kList,     // strings; a flag adds one, the file gives them all
  kForward,  // the forward zones: ZONE=ADDR,... as a flag, {zone, upstreams} in the file
};

struct Setting {
  std::string_view key;   // "cache.max_ttl" in the file
  std::string_view flag;  // "--max-ttl"
  std::string_view arg;   // the flag's value in --help ("SECONDS"); empty for a switch
  std::string_view help;
  Kind kind;
  // Reads one value (for lists: one more item) into the options; throws BadValue.
  std::function<void(Options&, std::string_view)> set;
  // Lists: drops the items so far (the default, or the file's when flags replace them).
  std::function<void(Options&)> clear;
  // Takes this setting's value from `from`: how flags override a file.
  std::function<void(Options&, const Options&)> copy;
  // validate()'s check of this setting alone; throws InvalidSetting.
  std::function<void(const Options&)> check;
};

// Every setting, in the order --help lists them.
const std::vector<Setting>& settings();
const Setting* setting_by_key(std::string_view key);
const Setting* setting_by_flag(std::string_view flag);

// Checks `o` as a whole the way readyns::Server needs it: every number in range, every address
// and name well-formed, a listen address (unless not `listeners_required`: an embedded resolver
// may answer its caller alone) and a default upstream present, TTL bounds in order, no zone
// twice. Throws InvalidSetting naming the first problem.
void validate(const Options& o, bool listeners_required = true);

// "resolv.conf" or "resolv.conf:/path" in place of an upstream: the nameservers of that file,
// read by expand_resolv_conf() (config/resolv_conf.hpp) before the options are used.
bool is_resolv_conf(std::string_view upstream);

// Shared value checks: an empty string if `text` is fine, otherwise why not.
std::string address_problem(std::string_view text, int default_port);  // -1: port required
std::string domain_problem(std::string_view text);                     // not the root
std::string zone_problem(std::string_view text);                       // "." allowed
std::string upstream_problem(std::string_view text);  // an address or a resolv.conf reference

}  // namespace readyns::config
