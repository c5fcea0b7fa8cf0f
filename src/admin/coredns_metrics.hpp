// Metric families under CoreDNS's names, label names and help texts, so dashboards and alerts
// written for CoreDNS / NodeLocal DNSCache work on readyns unchanged; plus readyns's own.
//
// Taken from CoreDNS's sources (plugin/metrics/vars/vars.go, plugin/cache/metrics.go,
// plugin/pkg/proxy/metrics.go, plugin/forward/metrics.go). CoreDNS's label sets changed across
// releases; readyns keeps the labels every version has and that dashboards group by, and leaves
// out the ones that are always empty here ("view"; the cache's "zones"): an absent label and an
// empty one are the same series to Prometheus.
#pragma once

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "admin/metrics.hpp"
#include "net/address.hpp"

namespace readyns::admin::coredns {

namespace labels {
inline constexpr std::string_view kServerZoneProtoFamilyType[] = {"server", "zone", "proto",
                                                                  "family", "type"};
inline constexpr std::string_view kServerZoneRcodePlugin[] = {"server", "zone", "rcode", "plugin"};
inline constexpr std::string_view kServerZone[] = {"server", "zone"};
inline constexpr std::string_view kServerType[] = {"server", "type"};
inline constexpr std::string_view kServer[] = {"server"};
inline constexpr std::string_view kTo[] = {"to"};
inline constexpr std::string_view kToRcode[] = {"to", "rcode"};
inline constexpr std::string_view kProxyNameTo[] = {"proxy_name", "to"};
inline constexpr std::string_view kProxyNameToRcode[] = {"proxy_name", "to", "rcode"};
inline constexpr std::string_view kVersion[] = {"version"};
inline constexpr std::string_view kReason[] = {"reason"};
inline constexpr std::string_view kAction[] = {"action"};
}  // namespace labels

// --- plugin/metrics: every query the server answers ---

// server: server_label(); zone: the zone that answered ("." for the default, "dropped" for
// queries dropped before handling); proto: "udp" | "tcp"; family: "1" (IPv4) | "2" (IPv6);
// type: qtype_label().
inline constexpr MetricSpec kDnsRequestsTotal{
    "coredns_dns_requests_total", MetricType::kCounter,
    "Counter of DNS requests made per zone, protocol and family.",
    labels::kServerZoneProtoFamilyType};
// rcode: rcode_label(); plugin: who wrote the answer ("cache", "forward", "kubernetes"; "" when
// the server itself answered, e.g. a FORMERR).
inline constexpr MetricSpec kDnsResponsesTotal{"coredns_dns_responses_total", MetricType::kCounter,
                                               "Counter of response status codes.",
                                               labels::kServerZoneRcodePlugin};
// Buckets: kDnsDurationBuckets. (CoreDNS 1.7-1.10 also had "type"; current CoreDNS has
// server, zone, view.)
inline constexpr MetricSpec kDnsRequestDurationSeconds{
    "coredns_dns_request_duration_seconds", MetricType::kHistogram,
    "Histogram of the time (in seconds) each request took per zone.", labels::kServerZone};

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
inline constexpr MetricSpec kWatchEventsTotal{
    "readyns_watch_events_total", MetricType::kCounter, "EndpointSlice watch events received.", {}};
inline constexpr MetricSpec kInvalidationsTotal{
    "readyns_invalidations_total",
    MetricType::kCounter,
    "Cached answers erased because a Service's endpoints changed.",
    {}};
inline constexpr MetricSpec kCoalescedTotal{
    "readyns_coalesced_total",
    MetricType::kCounter,
    "Cache misses that joined an identical upstream query already in flight.",
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

// The query types CoreDNS counts by name; every other one is "other".
constexpr std::string_view qtype_label(uint16_t type) {
  switch (type) {
    case 1:
      return "A";
    case 2:
      return "NS";
    case 5:
      return "CNAME";
    case 6:
      return "SOA";
    case 12:
      return "PTR";
    case 15:
      return "MX";
    case 16:
      return "TXT";
    case 28:
      return "AAAA";
    case 33:
      return "SRV";
    case 43:
      return "DS";
    case 46:
      return "RRSIG";
    case 47:
      return "NSEC";
    case 48:
      return "DNSKEY";
    case 50:
      return "NSEC3";
    case 65:
      return "HTTPS";
    case 251:
      return "IXFR";
    case 252:
      return "AXFR";
    case 255:
      return "ANY";
    default:
      return "other";
  }
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
