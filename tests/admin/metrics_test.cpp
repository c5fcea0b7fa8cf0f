// The exposition writer, histograms, and the CoreDNS families and label helpers.
//
// The writer's exact output, escaping and misuse; histograms' buckets, sums and merging.
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "admin/coredns_metrics.hpp"
#include "admin/metrics.hpp"

namespace readyns::admin {
namespace {

constexpr std::string_view kServerType[] = {"server", "type"};
constexpr std::string_view kWho[] = {"who"};
constexpr double kSmallBounds[] = {0.001, 0.01, 0.1};

TEST_CASE("values are written as Prometheus's Go client writes them") {
  CHECK(format_value(0) == "0");
  CHECK(format_value(1) == "1");
  CHECK(format_value(-2.5) == "-2.5");
  CHECK(format_value(0.00025) == "0.00025");
  CHECK(format_value(0.0001) == "0.0001");
  CHECK(format_value(0.00001) == "1e-05");
  CHECK(format_value(8.192) == "8.192");
  CHECK(format_value(123456) == "123456");
  CHECK(format_value(1e6) == "1e+06");
  CHECK(format_value(1234567) == "1.234567e+06");
  CHECK(format_value(1.7e300) == "1.7e+300");
  CHECK(format_value(0.1 + 0.2) == "0.30000000000000004");
  CHECK(format_value(1.0 / 0.0) == "+Inf");
  CHECK(format_value(-1.0 / 0.0) == "-Inf");
  CHECK(format_value(0.0 / 0.0) == "NaN");
  for (double b : kDnsDurationBuckets) CHECK(std::stod(format_value(b)) == b);
}

TEST_CASE("counters and gauges: HELP, TYPE and samples, exactly") {
  TextWriter w;
  w.begin(
      {"coredns_cache_hits_total", MetricType::kCounter, "The count of cache hits.", kServerType});
  w.sample({"dns://:53", "success"}, uint64_t(18446744073709551615u));
  w.sample({"dns://:53", "denial"}, 3);
  w.begin({"readyns_endpoints_ready", MetricType::kGauge, "Ready endpoints.", {}});
  w.sample(-1);
  w.begin({"temperature", MetricType::kGauge, "A float.", {}});
  w.sample(0.5);
  CHECK(w.text() ==
        "# HELP coredns_cache_hits_total The count of cache hits.\n"
        "# TYPE coredns_cache_hits_total counter\n"
        "coredns_cache_hits_total{server=\"dns://:53\",type=\"success\"} 18446744073709551615\n"
        "coredns_cache_hits_total{server=\"dns://:53\",type=\"denial\"} 3\n"
        "# HELP readyns_endpoints_ready Ready endpoints.\n"
        "# TYPE readyns_endpoints_ready gauge\n"
        "readyns_endpoints_ready -1\n"
        "# HELP temperature A float.\n"
        "# TYPE temperature gauge\n"
        "temperature 0.5\n");
}

TEST_CASE("label values and help text are escaped") {
  TextWriter w;
  w.begin({"escapes_total", MetricType::kCounter, "Back\\slash and\nnewline \"kept\".", kWho});
  w.sample({"a\\b\"c\nd"}, 1);
  w.sample({"plain {},= ü"}, 2);
  CHECK(w.text() ==
        "# HELP escapes_total Back\\\\slash and\\nnewline \"kept\".\n"
        "# TYPE escapes_total counter\n"
        "escapes_total{who=\"a\\\\b\\\"c\\nd\"} 1\n"
        "escapes_total{who=\"plain {},= ü\"} 2\n");
}

TEST_CASE("a histogram is written with cumulative buckets, +Inf, _sum and _count") {
  Histogram h(kSmallBounds);
  h.observe(0.001);  // on a bound: that bucket (le is "less or equal")
  h.observe(0.0005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(2);          // above every bound
  h.observe(0.0 / 0.0);  // ignored
  HistogramSnapshot s = h.snapshot();
  CHECK(s.counts == std::vector<uint64_t>{2, 0, 2, 1});
  CHECK(s.count() == 5);
  CHECK(s.sum == Approx(2.1015));

  TextWriter w;
  w.begin({"coredns_forward_request_duration_seconds", MetricType::kHistogram,
           "Histogram of the time each request took.", coredns::labels::kToRcode});
  w.histogram({"10.0.0.1:53", "NOERROR"}, s);
  w.begin({"plain_seconds", MetricType::kHistogram, "No labels.", {}});
  w.histogram({}, HistogramSnapshot(kSmallBounds));
  CHECK(w.text() ==
        "# HELP coredns_forward_request_duration_seconds Histogram of the time each request "
        "took.\n"
        "# TYPE coredns_forward_request_duration_seconds histogram\n"
        "coredns_forward_request_duration_seconds_bucket{to=\"10.0.0.1:53\",rcode=\"NOERROR\","
        "le=\"0.001\"} 2\n"
        "coredns_forward_request_duration_seconds_bucket{to=\"10.0.0.1:53\",rcode=\"NOERROR\","
        "le=\"0.01\"} 2\n"
        "coredns_forward_request_duration_seconds_bucket{to=\"10.0.0.1:53\",rcode=\"NOERROR\","
        "le=\"0.1\"} 4\n"
        "coredns_forward_request_duration_seconds_bucket{to=\"10.0.0.1:53\",rcode=\"NOERROR\","
        "le=\"+Inf\"} 5\n"
        "coredns_forward_request_duration_seconds_sum{to=\"10.0.0.1:53\",rcode=\"NOERROR\"} "
        "2.1015\n"
        "coredns_forward_request_duration_seconds_count{to=\"10.0.0.1:53\",rcode=\"NOERROR\"} 5\n"
        "# HELP plain_seconds No labels.\n"
        "# TYPE plain_seconds histogram\n"
        "plain_seconds_bucket{le=\"0.001\"} 0\n"
        "plain_seconds_bucket{le=\"0.01\"} 0\n"
        "plain_seconds_bucket{le=\"0.1\"} 0\n"
        "plain_seconds_bucket{le=\"+Inf\"} 0\n"
        "plain_seconds_sum 0\n"
        "plain_seconds_count 0\n");
}

TEST_CASE("the CoreDNS duration buckets run from 0.25 ms to 8.192 s") {
  Histogram h;
  h.observe_ns(250'000);        // 0.25 ms: the first bucket
  h.observe_ns(250'001);        // just above: the second
  h.observe_ns(9'000'000'000);  // 9 s: above all
  HistogramSnapshot s = h.snapshot();
  REQUIRE(s.counts.size() == 17);
  CHECK(s.counts[0] == 1);
  CHECK(s.counts[1] == 1);
  CHECK(s.counts[16] == 1);
  TextWriter w;
  w.begin(coredns::kDnsRequestDurationSeconds);
  w.histogram({"dns://:53", ".", "", "A"}, s);
  std::string text = w.text();
  CHECK(text.find("coredns_dns_request_duration_seconds_bucket{server=\"dns://:53\",zone=\".\","
                  "view=\"\",type=\"A\",le=\"0.00025\"} 1\n") != std::string::npos);
  CHECK(text.find("le=\"0.0005\"} 2\n") != std::string::npos);
  CHECK(text.find("le=\"8.192\"} 2\n") != std::string::npos);
  CHECK(text.find("le=\"+Inf\"} 3\n") != std::string::npos);
}

TEST_CASE("observations in bulk land in one bucket, their sum weighted") {
  Histogram h(kSmallBounds);
  h.observe(0.005, 3);
  h.observe_ns(50'000'000, 2);  // 0.05 s
  h.observe(0.0 / 0.0, 4);      // ignored
  HistogramSnapshot s = h.snapshot();
  CHECK(s.counts == std::vector<uint64_t>{0, 3, 2, 0});
  CHECK(s.count() == 5);
  CHECK(s.sum == Approx(0.115));
}

TEST_CASE("a histogram several threads observe loses nothing") {
  Histogram h(kSmallBounds);
  std::vector<std::thread> observers;
  for (int t = 0; t < 4; ++t) {
    observers.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.observe_concurrently(i % 2 ? 0.005 : 0.5);
    });
  }
  for (std::thread& t : observers) t.join();
  HistogramSnapshot s = h.snapshot();
  CHECK(s.counts == std::vector<uint64_t>{0, 20000, 0, 20000});
  CHECK(s.sum == Approx(20000 * 0.505));
}

TEST_CASE("per-worker histograms sum on scrape") {
  Histogram a(kSmallBounds), b(kSmallBounds), other;
  a.observe(0.005);
  b.observe(0.005);
  b.observe(1);
  HistogramSnapshot total(kSmallBounds);
  a.add_to(total);
  b.add_to(total);
  CHECK(total.counts == std::vector<uint64_t>{0, 2, 0, 1});
  CHECK(total.sum == Approx(1.01));
  HistogramSnapshot again = a.snapshot();
  again += b.snapshot();
  CHECK(again.counts == total.counts);
  CHECK_THROWS_AS(other.add_to(total), std::invalid_argument);
  CHECK_THROWS_AS(total += other.snapshot(), std::invalid_argument);
  constexpr double kBad[] = {1, 1};
  CHECK_THROWS_AS(Histogram(kBad), std::invalid_argument);
}

TEST_CASE("a histogram read while its owner observes stays consistent") {
  Histogram h;
  std::thread owner([&] {
    for (int i = 0; i < 200000; ++i) h.observe(double(i % 1000) * 1e-4);
  });
  uint64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    HistogramSnapshot s = h.snapshot();
    CHECK(s.count() >= last);  // never goes back
    last = s.count();
  }
  owner.join();
  CHECK(h.snapshot().count() == 200000);
}

TEST_CASE("misuse throws instead of writing a scrape Prometheus would reject") {
  TextWriter w;
  CHECK_THROWS_AS(w.sample(1), std::logic_error);  // before begin()
  w.begin({"a_total", MetricType::kCounter, "A.", kWho});
  CHECK_THROWS_AS(w.sample(1), std::logic_error);              // a label value missing
  CHECK_THROWS_AS(w.sample({"x", "y"}, 1), std::logic_error);  // one too many
  CHECK_THROWS_AS(w.histogram({"x"}, HistogramSnapshot()), std::logic_error);
  CHECK_THROWS_AS(w.begin({"a_total", MetricType::kCounter, "Again.", {}}), std::logic_error);
  CHECK_THROWS_AS(w.begin({"bad-name", MetricType::kCounter, "", {}}), std::logic_error);
  CHECK_THROWS_AS(w.begin({"9lives", MetricType::kCounter, "", {}}), std::logic_error);
  constexpr std::string_view kLe[] = {"le"};
  CHECK_THROWS_AS(w.begin({"h_seconds", MetricType::kHistogram, "", kLe}), std::logic_error);
  w.begin({"h2_seconds", MetricType::kHistogram, "", {}});
  CHECK_THROWS_AS(w.sample(1), std::logic_error);  // a histogram takes histogram()
  CHECK(valid_metric_name("coredns:recorded_rule"));
  CHECK_FALSE(valid_label_name("has:colon"));
}

TEST_CASE("every CoreDNS and readyns family is valid and distinct") {
  const MetricSpec* specs[] = {
      &coredns::kDnsRequestsTotal,
      &coredns::kDnsResponsesTotal,
      &coredns::kDnsRequestDurationSeconds,
      &coredns::kCacheEntries,
      &coredns::kCacheRequestsTotal,
      &coredns::kCacheHitsTotal,
      &coredns::kCacheMissesTotal,
      &coredns::kCacheEvictionsTotal,
      &coredns::kCacheServedStaleTotal,
      &coredns::kForwardRequestsTotal,
      &coredns::kForwardResponsesTotal,
      &coredns::kForwardRequestDurationSeconds,
      &coredns::kForwardHealthcheckFailuresTotal,
      &coredns::kForwardHealthcheckBrokenTotal,
      &coredns::kProxyRequestDurationSeconds,
      &coredns::kProxyHealthcheckFailuresTotal,
      &coredns::kEndpointsReady,
      &coredns::kWatchEventsTotal,
      &coredns::kInvalidationsTotal,
      &coredns::kCoalescedTotal,
      &coredns::kStaleAnswersTotal,
      &coredns::kUpstreamRefusedRepliesTotal,
      &coredns::kTcpConnections,
      &coredns::kTcpRefusedTotal,
      &coredns::kRateLimitedTotal,
      &coredns::kBuildInfo,
  };
  TextWriter w;
  for (const MetricSpec* spec : specs) {
    INFO(spec->name);
    CHECK_NOTHROW(w.begin(*spec));
    std::vector<std::string_view> values(spec->labels.size(), "v");
    if (spec->type == MetricType::kHistogram) {
      CHECK_NOTHROW(w.histogram(values, HistogramSnapshot()));
    } else {
      CHECK_NOTHROW(w.sample(values, 1));
    }
    bool counter_name = spec->name.ends_with("_total");
    CHECK(counter_name == (spec->type == MetricType::kCounter));
  }
  // Current CoreDNS's label sets.
  CHECK(std::vector(coredns::kDnsRequestsTotal.labels.begin(),
                    coredns::kDnsRequestsTotal.labels.end()) ==
        std::vector<std::string_view>{"server", "zone", "view", "proto", "family", "type"});
  CHECK(std::vector(coredns::kDnsRequestDurationSeconds.labels.begin(),
                    coredns::kDnsRequestDurationSeconds.labels.end()) ==
        std::vector<std::string_view>{"server", "zone", "view", "type"});
  CHECK(coredns::kDnsResponsesTotal.labels.size() == 5);
  CHECK(coredns::kDnsResponsesTotal.labels[4] == "plugin");
}

TEST_CASE("CoreDNS label values") {
  CHECK(coredns::qtype_label(1) == "A");
  CHECK(coredns::qtype_label(28) == "AAAA");
  CHECK(coredns::qtype_label(65) == "HTTPS");
  CHECK(coredns::qtype_label(99) == "other");
  CHECK(coredns::qtype_label(0) == "other");
  CHECK(coredns::qtype_label(256 + 1) == "other");  // not A: the index table is not wrapped
  CHECK(coredns::qtype_label(65535) == "other");
  // Each named type has its own index, and the index gives the name back.
  std::set<size_t> indexes;
  for (const auto& [type, name] : coredns::kQtypes) {
    INFO(name);
    size_t index = coredns::qtype_index(type);
    CHECK(index < coredns::kQtypeOther);
    CHECK(coredns::qtype_label_at(index) == name);
    indexes.insert(index);
  }
  CHECK(indexes.size() == std::size(coredns::kQtypes));
  CHECK(coredns::qtype_label_at(coredns::kQtypeOther) == "other");
  CHECK(coredns::rcode_label(0) == "NOERROR");
  CHECK(coredns::rcode_label(2) == "SERVFAIL");
  CHECK(coredns::rcode_label(3) == "NXDOMAIN");
  CHECK(coredns::rcode_label(4) == "NOTIMP");
  CHECK(coredns::rcode_label(16) == "BADSIG");
  CHECK(coredns::rcode_label(23) == "BADCOOKIE");
  CHECK(coredns::rcode_label(12) == "12");
  CHECK(coredns::rcode_label(4095) == "4095");
  CHECK(coredns::server_label(*net::parse_address("0.0.0.0:53")) == "dns://:53");
  CHECK(coredns::server_label(*net::parse_address("[::]:5353")) == "dns://:5353");
  CHECK(coredns::server_label(*net::parse_address("169.254.20.10:53")) == "dns://169.254.20.10:53");
  CHECK(coredns::server_label(*net::parse_address("[fd00::a]:53")) == "dns://[fd00::a]:53");
}

}  // namespace
}  // namespace readyns::admin
