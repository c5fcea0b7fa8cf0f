// Reading EndpointSlices from the API's JSON with type checks everywhere.
//
// A malformed or unexpected object is thus skipped and logged rather than thrown or half-applied.
#include "k8s/slice.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

namespace readyns::k8s {
namespace {

using nlohmann::json;

constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
constexpr std::string_view kHeadlessLabel = "service.kubernetes.io/headless";

std::string lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c | 0x20);
  }
  return out;
}

// A member that is present and not null; JSON null is how the API writes an unset pointer field.
const json* member(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Each reader leaves `why` empty on success; a missing optional member keeps the default.
void read_string(const json& object, std::string_view key, std::string& out, std::string& why) {
  const json* value = member(object, key);
  if (!value) return;
  if (!value->is_string()) {
    why = std::string(key) + " is not a string";
    return;
  }
  out = value->get_ref<const std::string&>();
}

void read_bool(const json& object, std::string_view key, bool& out, bool& present,
               std::string& why) {
  const json* value = member(object, key);
  present = value != nullptr;
  if (!value) return;
  if (!value->is_boolean()) {
    why = std::string(key) + " is not a boolean";
    return;
  }
  out = value->get<bool>();
}

// An array member, or nullptr when absent; `why` is set when present but not an array.
const json* read_array(const json& object, std::string_view key, std::string& why) {
  const json* value = member(object, key);
  if (value && !value->is_array()) {
    why = std::string(key) + " is not an array";
    return nullptr;
  }
  return value;
}

void parse_conditions(const json& endpoint, Endpoint& out, std::string& why) {
  const json* conditions = member(endpoint, "conditions");
  if (!conditions) return;
  if (!conditions->is_object()) {
    why = "conditions is not an object";
    return;
  }
  bool has_ready = false, has_serving = false, has_terminating = false;
  read_bool(*conditions, "ready", out.ready, has_ready, why);
  if (why.empty()) read_bool(*conditions, "serving", out.serving, has_serving, why);
  if (why.empty()) read_bool(*conditions, "terminating", out.terminating, has_terminating, why);
  if (!has_serving) out.serving = out.ready;
}

void parse_endpoint(const json& endpoint, AddressType type, Endpoint& out, std::string& why) {
  if (!endpoint.is_object()) {
    why = "an endpoint is not an object";
    return;
  }
  const json* addresses = read_array(endpoint, "addresses", why);
  if (!why.empty()) return;
  if (addresses) {
    for (const json& text : *addresses) {
      if (!text.is_string()) {
        why = "an address is not a string";
        return;
      }
      Address address{.text = lowered(text.get_ref<const std::string&>()), .bytes = {}};
      int family = type == AddressType::kIPv4 ? AF_INET : AF_INET6;
      if (inet_pton(family, address.text.c_str(), address.bytes.data()) != 1) {
        why = "address " + address.text + " is not of the slice's addressType";
        return;
      }
      out.addresses.push_back(std::move(address));
    }
  }
  read_string(endpoint, "hostname", out.hostname, why);
  if (!why.empty()) return;
  out.hostname = lowered(out.hostname);
  if (!out.hostname.empty() && !is_dns_label(out.hostname)) {
    why = "hostname " + out.hostname + " is not a DNS label";
    return;
  }
  read_string(endpoint, "zone", out.zone, why);
  if (!why.empty()) return;
  parse_conditions(endpoint, out, why);
}

void parse_port(const json& port, SlicePort& out, std::string& why) {
  if (!port.is_object()) {
    why = "a port is not an object";
    return;
  }
  read_string(port, "name", out.name, why);
  if (why.empty()) read_string(port, "protocol", out.protocol, why);
  if (!why.empty()) return;
  out.name = lowered(out.name);
  out.protocol = lowered(out.protocol);
  if (const json* number = member(port, "port")) {
    if (!number->is_number_integer() || number->get<int64_t>() < 1 ||
        number->get<int64_t>() > 65535) {
      why = "port is not a number from 1 to 65535";
      return;
    }
    out.port = number->get<int32_t>();
  }
}

void parse_metadata(const json& object, Slice& out, std::string& why) {
  const json* metadata = member(object, "metadata");
  if (!metadata || !metadata->is_object()) {
    why = "metadata is missing";
    return;
  }
  read_string(*metadata, "name", out.name, why);
  if (why.empty()) read_string(*metadata, "namespace", out.namespace_name, why);
  if (!why.empty()) return;
  if (out.name.empty() || out.namespace_name.empty()) {
    why = "metadata.name or metadata.namespace is missing";
    return;
  }
  const json* labels = member(*metadata, "labels");
  if (!labels) return;
  if (!labels->is_object()) {
    why = "metadata.labels is not an object";
    return;
  }
  read_string(*labels, kServiceNameLabel, out.service, why);
  out.headless = labels->contains(kHeadlessLabel);
}

// Fills `out` from an EndpointSlice object; `why` says what was wrong if anything was.
void parse_slice_object(const json& object, Slice& out, std::string& why) {
  if (!object.is_object()) {
    why = "not an object";
    return;
  }
  parse_metadata(object, out, why);
  if (!why.empty()) return;
  std::string address_type;
  read_string(object, "addressType", address_type, why);
  if (!why.empty()) return;
  out.address_type = address_type == "IPv4"   ? AddressType::kIPv4
                     : address_type == "IPv6" ? AddressType::kIPv6
                                              : AddressType::kOther;
  if (out.address_type == AddressType::kOther) return;  // FQDN slices are never served

  const json* endpoints = read_array(object, "endpoints", why);
  if (endpoints) {
    for (const json& endpoint : *endpoints) {
      Endpoint parsed;
      parse_endpoint(endpoint, out.address_type, parsed, why);
      if (!why.empty()) return;
      out.endpoints.push_back(std::move(parsed));
    }
  }
  const json* ports = read_array(object, "ports", why);
  if (ports) {
    for (const json& port : *ports) {
      SlicePort parsed;
      parse_port(port, parsed, why);
      if (!why.empty()) return;
      out.ports.push_back(std::move(parsed));
    }
  }
}

std::optional<Slice> parse_logged(const json& object) {
  Slice slice;
  std::string why;
  parse_slice_object(object, slice, why);
  if (why.empty()) return slice;
  spdlog::warn("k8s: skipping EndpointSlice {}/{}: {}", slice.namespace_name, slice.name, why);
  return std::nullopt;
}

std::string resource_version_of(const json& object) {
  std::string version, why;
  const json* metadata = member(object, "metadata");
  if (metadata && metadata->is_object()) read_string(*metadata, "resourceVersion", version, why);
  return why.empty() ? version : std::string();
}

}  // namespace

bool is_dns_label(std::string_view text) {
  if (text.empty() || text.size() > 63) return false;
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::optional<SliceList> parse_slice_list(std::string_view body) {
  json list = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const json* items = list.is_object() ? member(list, "items") : nullptr;
  const json* metadata = list.is_object() ? member(list, "metadata") : nullptr;
  if ((items && !items->is_array()) || !metadata || !metadata->is_object()) {
    spdlog::warn("k8s: the EndpointSlice list is malformed ({} bytes)", body.size());
    return std::nullopt;
  }
  SliceList out;
  std::string why;
  read_string(*metadata, "resourceVersion", out.resource_version, why);
  if (why.empty()) read_string(*metadata, "continue", out.continue_token, why);
  if (!why.empty() || out.resource_version.empty()) {
    spdlog::warn("k8s: the EndpointSlice list has no usable resourceVersion");
    return std::nullopt;
  }
  if (items) {
    for (const json& item : *items) {
      if (std::optional<Slice> slice = parse_logged(item)) out.items.push_back(std::move(*slice));
    }
  }
  return out;
}

std::optional<WatchEvent> parse_watch_event(std::string_view line) {
  json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
  std::string type, why;
  const json* object = event.is_object() ? member(event, "object") : nullptr;
  if (object && object->is_object()) read_string(event, "type", type, why);
  WatchEvent out;
  auto known = std::find(std::begin(kEventTypeNames), std::end(kEventTypeNames), type);
  if (known == std::end(kEventTypeNames)) {
    spdlog::warn("k8s: skipping a watch line that is not an event: {:.200}", line);
    return std::nullopt;
  }
  out.type = EventType(known - std::begin(kEventTypeNames));
  out.resource_version = resource_version_of(*object);
  switch (out.type) {
    case EventType::kAdded:
    case EventType::kModified:
    case EventType::kDeleted: {
      if (const json* metadata = member(*object, "metadata"); metadata && metadata->is_object()) {
        read_string(*metadata, "namespace", out.namespace_name, why);
        read_string(*metadata, "name", out.name, why);
      }
      out.slice = parse_logged(*object);
      break;
    }
    case EventType::kError: {
      const json* code = member(*object, "code");
      if (code && code->is_number_integer()) out.status_code = code->get<int32_t>();
      read_string(*object, "message", out.message, why);
      break;
    }
    case EventType::kBookmark:
      break;
  }
  return out;
}

}  // namespace readyns::k8s
