// Histograms and the Prometheus text exposition format.
#include "admin/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace readyns::admin {
namespace {

bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon)) return false;
  }
  return true;
}

}  // namespace

uint64_t HistogramSnapshot::count() const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

HistogramSnapshot& HistogramSnapshot::operator+=(const HistogramSnapshot& other) {
  if (!std::equal(bounds.begin(), bounds.end(), other.bounds.begin(), other.bounds.end())) {
    throw std::invalid_argument("histogram snapshots with different buckets");
  }
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  sum += other.sum;
  return *this;
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      throw std::invalid_argument("histogram bounds must be finite and ascending");
    }
  }
  for (size_t i = 0; i <= bounds.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

size_t Histogram::bucket(double value) const {
  // le semantics: the first bucket whose bound is >= value (past the last: the overflow).
  // Scanned from the lowest bound, where latencies cluster (a cache hit takes microseconds), so
  // the loop mostly ends at once and its branch predicts well.
  size_t i = 0;
  while (i < bounds_.size() && bounds_[i] < value) ++i;
  return i;
}

void Histogram::observe(double value, uint64_t n) {
  if (std::isnan(value)) return;
  size_t i = bucket(value);
  // One writer: load+store is enough and costs no locked instruction.
  counts_[i].store(counts_[i].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  sum_.store(sum_.load(std::memory_order_relaxed) + value * double(n), std::memory_order_relaxed);
}

void Histogram::observe_concurrently(double value) {
  if (std::isnan(value)) return;
  counts_[bucket(value)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s(bounds_);
  add_to(s);
  return s;
}

void Histogram::add_to(HistogramSnapshot& into) const {
  if (!std::equal(bounds_.begin(), bounds_.end(), into.bounds.begin(), into.bounds.end())) {
    throw std::invalid_argument("histogram snapshots with different buckets");
  }
  // Read while the owner writes: buckets and sum may be one observation apart, which a scrape
  // tolerates; _count is derived from the buckets so it always equals the +Inf bucket.
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    into.counts[i] += counts_[i].load(std::memory_order_relaxed);
  }
  into.sum += sum_.load(std::memory_order_relaxed);
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // The shortest round-trip digits, laid out as Go's strconv.FormatFloat(v, 'g', -1, 64) does
  // (what client_golang writes): scientific when the exponent is below -4 or at least 6.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, size_t(end - buf));  // "-d.ddde+XX"
  bool negative = !sci.empty() && sci.front() == '-';
  if (negative) sci.remove_prefix(1);
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::string_view exp_text = sci.substr(e + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);

  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 6) {
    out.push_back(digits[0]);
    if (digits.size() > 1) out.append(".").append(digits, 1);
    out.push_back('e');
    out.push_back(exponent < 0 ? '-' : '+');
    int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 10) out.push_back('0');
    out.append(std::to_string(magnitude));
    return out;
  }
  int point = exponent + 1;  // digits before the decimal point
  if (point <= 0) {
    out.append("0.").append(size_t(-point), '0').append(digits);
  } else if (size_t(point) >= digits.size()) {
    out.append(digits).append(size_t(point) - digits.size(), '0');
  } else {
    out.append(digits, 0, size_t(point)).append(".").append(digits, size_t(point));
  }
  return out;
}

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}
bool valid_label_name(std::string_view name) {
  return valid_name(name, false);
}

void TextWriter::begin(const MetricSpec& spec) {
  if (!valid_metric_name(spec.name)) {
    throw std::logic_error("metrics: invalid metric name '" + std::string(spec.name) + "'");
  }
  for (std::string_view label : spec.labels) {
    // "le" is the histogram's own label; "__" names are reserved to Prometheus.
    if (!valid_label_name(label) || label.starts_with("__") ||
        (spec.type == MetricType::kHistogram && label == "le")) {
      throw std::logic_error("metrics: invalid label name '" + std::string(label) + "' of " +
                             std::string(spec.name));
    }
  }
  if (std::find(families_.begin(), families_.end(), spec.name) != families_.end()) {
    throw std::logic_error("metrics: family " + std::string(spec.name) + " written twice");
  }
  families_.emplace_back(spec.name);
  current_ = spec;
  static constexpr std::string_view kTypes[] = {"counter", "gauge", "histogram"};
  text_.append("# HELP ").append(spec.name).append(" ");
  append_help(text_, spec.help);
  text_.append("\n# TYPE ").append(spec.name).append(" ");
  text_.append(kTypes[static_cast<int>(spec.type)]).append("\n");
}

void TextWriter::start_sample(std::span<const std::string_view> label_values,
                              std::string_view suffix, std::string_view le) {
  if (current_.name.empty()) throw std::logic_error("metrics: a sample before begin()");
  if (suffix.empty() && current_.type == MetricType::kHistogram) {
    throw std::logic_error("metrics: " + std::string(current_.name) + " takes histogram()");
  }
  if (label_values.size() != current_.labels.size()) {
    throw std::logic_error("metrics: " + std::string(current_.name) + " takes " +
                           std::to_string(current_.labels.size()) + " label values, got " +
                           std::to_string(label_values.size()));
  }
  text_.append(current_.name).append(suffix);
  if (!label_values.empty() || !le.empty()) {
    text_.push_back('{');
    for (size_t i = 0; i < label_values.size(); ++i) {
      if (i > 0) text_.push_back(',');
      text_.append(current_.labels[i]).append("=\"");
      append_label_value(text_, label_values[i]);
      text_.push_back('"');
    }
    if (!le.empty()) {
      text_.append(label_values.empty() ? "le=\"" : ",le=\"").append(le).push_back('"');
    }
    text_.push_back('}');
  }
  text_.push_back(' ');
}

void TextWriter::append_uint(uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  text_.append(buf, end);
}

void TextWriter::append_int(int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  text_.append(buf, end);
}

void TextWriter::append_double(double v) {
  text_.append(format_value(v));
}

void TextWriter::histogram(std::span<const std::string_view> label_values,
                           const HistogramSnapshot& h) {
  if (current_.type != MetricType::kHistogram) {
    throw std::logic_error("metrics: " + std::string(current_.name) + " is not a histogram");
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    start_sample(label_values, "_bucket", format_value(h.bounds[i]));
    append_uint(cumulative);
    text_.push_back('\n');
  }
  cumulative += h.counts.back();
  start_sample(label_values, "_bucket", "+Inf");
  append_uint(cumulative);
  text_.push_back('\n');
  start_sample(label_values, "_sum");
  append_double(h.sum);
  text_.push_back('\n');
  start_sample(label_values, "_count");
  append_uint(cumulative);
  text_.push_back('\n');
}

}  // namespace readyns::admin
