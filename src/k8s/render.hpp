// Pre-rendered wire answers of one headless Service, rebuilt whenever its slices change.
//
// Serving a query is then a lookup plus wire::render_answer. Shapes follow CoreDNS's kubernetes
// plugin.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "k8s/slice.hpp"

namespace readyns::k8s {

struct StoredAnswer {
  // A whole response (ID 0, lower-cased question); empty when the name has no record of the type.
  std::vector<uint8_t> wire;
  std::vector<uint16_t> ttl_offsets;
  bool operator==(const StoredAnswer&) const = default;
};

struct NameAnswers {
  StoredAnswer a, aaaa, srv;
  bool operator==(const NameAnswers&) const = default;
};

struct ServiceAnswers {
  // False when no endpoint is selected: the Service and all names beneath it are NXDOMAIN, which
  // is what CoreDNS answers for a headless Service without (ready) endpoints.
  bool has_endpoints = false;
  // By the wire labels in front of the Service name: "" for the Service itself, one label for an
  // endpoint name (hostname or dashed address), two labels "_port._proto" for a named port.
  std::map<std::string, NameAnswers, std::less<>> names;
  bool operator==(const ServiceAnswers&) const = default;
};

// Renders the answers of the headless Service `service_name` (lower-cased wire) from all of its
// slices, taken in the given order. Endpoints are those ready; if none is, those still serving
// while terminating.
ServiceAnswers render_service(std::span<const uint8_t> service_name,
                              std::span<const Slice* const> slices, uint32_t ttl);

}  // namespace readyns::k8s
