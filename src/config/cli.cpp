// Command-line flags to Options, through the setting table the config file shares.
#include "config/cli.hpp"

namespace readyns::config {

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    const Setting* setting = setting_by_flag(arg);
    bool file_flag = arg == "--config" || arg == "--check-config";
    if (!setting && !file_flag && arg != "--help") {
      throw UsageError("unknown flag '" + std::string(argv[i]) + "'");
    }
    if (arg == "--help") {
      if (inline_value) throw UsageError("--help: takes no value");
      cl.help = true;
      continue;
    }
    if (setting && setting->kind == Kind::kSwitch) {
      if (!inline_value) value = "true";
    } else if (!inline_value) {
      if (i + 1 >= argc) throw UsageError(std::string(arg) + ": missing value");
      value = argv[++i];
    }
    if (file_flag) {
      if (!cl.config_path.empty()) throw UsageError(std::string(arg) + ": one config file only");
      if (value.empty()) throw UsageError(std::string(arg) + ": missing value");
      cl.config_path = value;
      cl.check_config = arg == "--check-config";
      continue;
    }
    // A list flag's first use replaces the default (and, after merge(), the file's list).
    if (setting->clear && !cl.given.contains(setting->key)) setting->clear(cl.options);
    cl.given.insert(setting->key);
    try {
      setting->set(cl.options, value);
    } catch (const BadValue& e) {
      throw UsageError(std::string(arg) + ": " + e.what());
    }
  }
  return cl;
}

std::string usage() {
  std::string text =
      "Usage: readyns [--config FILE] [FLAGS]\n"
      "A DNS cache and forwarder for Kubernetes service discovery.\n\n"
      "Example: readyns --listen 127.0.0.1:5353 --upstream 127.0.0.1:5300 "
      "--forward cluster.local=10.96.0.10:53\n\n"
      "Flags (each also a key of the config file, named in brackets; flags override the "
      "file):\n";
  auto line = [&](std::string_view flag, std::string_view arg, std::string_view help,
                  std::string_view key) {
    text.append("  ").append(flag);
    if (!arg.empty()) text.append(" ").append(arg);
    text.append("  ").append(help);
    if (!key.empty()) text.append(" [").append(key).append("]");
    text += "\n";
  };
  line("--config", "FILE", "read settings from this YAML file", "");
  line("--check-config", "FILE", "check this YAML file (with any flags) and exit: 0 if valid", "");
  for (const Setting& s : settings()) line(s.flag, s.arg, s.help, s.key);
  line("--help", "", "print this help", "");
  return text;
}

}  // namespace readyns::config
