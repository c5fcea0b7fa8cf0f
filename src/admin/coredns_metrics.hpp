// Metric families under CoreDNS's names, label names and help texts; plus readyns's own.
//
// With CoreDNS's names, dashboards and alerts written for CoreDNS / NodeLocal DNSCache work on
// readyns unchanged.
//
// Taken from CoreDNS's sources (plugin/metrics/vars/vars.go, plugin/cache/metrics.go,
// plugin/pkg/proxy/metrics.go, plugin/forward/metrics.go). CoreDNS's label sets changed across
// releases; readyns writes the plugin/metrics families with the current ones (1.11 on: "view",
// always empty here, as CoreDNS writes it without views), and leaves out the cache's "zones": an
// absent label and an empty one are the same series to Prometheus, so dashboards of any release
// match either way.
#pragma once

#include <array>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

#include "admin/metrics.hpp"
#include "net/address.hpp"

namespace readyns::admin::coredns {

namespace labels {
inline constexpr std::string_view kServerZoneViewProtoFamilyType[] = {"server", "zone",   "view",
                                                                      "proto",  "family", "type"};
inline constexpr std::string_view kServerZoneViewRcodePlugin[] = {"server", "zone", "view", "rcode",
                                                                  "plugin"};
inline constexpr std::string_view kServerZoneViewType[] = {"server", "zone", "view", "type"};
inline constexpr std::string_view kServerType[] = {"server", "type"};
inline constexpr std::string_view kServer[] = {"server"};
inline constexpr std::string_view kTo[] = {"to"};
inline constexpr std::string_view kToRcode[] = {"to", "rcode"};
inline constexpr std::string_view kProxyNameTo[] = {"proxy_name", "to"};
inline constexpr std::string_view kProxyNameToRcode[] = {"proxy_name", "to", "rcode"};
inline constexpr std::string_view kVersion[] = {"version"};
inline constexpr std::string_view kType[] = {"type"};
inline constexpr std::string_view kReason[] = {"reason"};
inline constexpr std::string_view kAction[] = {"action"};
}  // namespace labels

// --- plugin/metrics: every query the server answers ---

// server: server_label(); zone: the zone that answered ("." for the default, "dropped" for
// queries dropped before handling); view: "" (CoreDNS's without views); proto: "udp" | "tcp";
// family: "1" (IPv4) | "2" (IPv6); type: qtype_label().
inline constexpr MetricSpec kDnsRequestsTotal{
    "coredns_dns_requests_total", MetricType::kCounter,
    "Counter of DNS requests made per zone, protocol and family.",
    labels::kServerZoneViewProtoFamilyType};
// rcode: rcode_label(); plugin: who wrote the answer ("cache", "forward", "kubernetes"; "" when
// the server itself answered, e.g. a FORMERR).
inline constexpr MetricSpec kDnsResponsesTotal{"coredns_dns_responses_total", MetricType::kCounter,
                                               "Counter of response status codes.",
                                               labels::kServerZoneViewRcodePlugin};
// Buckets: kDnsDurationBuckets; type: qtype_label().
inline constexpr MetricSpec kDnsRequestDurationSeconds{
    "coredns_dns_request_duration_seconds", MetricType::kHistogram,
    "Histogram of the time (in seconds) each request took per zone.", labels::kServerZoneViewType};

// --- plugin/cache --- type: "success" | "denial" (NXDOMAIN/NODATA answers).

inline constexpr MetricSpec kCacheEntries{"coredns_cache_entries", MetricType::kGauge,
                                          "The number of elements in the cache.",
                                          labels::kServerType};
inline constexpr MetricSpec kCacheRequestsTotal{"coredns_cache_requests_total",
                                                MetricType::kCounter,
                                                "The count of cache requests.", labels::kServer};
inline constexpr MetricSpec kCacheHitsTotal{"coredns_cache_hits_total", MetricType::kCounter,
                                            "The count of cache hits.", labels::kServerType};
inline constexpr MetricSpec kCacheMissesTotal{
    "coredns_cache_misses_total", MetricType::kCounter,
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    labels::kServer};
inline constexpr MetricSpec kCacheEvictionsTotal{
    "coredns_cache_evictions_total", MetricType::kCounter, "The count of cache evictions.",
    labels::kServerType};
inline constexpr MetricSpec kCacheServedStaleTotal{
    "coredns_cache_served_stale_total", MetricType::kCounter,
    "The number of requests served from stale cache entries.", labels::kServer};

// --- plugin/forward, as CoreDNS up to 1.10 names them (what most dashboards and the
// kube-prometheus CoreDNS alerts query). to: the upstream, "IP:PORT"; rcode: rcode_label().

inline constexpr MetricSpec kForwardRequestsTotal{
    "coredns_forward_requests_total", MetricType::kCounter,
    "Counter of requests made per upstream.", labels::kTo};
inline constexpr MetricSpec kForwardResponsesTotal{
    "coredns_forward_responses_total", MetricType::kCounter,
    "Counter of responses received per upstream.", labels::kToRcode};
// Buckets: kDnsDurationBuckets.
inline constexpr MetricSpec kForwardRequestDurationSeconds{
    "coredns_forward_request_duration_seconds", MetricType::kHistogram,
    "Histogram of the time each request took.", labels::kToRcode};
inline constexpr MetricSpec kForwardHealthcheckFailuresTotal{
    "coredns_forward_healthcheck_failures_total", MetricType::kCounter,
    "Counter of the number of failed healthchecks.", labels::kTo};
// No labels: every upstream of a zone unhealthy at once.
inline constexpr MetricSpec kForwardHealthcheckBrokenTotal{
    "coredns_forward_healthcheck_broken_total",
    MetricType::kCounter,
    "Counter of the number of complete failures of the healthchecks.",
    {}};

// --- plugin/pkg/proxy: current CoreDNS (1.11 on) exports the forwarder's timings under these
// names with proxy_name="forward" and lists the coredns_forward_* ones above as deprecated.
// Writing both from the same data serves dashboards of either generation.

inline constexpr MetricSpec kProxyRequestDurationSeconds{
    "coredns_proxy_request_duration_seconds", MetricType::kHistogram,
    "Histogram of the time each request took.", labels::kProxyNameToRcode};
inline constexpr MetricSpec kProxyHealthcheckFailuresTotal{
    "coredns_proxy_healthcheck_failures_total", MetricType::kCounter,
    "Counter of the number of failed healthchecks.", labels::kProxyNameTo};

// --- readyns's own ---

inline constexpr MetricSpec kEndpointsReady{
    "readyns_endpoints_ready",
    MetricType::kGauge,
    "Ready endpoints in the Kubernetes endpoint table (headless Services answered locally).",
    {}};
// type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR".
inline constexpr MetricSpec kWatchEventsTotal{"readyns_watch_events_total", MetricType::kCounter,
                                              "EndpointSlice watch events received.",
                                              labels::kType};
inline constexpr MetricSpec kInvalidationsTotal{
    "readyns_invalidations_total",
    MetricType::kCounter,
    "Services whose answers changed, each erasing the cached answers at and under its name.",
    {}};
inline constexpr MetricSpec kCoalescedTotal{
    "readyns_coalesced_total",
    MetricType::kCounter,
    "Cache misses that joined an identical upstream query already in flight.",
    {}};
inline constexpr MetricSpec kCacheBytes{
    "readyns_cache_bytes",
    MetricType::kGauge,
    "Bytes the cached answers take (bounded by cache.memory_mib).",
    {}};
inline constexpr MetricSpec kStaleAnswersTotal{"readyns_stale_answers_total",
                                               MetricType::kCounter,
                                               "Answers served from expired cache entries.",
                                               {}};
// reason: "id" (no query out with that ID on that socket: late, or guessed) | "source" (the
// right ID from another address or port than the query went to: spoofed).
inline constexpr MetricSpec kUpstreamRefusedRepliesTotal{
    "readyns_upstream_refused_replies_total", MetricType::kCounter,
    "UDP replies from upstream thrown away unread by the resolver.", labels::kReason};
inline constexpr MetricSpec kTcpConnections{
    "readyns_tcp_connections", MetricType::kGauge, "Client TCP connections open.", {}};
// reason: "total" | "per_client": which of --tcp-max-connections{,-per-client} was reached.
inline constexpr MetricSpec kTcpRefusedTotal{
    "readyns_tcp_refused_total", MetricType::kCounter,
    "Client TCP connections closed on accept because a connection limit was reached.",
    labels::kReason};
// action: "drop" | "slip" (sent empty with TC=1).
inline constexpr MetricSpec kRateLimitedTotal{
    "readyns_rate_limited_total", MetricType::kCounter,
    "UDP answers over the client's --rrl-rate, dropped or sent truncated.", labels::kAction};
inline constexpr MetricSpec kShedTotal{
    "readyns_shed_total",
    MetricType::kCounter,
    "Misses refused over --max-in-flight or the clients one miss may hold.",
    {}};
// Value 1, labelled with the version (as coredns_build_info).
inline constexpr MetricSpec kBuildInfo{"readyns_build_info", MetricType::kGauge,
                                       "A metric with a constant '1' value labeled by version.",
                                       labels::kVersion};

// --- label values ---

inline constexpr std::string_view kProtoUdp = "udp";
inline constexpr std::string_view kProtoTcp = "tcp";
inline constexpr std::string_view kFamilyIpv4 = "1";
inline constexpr std::string_view kFamilyIpv6 = "2";
inline constexpr std::string_view kCacheSuccess = "success";
inline constexpr std::string_view kCacheDenial = "denial";
inline constexpr std::string_view kZoneRoot = ".";
inline constexpr std::string_view kZoneDropped = "dropped";  // CoreDNS's zone for dropped queries
inline constexpr std::string_view kPluginCache = "cache";
inline constexpr std::string_view kPluginForward = "forward";
inline constexpr std::string_view kPluginKubernetes = "kubernetes";
inline constexpr std::string_view kProxyNameForward = "forward";

// The query types CoreDNS counts by name (plugin/metrics/vars/report.go); every other one is
// "other", at index kQtypeOther. Workers count by index, so the hit path never touches a string.
inline constexpr std::pair<uint16_t, std::string_view> kQtypes[] = {
    {1, "A"},       {2, "NS"},     {5, "CNAME"},  {6, "SOA"},    {12, "PTR"},   {15, "MX"},
    {16, "TXT"},    {28, "AAAA"},  {33, "SRV"},   {43, "DS"},    {46, "RRSIG"}, {47, "NSEC"},
    {48, "DNSKEY"}, {50, "NSEC3"}, {65, "HTTPS"}, {251, "IXFR"}, {252, "AXFR"}, {255, "ANY"}};
inline constexpr size_t kQtypeOther = std::size(kQtypes);
inline constexpr size_t kQtypeLabels = kQtypeOther + 1;

// Every named type is below 256: one table lookup.
inline constexpr std::array<uint8_t, 256> kQtypeIndex = [] {
  std::array<uint8_t, 256> index{};
  index.fill(uint8_t(kQtypeOther));
  for (size_t i = 0; i < std::size(kQtypes); ++i) index[kQtypes[i].first] = uint8_t(i);
  return index;
}();

constexpr size_t qtype_index(uint16_t type) {
  return type < kQtypeIndex.size() ? kQtypeIndex[type] : kQtypeOther;
}
constexpr std::string_view qtype_label_at(size_t index) {
  return index < kQtypeOther ? kQtypes[index].second : "other";
}
constexpr std::string_view qtype_label(uint16_t type) {
  return qtype_label_at(qtype_index(type));
}

// RCODE names as miekg/dns spells them (CoreDNS's rcode label); an unnamed code is its number.
inline std::string rcode_label(uint16_t rcode) {
  static constexpr std::string_view kNames[] = {
      "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
      "NXRRSET", "NOTAUTH", "NOTZONE",  "",         "",        "",        "",         "",
      "BADSIG",  "BADKEY",  "BADTIME",  "BADMODE",  "BADNAME", "BADALG",  "BADTRUNC", "BADCOOKIE"};
  if (rcode < std::size(kNames) && !kNames[rcode].empty()) return std::string(kNames[rcode]);
  return std::to_string(rcode);
}

// CoreDNS's server label, "dns://IP:PORT"; a wildcard address is left out ("dns://:53").
std::string server_label(const net::Address& listen);

}  // namespace readyns::admin::coredns
