// Rendering a headless Service's answers into wire form, as CoreDNS's kubernetes plugin does.
//
// Record for record as the plugin builds them (plugin/backend_lookup.go: A, AAAA and SRV with its
// weights and extras).
#include "k8s/render.hpp"

#include <cmath>
#include <set>
#include <utility>

#include "wire/message.hpp"

namespace readyns::k8s {
namespace {

using wire::put16;
using wire::put32;

constexpr size_t kRecordFixed = 10;  // type, class, TTL, RDLENGTH
constexpr uint8_t kPointer = 0xc0;
// Room left for the client's OPT record; TTL offsets are 16-bit, so nothing may go past 64 KiB.
constexpr size_t kMaxStored = wire::kMaxMessageSize - wire::kOptRecordSize;

// One (address, port) pair of a selected endpoint: what CoreDNS calls a msg.Service.
struct Target {
  const Address* address;
  bool ipv6;
  std::string label;      // the endpoint's name in front of the Service name
  const SlicePort* port;  // nullptr when the slice lists no port (CoreDNS's port -1 sentinel)
  int32_t port_number() const { return port ? port->port : -1; }
};

class Builder {
 public:
  Builder(std::span<const uint8_t> qname, uint16_t qtype) {
    out_.wire.resize(wire::kHeaderSize);
    out_.wire[2] = wire::kFlagQr;
    out_.wire[3] = wire::kFlagRa;
    put16(&out_.wire[4], 1);
    out_.wire.insert(out_.wire.end(), qname.begin(), qname.end());
    append16(qtype);
    append16(wire::kClassIn);
  }

  // Adds a record (all answers before any additional); false once the message would outgrow
  // what a TCP answer can carry, and the record is then left out.
  bool add(std::span<const uint8_t> owner, uint16_t type, uint32_t ttl,
           std::span<const uint8_t> rdata, bool additional) {
    if (out_.wire.size() + owner.size() + kRecordFixed + rdata.size() > kMaxStored) return false;
    out_.wire.insert(out_.wire.end(), owner.begin(), owner.end());
    append16(type);
    append16(wire::kClassIn);
    out_.ttl_offsets.push_back(uint16_t(out_.wire.size()));
    append16(uint16_t(ttl >> 16));
    append16(uint16_t(ttl));
    append16(uint16_t(rdata.size()));
    out_.wire.insert(out_.wire.end(), rdata.begin(), rdata.end());
    ++(additional ? additional_ : answers_);
    return true;
  }

  StoredAnswer finish() && {
    if (answers_ == 0) return {};
    put16(&out_.wire[6], answers_);
    put16(&out_.wire[10], additional_);
    return std::move(out_);
  }

 private:
  void append16(uint16_t v) {
    out_.wire.push_back(uint8_t(v >> 8));
    out_.wire.push_back(uint8_t(v));
  }
  StoredAnswer out_;
  uint16_t answers_ = 0, additional_ = 0;
};

constexpr uint8_t kQuestionName[] = {kPointer, wire::kHeaderSize};  // every answer's owner

std::span<const uint8_t> address_rdata(const Target& t) {
  return {t.address->bytes.data(), t.ipv6 ? 16u : 4u};
}

// A or AAAA: each distinct address once, in order (CoreDNS dedups on the address).
StoredAnswer render_addresses(std::span<const uint8_t> qname, const std::vector<const Target*>& ts,
                              bool ipv6, uint32_t ttl) {
  Builder builder(qname, ipv6 ? wire::kTypeAaaa : wire::kTypeA);
  std::set<std::string_view> seen;
  for (const Target* t : ts) {
    if (t->ipv6 != ipv6 || !seen.insert(t->address->text).second) continue;
    if (!builder.add(kQuestionName, ipv6 ? wire::kTypeAaaa : wire::kTypeA, ttl, address_rdata(*t),
                     false)) {
      break;
    }
  }
  return std::move(builder).finish();
}

// SRV: priority 0; weight 100/N floored (at least 1) with N counting every (address, port) pair,
// port-less ones included, exactly as CoreDNS computes it in float64; one record per distinct
// (target, port); each target's address in the additional section once.
StoredAnswer render_srv(std::span<const uint8_t> qname, size_t service_offset,
                        std::span<const uint8_t> service_name, const std::vector<const Target*>& ts,
                        uint32_t ttl) {
  double share = 100.0 / double(100 * ts.size());
  share *= 100;
  uint16_t weight = uint16_t(std::floor(share));
  if (weight == 0) weight = 1;

  Builder builder(qname, wire::kTypeSrv);
  std::set<std::pair<std::string_view, int32_t>> seen_srv;
  std::vector<const Target*> extras;
  std::set<std::pair<std::string_view, std::string_view>> seen_extra;
  for (const Target* t : ts) {
    if (t->port_number() < 0) continue;
    if (seen_srv.insert({t->label, t->port_number()}).second) {
      std::vector<uint8_t> rdata(6);
      put16(&rdata[0], 0);
      put16(&rdata[2], weight);
      put16(&rdata[4], uint16_t(t->port_number()));
      // RFC 2782: the target is never compressed.
      rdata.push_back(uint8_t(t->label.size()));
      rdata.insert(rdata.end(), t->label.begin(), t->label.end());
      rdata.insert(rdata.end(), service_name.begin(), service_name.end());
      if (!builder.add(kQuestionName, wire::kTypeSrv, ttl, rdata, false)) break;
    }
    if (seen_extra.insert({t->label, t->address->text}).second) extras.push_back(t);
  }
  for (const Target* t : extras) {
    std::vector<uint8_t> owner{uint8_t(t->label.size())};
    owner.insert(owner.end(), t->label.begin(), t->label.end());
    owner.push_back(uint8_t(kPointer | service_offset >> 8));
    owner.push_back(uint8_t(service_offset));
    if (!builder.add(owner, t->ipv6 ? wire::kTypeAaaa : wire::kTypeA, ttl, address_rdata(*t),
                     true)) {
      break;
    }
  }
  return std::move(builder).finish();
}

NameAnswers render_name(std::string_view prefix, std::span<const uint8_t> service_name,
                        const std::vector<const Target*>& ts, uint32_t ttl) {
  std::vector<uint8_t> qname(prefix.begin(), prefix.end());
  qname.insert(qname.end(), service_name.begin(), service_name.end());
  return NameAnswers{
      .a = render_addresses(qname, ts, false, ttl),
      .aaaa = render_addresses(qname, ts, true, ttl),
      .srv = render_srv(qname, wire::kHeaderSize + prefix.size(), service_name, ts, ttl),
  };
}

std::string wire_labels(std::initializer_list<std::string_view> labels) {
  std::string out;
  for (std::string_view label : labels) {
    out.push_back(char(label.size()));
    out.append(label);
  }
  return out;
}

// CoreDNS's endpointHostname: the address with '-' for each '.' or ':', and a '0' after a
// trailing '-' (an IPv6 address ending in "::"), since a label may not end in a hyphen.
std::string dashed(std::string_view address) {
  std::string out(address);
  for (char& c : out) {
    if (c == '.' || c == ':') c = '-';
  }
  if (!out.empty() && out.back() == '-') out.push_back('0');
  return out;
}

}  // namespace

ServiceAnswers render_service(std::span<const uint8_t> service_name,
                              std::span<const Slice* const> slices, uint32_t ttl) {
  bool any_ready = false;
  for (const Slice* slice : slices) {
    for (const Endpoint& e : slice->endpoints) any_ready |= e.ready && !e.addresses.empty();
  }
  auto selected = [any_ready](const Endpoint& e) {
    return any_ready ? e.ready : e.serving && e.terminating;
  };

  std::vector<Target> targets;
  for (const Slice* slice : slices) {
    for (const Endpoint& e : slice->endpoints) {
      if (!selected(e)) continue;
      for (const Address& address : e.addresses) {
        Target t{.address = &address,
                 .ipv6 = slice->address_type == AddressType::kIPv6,
                 .label = e.hostname.empty() ? dashed(address.text) : e.hostname,
                 .port = nullptr};
        if (slice->ports.empty()) targets.push_back(t);
        for (const SlicePort& port : slice->ports) {
          t.port = &port;
          targets.push_back(t);
        }
      }
    }
  }

  ServiceAnswers out;
  out.has_endpoints = !targets.empty();
  if (!out.has_endpoints) return out;
  // The whole name must fit 255 bytes: the Service name plus what is in front of it.
  size_t room = wire::kMaxNameLength - service_name.size();
  std::map<std::string, std::vector<const Target*>, std::less<>> groups;
  for (const Target& t : targets) {
    groups[""].push_back(&t);
    if (1 + t.label.size() <= room) groups[wire_labels({t.label})].push_back(&t);
    if (t.port && !t.port->name.empty() && !t.port->protocol.empty()) {
      std::string port_label = "_" + t.port->name, protocol_label = "_" + t.port->protocol;
      if (port_label.size() <= 63 && protocol_label.size() <= 63 &&
          2 + port_label.size() + protocol_label.size() <= room) {
        groups[wire_labels({port_label, protocol_label})].push_back(&t);
      }
    }
  }
  for (const auto& [prefix, group] : groups) {
    out.names.emplace(prefix, render_name(prefix, service_name, group, ttl));
  }
  return out;
}

}  // namespace readyns::k8s
