// Prometheus metrics: a fixed-bucket Histogram and a writer of the text exposition format.
//
// A worker observes the Histogram cheaply; the writer writes the text exposition format 0.0.4 (what
// /metrics serves).
//
//   admin::TextWriter w;
//   w.begin(admin::coredns::kCacheHitsTotal);
//   w.sample({"dns://:53", "success"}, hits);
//   w.begin(admin::coredns::kDnsRequestDurationSeconds);
//   w.histogram({"dns://:53", "."}, merged_snapshot);
//   response.body = w.take();
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace readyns::admin {

// CoreDNS's plugin.TimeBuckets (0.25 ms doubling to 8.192 s), used by its request durations.
inline constexpr std::array<double, 16> kDnsDurationBuckets = {
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
    0.064,   0.128,  0.256, 0.512, 1.024, 2.048, 4.096, 8.192};

// The clock durations are measured with: monotonic, read through the vDSO (no system call).
inline uint64_t monotonic_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

// A histogram's counts at one moment. Counts are per bucket, not cumulative; the last one holds
// the observations above every bound (Prometheus's le="+Inf" adds everything).
struct HistogramSnapshot {
  std::span<const double> bounds;
  std::vector<uint64_t> counts;  // bounds.size() + 1
  double sum = 0;

  explicit HistogramSnapshot(std::span<const double> b = kDnsDurationBuckets)
      : bounds(b), counts(b.size() + 1, 0) {}
  uint64_t count() const;
  // Adds another snapshot with the same bounds (per-worker histograms summed on scrape);
  // throws std::invalid_argument if the bounds differ.
  HistogramSnapshot& operator+=(const HistogramSnapshot& other);
};

// Fixed buckets, observed by one thread only (its worker): each observation is a few relaxed
// loads and stores, no locked instruction. (Or by several, through observe_concurrently().) Any
// thread may read it (snapshot, add_to).
class Histogram {
 public:
  // `bounds`: ascending, finite, and alive as long as the histogram (a static array).
  explicit Histogram(std::span<const double> bounds = kDnsDurationBuckets);

  // The owner thread only: `n` observations of `value`. NaN is ignored.
  void observe(double value, uint64_t n = 1);
  void observe_ns(uint64_t nanoseconds, uint64_t n = 1) { observe(double(nanoseconds) * 1e-9, n); }
  // For a histogram several threads observe (never mixed with observe() on the same one): every
  // add is a locked instruction, so keep it off the hit path.
  void observe_concurrently(double value);

  HistogramSnapshot snapshot() const;
  // Adds this histogram's counts to `into` (same bounds), so scrapes sum workers without copies.
  void add_to(HistogramSnapshot& into) const;
  std::span<const double> bounds() const { return bounds_; }

 private:
  size_t bucket(double value) const;

  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

// A metric family: name, type, help and label names. Samples give label values in this order.
struct MetricSpec {
  std::string_view name;
  MetricType type;
  std::string_view help;
  std::span<const std::string_view> labels;
};

// Writes the text exposition format 0.0.4: "# HELP", "# TYPE", then the family's samples.
// Misuse (a family twice, a sample of the wrong kind or with the wrong number of label values,
// an invalid name) throws std::logic_error: Prometheus would reject the whole scrape.
class TextWriter {
 public:
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts a family; its samples follow until the next begin().
  void begin(const MetricSpec& spec);

  // A counter or gauge sample of the current family. Integers are written exactly.
  template <typename T>
  requires std::is_arithmetic_v<T>
  void sample(std::initializer_list<std::string_view> label_values, T value) {
    sample(std::span<const std::string_view>(label_values.begin(), label_values.size()), value);
  }
  template <typename T>
  requires std::is_arithmetic_v<T>
  void sample(std::span<const std::string_view> label_values, T value) {
    start_sample(label_values, "");
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      append_int(int64_t(value));
    } else if constexpr (std::is_integral_v<T>) {
      append_uint(uint64_t(value));
    } else {
      append_double(double(value));
    }
    text_.push_back('\n');
  }
  // A sample of a family without labels.
  template <typename T>
  requires std::is_arithmetic_v<T>
  void sample(T value) { sample(std::span<const std::string_view>(), value); }

  // A histogram of the current family: _bucket{...,le="..."} (cumulative), _sum and _count.
  void histogram(std::initializer_list<std::string_view> label_values, const HistogramSnapshot& h) {
    histogram(std::span<const std::string_view>(label_values.begin(), label_values.size()), h);
  }
  void histogram(std::span<const std::string_view> label_values, const HistogramSnapshot& h);

  const std::string& text() const { return text_; }
  std::string take() { return std::move(text_); }

 private:
  void start_sample(std::span<const std::string_view> label_values, std::string_view suffix,
                    std::string_view le = {});
  void append_uint(uint64_t v);
  void append_int(int64_t v);
  void append_double(double v);

  std::string text_;
  MetricSpec current_{};  // the family being written; name empty before the first begin()
  std::vector<std::string> families_;  // names begun so far: each family once per scrape
};

// A sample value as Prometheus's Go client writes it (strconv 'g', shortest): "0.00025",
// "1e+06", "+Inf", "NaN".
std::string format_value(double v);
// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);
// Escapes HELP text: backslash and newline.
void append_help(std::string& out, std::string_view help);
// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for label names.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace readyns::admin
