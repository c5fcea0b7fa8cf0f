// EndpointSlices as the table keeps them, and their reading from the API's JSON.
//
// The JSON is list bodies and watch event lines. Malformed objects are skipped and logged, never
// thrown.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace readyns::k8s {

enum class AddressType : uint8_t { kIPv4, kIPv6, kOther };  // kOther: FQDN or unknown, not served

struct Address {
  std::string text;               // lower-cased, as the API wrote it (used for dashed names)
  std::array<uint8_t, 16> bytes;  // network order; the first 4 for IPv4
  bool operator==(const Address&) const = default;
};

struct Endpoint {
  std::vector<Address> addresses;
  std::string hostname;  // lower-cased; empty when the endpoint has none
  std::string zone;      // topology zone (e.g. "europe-west1-b"); empty when not given
  // Per the API: ready nil means ready, serving nil means as ready, terminating nil means false.
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  bool operator==(const Endpoint&) const = default;
};

struct SlicePort {
  std::string name;      // lower-cased; empty for an unnamed port
  int32_t port = -1;     // -1: not given (CoreDNS keeps such a port out of SRV answers)
  std::string protocol;  // lower-cased: "tcp", "udp", "sctp"
  bool operator==(const SlicePort&) const = default;
};

struct Slice {
  std::string namespace_name;
  std::string name;
  std::string service;    // label kubernetes.io/service-name; empty when absent
  bool headless = false;  // label service.kubernetes.io/headless present
  AddressType address_type = AddressType::kOther;
  std::vector<Endpoint> endpoints;
  std::vector<SlicePort> ports;
  bool operator==(const Slice&) const = default;
};

struct SliceList {
  std::string resource_version;
  std::string continue_token;  // non-empty: more pages follow
  std::vector<Slice> items;    // malformed items are left out (logged): any field we use with the
                               // wrong type or value skips the whole object
};

// True for a lower-case RFC 1123 label: what Kubernetes names and endpoint hostnames are.
bool is_dns_label(std::string_view text);

// Reads an EndpointSliceList body; nullopt (logged) if it is not one.
std::optional<SliceList> parse_slice_list(std::string_view body);

enum class EventType : uint8_t { kAdded, kModified, kDeleted, kBookmark, kError };
// The API's names of the event types, by EventType.
inline constexpr std::string_view kEventTypeNames[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK",
                                                       "ERROR"};

struct WatchEvent {
  EventType type = EventType::kBookmark;
  std::string resource_version;  // the object's metadata.resourceVersion; empty if none
  std::string namespace_name;    // the object's metadata, for DELETED even if the rest is bad
  std::string name;
  std::optional<Slice> slice;  // ADDED/MODIFIED/DELETED whose object parsed
  int32_t status_code = 0;     // ERROR: the Status object's code (410: resourceVersion too old)
  std::string message;         // ERROR: the Status object's message
};

// Reads one line of a watch stream; nullopt (logged) if it is not a watch event.
std::optional<WatchEvent> parse_watch_event(std::string_view line);

}  // namespace readyns::k8s
