// Command-line flags to Options. Errors name the flag; the daemon prints them and exits 2.
#pragma once

#include <stdexcept>
#include <string>

#include "readyns/options.hpp"

namespace readyns::config {

struct CommandLine {
  Options options;
  bool help = false;
};

// A flag that is unknown, lacks its value or has a bad one.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

CommandLine parse_command_line(int argc, const char* const* argv);
std::string usage();

}  // namespace readyns::config
