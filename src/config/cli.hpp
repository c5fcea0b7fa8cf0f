// Command-line flags to Options. Errors name the flag; the daemon prints them and exits 2.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "config/settings.hpp"
#include "readyns/options.hpp"

namespace readyns::config {

struct CommandLine {
  Options options;                   // the defaults with the flags applied
  std::set<std::string_view> given;  // keys (Setting::key) of the settings the flags gave
  std::string config_path;           // --config or --check-config FILE; empty: flags only
  bool check_config = false;         // --check-config: validate and exit
  bool help = false;
};

// A flag that is unknown, lacks its value or has a bad one.
struct UsageError : ConfigError {
  using ConfigError::ConfigError;
};

CommandLine parse_command_line(int argc, const char* const* argv);
std::string usage();

}  // namespace readyns::config
