// Reading the YAML config file into Options, every error naming the file, line and key.
#include "config/file.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "config/resolv_conf.hpp"

namespace readyns::config {
namespace {

// The options read, and the line of every key and list item ("cache.max_ttl", "listen[2]",
// "forward[1].zone"), so that problems found only later can still point into the file.
struct Parsed {
  Options options;
  std::map<std::string, int> lines;
};

bool is_group(std::string_view key) {
  return std::any_of(settings().begin(), settings().end(), [&](const Setting& s) {
    return s.key.size() > key.size() && s.key.starts_with(key) && s.key[key.size()] == '.';
  });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The key meant by an unknown one: a typo ("cache.max_tll"), a setting at the wrong level
// ("max_ttl" for "cache.max_ttl"), or a flag's spelling ("cache-size"). Empty if none is close.
std::string suggestion(const std::string& key) {
  std::vector<std::string> known;
  for (const Setting& s : settings()) {
    known.emplace_back(s.key);
    if (size_t dot = s.key.find('.'); dot != std::string_view::npos) {
      known.emplace_back(s.key.substr(0, dot));
    }
  }
  auto last = [](std::string_view k) { return k.substr(k.rfind('.') + 1); };
  std::string flagless = key;
  std::replace(flagless.begin(), flagless.end(), '-', '_');
  std::string best;
  size_t best_distance = 3;  // more than two edits away is no typo
  for (const std::string& k : known) {
    size_t d = last(k) == last(key) ? 1 : edit_distance(flagless, k);
    for (const Setting& s : settings()) {
      if (s.key == k && s.flag.substr(2) == key) d = 0;  // the flag's name as a key
    }
    if (d < best_distance && k != key) {
      best = k;
      best_distance = d;
    }
  }
  return best;
}

// "a mapping of settings", with the keys a group takes ("upstream" is easily mistaken for
// "upstreams", "kube" for "kube.mode").
std::string what_belongs(const std::string& group) {
  std::string text = "a mapping of settings";
  if (group.empty()) return text;
  std::string keys;
  for (const Setting& s : settings()) {
    if (s.key.starts_with(group + ".")) {
      keys += (keys.empty() ? "" : ", ") + std::string(s.key.substr(group.size() + 1));
    }
  }
  text += " (" + keys + ")";
  if (std::string hint = suggestion(group); !hint.empty()) text += "; did you mean " + hint + "?";
  return text;
}

// "forward[1].upstreams[0]" -> "forward[1].upstreams" -> "forward[1]" -> "forward" -> "".
std::string parent(const std::string& key) {
  size_t cut = key.find_last_of(".[");
  return cut == std::string::npos ? std::string() : key.substr(0, cut);
}

class Loader {
 public:
  explicit Loader(std::string path) : path_(std::move(path)) {}

  Parsed load() {
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) fail(0, "", "cannot read: is a directory");
    std::ifstream in(path_);
    if (!in) fail(0, "", std::string("cannot read: ") + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    YAML::Node root;
    try {
      root = YAML::Load(text.str());
    } catch (const YAML::Exception& e) {
      fail(e.mark.is_null() ? 0 : e.mark.line + 1, "", "bad YAML: " + e.msg);
    }
    if (!root.IsNull()) mapping(root, "", 1);  // an empty file leaves the defaults
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(int line, const std::string& key, const std::string& problem) const {
    std::string where = path_ + (line > 0 ? ":" + std::to_string(line) : "");
    throw ConfigError(where + ": " + (key.empty() ? "" : key + ": ") + problem);
  }

  // A null value has no place of its own (yaml-cpp marks the next token): use its key's.
  static int line_of(const YAML::Node& node, int fallback) {
    return node.IsNull() || node.Mark().is_null() ? fallback : node.Mark().line + 1;
  }

  // Notes where `key` is, refusing it the second time: yaml-cpp keeps both, the later unused.
  void place(const std::string& key, int line) {
    auto [at, fresh] = out_.lines.emplace(key, line);
    if (!fresh) fail(line, key, "given twice (first on line " + std::to_string(at->second) + ")");
  }

  // The top level, or a group of settings such as cache: {...}.
  void mapping(const YAML::Node& node, const std::string& prefix, int line) {
    if (!node.IsMap()) fail(line_of(node, line), prefix, "expected " + what_belongs(prefix));
    for (auto it = node.begin(); it != node.end(); ++it) {
      int key_line = line_of(it->first, line);
      if (!it->first.IsScalar()) fail(key_line, prefix, "expected a setting's name as key");
      std::string key = (prefix.empty() ? "" : prefix + ".") + it->first.Scalar();
      place(key, key_line);
      if (const Setting* s = setting_by_key(key)) {
        setting(*s, it->second, key, key_line);
      } else if (is_group(key)) {
        if (!it->second.IsNull()) mapping(it->second, key, key_line);  // "cache:" sets nothing
      } else {
        std::string hint = suggestion(key);
        fail(key_line, key, "unknown key" + (hint.empty() ? "" : " (did you mean " + hint + "?)"));
      }
    }
  }

  void setting(const Setting& s, const YAML::Node& node, const std::string& key, int line) {
    switch (s.kind) {
      case Kind::kNumber:
      case Kind::kText:
      case Kind::kSwitch:
        set(s, key, line, scalar(node, key, line, s.kind));
        break;
      case Kind::kList:
        s.clear(out_.options);  // the file's list replaces the default, as a flag's does
        for_each_item(node, key, line,
                      [&](const std::string& item_key, int item_line, const std::string& text) {
                        set(s, item_key, item_line, text);
                      });
        break;
      case Kind::kForward:
        forward(node, line);
        break;
    }
  }

  void set(const Setting& s, const std::string& key, int line, const std::string& text) {
    try {
      s.set(out_.options, text);
    } catch (const BadValue& e) {
      fail(line, key, e.what());
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key, int line, Kind kind) const {
    const char* expected = kind == Kind::kNumber   ? "a number"
                           : kind == Kind::kSwitch ? "true or false"
                                                   : "a string";
    if (node.IsNull()) {
      if (kind == Kind::kText) return "";  // "health:" is health: "", which the check judges
      fail(line, key, std::string("missing value, expected ") + expected);
    }
    if (!node.IsScalar()) {
      fail(line_of(node, line), key,
           std::string("expected ") + expected + ", got a " +
               (node.IsSequence() ? "list" : "mapping"));
    }
    // A quoted "30" is a string in YAML; taking it as a number would hide a templating mistake.
    bool quoted = node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
    if (kind != Kind::kText && quoted) {
      fail(line_of(node, line), key,
           std::string("expected ") + expected + ", got the string \"" + node.Scalar() + "\"");
    }
    return node.Scalar();
  }

  // A list's items, or a lone value as a list of one ("upstreams: resolv.conf").
  template <class F>
  void for_each_item(const YAML::Node& node, const std::string& key, int line, F each) {
    if (node.IsScalar()) return each(key, line, node.Scalar());
    if (!node.IsSequence()) fail(line_of(node, line), key, "expected a list");
    size_t i = 0;
    for (const YAML::Node& item : node) {
      std::string item_key = key + "[" + std::to_string(i++) + "]";
      int item_line = line_of(item, line);
      place(item_key, item_line);
      each(item_key, item_line, scalar(item, item_key, item_line, Kind::kText));
    }
  }

  // forward: [{zone: cluster.local, upstreams: [10.96.0.10:53]}, ...]
  void forward(const YAML::Node& node, int line) {
    if (!node.IsSequence()) {
      fail(line_of(node, line), "forward", "expected a list of {zone, upstreams}");
    }
    out_.options.forward.clear();
    size_t i = 0;
    for (const YAML::Node& item : node) {
      std::string at = "forward[" + std::to_string(i++) + "]";
      int item_line = line_of(item, line);
      place(at, item_line);
      if (!item.IsMap()) fail(item_line, at, "expected {zone: ZONE, upstreams: [ADDR:PORT, ...]}");
      ForwardZone zone;
      bool has_zone = false, has_upstreams = false;
      for (auto it = item.begin(); it != item.end(); ++it) {
        int key_line = line_of(it->first, item_line);
        std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
        std::string key = at + "." + name;
        if (name == "zone") {
          place(key, key_line);
          zone.zone = scalar(it->second, key, key_line, Kind::kText);
          if (std::string problem = zone_problem(zone.zone); !problem.empty()) {
            fail(key_line, key, problem);
          }
          has_zone = true;
        } else if (name == "upstreams") {
          place(key, key_line);
          for_each_item(it->second, key, key_line,
                        [&](const std::string& item_key, int l, const std::string& text) {
                          if (std::string problem = upstream_problem(text); !problem.empty()) {
                            fail(l, item_key, problem);
                          }
                          zone.upstreams.push_back(text);
                        });
          has_upstreams = true;
        } else {
          fail(key_line, key, "unknown key (expected zone or upstreams)");
        }
      }
      if (!has_zone) fail(item_line, at, "zone missing");
      if (!has_upstreams) fail(item_line, at, "upstreams missing");
      out_.options.forward.push_back(std::move(zone));
    }
  }

  std::string path_;
  Parsed out_;
};

}  // namespace

Options load_config(const std::string& path) {
  return Loader(path).load().options;
}

Options merge(Options file, const CommandLine& flags) {
  for (std::string_view key : flags.given) {
    if (const Setting* s = setting_by_key(key)) s->copy(file, flags.options);
  }
  return file;
}

Options effective_options(const CommandLine& cl) {
  Parsed parsed;
  if (!cl.config_path.empty()) parsed = Loader(cl.config_path).load();
  Options o = merge(std::move(parsed.options), cl);
  try {
    expand_resolv_conf(o);
    validate(o);
  } catch (const InvalidSetting& e) {
    std::string setting = e.key.substr(0, e.key.find('['));
    if (cl.config_path.empty() || cl.given.contains(setting)) throw ConfigError(e.what());
    // The value came from the file, or is a default the file left alone: point at the key, or
    // the nearest enclosing one the file has.
    std::string key = e.key;
    while (!key.empty() && !parsed.lines.contains(key)) key = parent(key);
    std::string where =
        cl.config_path + (key.empty() ? "" : ":" + std::to_string(parsed.lines[key]));
    throw ConfigError(where + ": " + e.key + ": " + e.problem);
  }
  if (o.watch_config && cl.config_path.empty()) {
    throw ConfigError("--watch-config: there is no --config file to watch");
  }
  return o;
}

}  // namespace readyns::config
