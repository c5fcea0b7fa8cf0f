// The YAML config file (--config FILE): read into Options, with the flags laid over it.
//
//   readyns::Options o = readyns::config::effective_options(cl);  // at start and on reload
#pragma once

#include <string>

#include "config/cli.hpp"
#include "config/settings.hpp"
#include "readyns/options.hpp"

namespace readyns::config {

// The file over the defaults. Syntax, keys, types and every value are checked as they are read,
// errors naming the file, line and key ("readyns.yaml:12: cache.max_tll: unknown key").
// resolv.conf references stay as written: they are read once the final listen addresses are
// known. Whole-option checks (validate()) are left to effective_options(), because flags may
// complete what the file leaves out. Throws ConfigError.
Options load_config(const std::string& path);

// `file` with every setting the command line gave taken from the flags instead; a list given on
// the command line replaces the file's list rather than adding to it.
Options merge(Options file, const CommandLine& flags);

// What the daemon runs with, at start and on each reload: the file named by --config or
// --check-config (if any), the flags over it, resolv.conf references read, and validate()d.
// An error names the file, line and key when the value came from the file, else the flag.
// Throws ConfigError (UsageError never: flags were parsed before).
Options effective_options(const CommandLine& cl);

}  // namespace readyns::config
