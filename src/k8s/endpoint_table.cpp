// The endpoint table: slices in, pre-rendered answers out.
//
// CoreDNS's negative answers are built per query from one stored SOA record.
#include "k8s/endpoint_table.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <set>
#include <shared_mutex>
#include <stdexcept>

#include "wire/answer.hpp"

namespace readyns::k8s {
namespace {

// A presentation name in lower-cased wire form; empty if it is not a valid name.
std::vector<uint8_t> wire_name(const std::string& text) {
  uint8_t buf[wire::kMaxNameLength];
  size_t len = wire::name_from_text(text.data(), text.size(), buf, sizeof buf);
  if (len == 0) return {};
  wire::lower_name(buf, len, buf);
  return {buf, buf + len};
}

void append16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

void append32(std::vector<uint8_t>& out, uint32_t v) {
  append16(out, uint16_t(v >> 16));
  append16(out, uint16_t(v));
}

uint32_t unix_now() {
  return uint32_t(std::time(nullptr));
}

uint64_t ready_in(const Slice& slice) {
  return uint64_t(std::count_if(slice.endpoints.begin(), slice.endpoints.end(),
                                [](const Endpoint& e) { return e.ready && !e.addresses.empty(); }));
}

}  // namespace

std::string cluster_domain_problem(std::string_view domain) {
  std::string text(domain);
  if (text.empty() || text == "." || wire_name(text).empty()) {
    return "bad domain name '" + text + "'";
  }
  std::string mailbox = "hostmaster." + text;  // the longest name the table makes of the domain
  if (wire_name(mailbox).empty()) return "domain too long: '" + mailbox + "' must fit in 255 bytes";
  return {};
}

EndpointTable::EndpointTable(TableSettings settings)
    : settings_(std::move(settings)), serial_(unix_now()) {
  if (std::string problem = cluster_domain_problem(settings_.cluster_domain); !problem.empty()) {
    throw std::invalid_argument("cluster domain: " + problem);
  }
  std::vector<uint8_t> zone = wire_name(settings_.cluster_domain);
  zone_suffix_ = wire_name("svc." + settings_.cluster_domain);
  std::vector<uint8_t> mname = wire_name("ns.dns." + settings_.cluster_domain);
  std::vector<uint8_t> rname = wire_name("hostmaster." + settings_.cluster_domain);
  // CoreDNS (plugin.SOA): owner the zone, TTL min(ttl, 300), refresh 7200, retry 1800,
  // expire 86400, minimum the plugin's TTL.
  soa_ = zone;
  append16(soa_, wire::kTypeSoa);
  append16(soa_, wire::kClassIn);
  append32(soa_, std::min<uint32_t>(settings_.ttl, 300));
  append16(soa_, uint16_t(mname.size() + rname.size() + 20));
  soa_.insert(soa_.end(), mname.begin(), mname.end());
  soa_.insert(soa_.end(), rname.begin(), rname.end());
  soa_serial_offset_ = soa_.size();
  for (uint32_t field : {0u, 7200u, 1800u, 86400u, settings_.ttl}) append32(soa_, field);
}

void EndpointTable::set_on_change(std::function<void(std::span<const uint8_t>)> cb) {
  std::lock_guard lock(write_mutex_);
  on_change_ = std::move(cb);
}

size_t EndpointTable::answer(const wire::Query& q, std::span<uint8_t> out, size_t limit) const {
  size_t len = build_answer(q, out, limit);
  // CoreDNS's kubernetes plugin speaks with authority for the cluster zone, denials included.
  if (len) out[2] |= wire::kFlagAa;
  return len;
}

size_t EndpointTable::build_answer(const wire::Query& q, std::span<uint8_t> out,
                                   size_t limit) const {
  const wire::Question& question = q.question;
  if (!synced() || !q.question_valid || question.qclass != wire::kClassIn) return 0;
  size_t len = question.name_len;
  if (len < zone_suffix_.size() || len > wire::kMaxNameLength) return 0;
  uint8_t name[wire::kMaxNameLength];
  wire::lower_name(question.name, len, name);

  // Find where the zone suffix starts, noting the label starts in front of it.
  size_t suffix_at = len - zone_suffix_.size();
  size_t starts[wire::kMaxNameLength / 2];
  size_t labels = 0, pos = 0;
  for (; pos < suffix_at && name[pos] != 0; pos += 1 + name[pos]) starts[labels++] = pos;
  if (pos != suffix_at || std::memcmp(name + pos, zone_suffix_.data(), zone_suffix_.size()) != 0) {
    return 0;
  }
  if (labels < 2) return 0;  // the zone, a namespace: CoreDNS's to answer
  size_t service_at = starts[labels - 2];
  size_t prefix_labels = labels - 2;
  const char* text = reinterpret_cast<const char*>(name);
  std::string_view service_name(text + service_at, len - service_at);
  std::string_view prefix(text, service_at);

  std::shared_lock lock(read_mutex_);
  auto service = services_.find(service_name);
  if (service == services_.end()) return 0;
  const ServiceAnswers& answers = *service->second;
  // CoreDNS answers the zone's SOA for any name in it, even one that does not exist.
  if (question.qtype == wire::kTypeSoa) return negative(q, wire::kNoError, true, out, limit);
  // CoreDNS: no endpoints, or a name too deep to parse, is NXDOMAIN.
  if (!answers.has_endpoints || prefix_labels > 2) {
    return negative(q, wire::kNxDomain, false, out, limit);
  }
  // Two labels without underscores are read by CoreDNS as port and protocol all the same (or as
  // endpoint and cluster with multicluster); a pre-rendered answer cannot carry that name, so the
  // query goes to CoreDNS.
  if (prefix_labels == 2 &&
      !(name[0] > 1 && name[1] == '_' && name[starts[1]] > 1 && name[starts[1] + 1] == '_')) {
    return 0;
  }
  auto entry = answers.names.find(prefix);
  if (entry == answers.names.end()) return negative(q, wire::kNxDomain, false, out, limit);

  const StoredAnswer* stored = nullptr;
  switch (question.qtype) {
    case wire::kTypeA:
      stored = &entry->second.a;
      break;
    case wire::kTypeAaaa:
      stored = &entry->second.aaaa;
      break;
    case wire::kTypeSrv:
      stored = &entry->second.srv;
      break;
    default:
      break;
  }
  if (!stored || stored->wire.empty()) return negative(q, wire::kNoError, false, out, limit);
  return wire::render_answer(stored->wire, stored->ttl_offsets, 0, 0, q, limit, out,
                             wire::Overflow::kLeadingRecords);
}

// The answer without records (NXDOMAIN or NODATA) with the SOA in the authority section, or the
// SOA alone in the answer section for an SOA query. Over `limit`, the SOA is left out and TC set,
// the rcode kept, as render_answer's kLeadingRecords does.
size_t EndpointTable::negative(const wire::Query& q, uint8_t rcode, bool soa_answer,
                               std::span<uint8_t> out, size_t limit) const {
  size_t total = wire::kHeaderSize + q.question.name_len + 4 + soa_.size() +
                 (q.edns.present ? wire::kOptRecordSize : 0);
  bool fits = total <= limit && total <= out.size();
  wire::Query without_edns = q;  // the OPT record must follow the SOA
  without_edns.edns.present = false;
  size_t len = wire::build_empty_answer(without_edns, rcode, out);
  if (len == 0) return 0;
  if (fits) {
    std::memcpy(&out[len], soa_.data(), soa_.size());
    wire::put32(&out[len + soa_serial_offset_], serial_.load(std::memory_order_relaxed));
    len += soa_.size();
    wire::put16(&out[soa_answer ? 6 : 8], 1);
  } else {
    out[2] |= wire::kFlagTc;
  }
  if (q.edns.present) len = wire::append_opt(out, len, q.edns.do_bit, 0);
  return len;
}

bool EndpointTable::serves(const Slice& slice) {
  return slice.headless && slice.address_type != AddressType::kOther &&
         is_dns_label(slice.service) && is_dns_label(slice.namespace_name);
}

void EndpointTable::put(const SliceKey& key, Slice* slice, std::vector<ServiceKey>& touched) {
  auto stored = slices_.find(key);
  bool keep = slice && serves(*slice);
  if (stored == slices_.end() && !keep) return;
  if (stored != slices_.end() && keep && stored->second == *slice) return;
  if (stored != slices_.end()) {
    ServiceKey before{key.first, stored->second.service};
    std::vector<std::string>& names = slice_names_[before];
    names.erase(std::find(names.begin(), names.end(), key.second));
    if (names.empty()) slice_names_.erase(before);
    touched.push_back(std::move(before));
    ready_endpoints_.fetch_sub(ready_in(stored->second), std::memory_order_relaxed);
    slices_.erase(stored);
  }
  if (keep) {
    ServiceKey after{key.first, slice->service};
    std::vector<std::string>& names = slice_names_[after];
    names.insert(std::lower_bound(names.begin(), names.end(), key.second), key.second);
    touched.push_back(std::move(after));
    ready_endpoints_.fetch_add(ready_in(*slice), std::memory_order_relaxed);
    slices_.emplace(key, std::move(*slice));
  }
}

void EndpointTable::publish(std::vector<ServiceKey>& touched) {
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  std::vector<std::string> changed;
  for (const ServiceKey& key : touched) {
    std::vector<uint8_t> name =
        wire_name(key.second + "." + key.first + ".svc." + settings_.cluster_domain);
    if (name.empty()) {
      spdlog::warn("k8s: Service {}/{} has a name too long for DNS", key.first, key.second);
      continue;
    }
    std::unique_ptr<const ServiceAnswers> fresh;
    if (auto names = slice_names_.find(key); names != slice_names_.end()) {
      std::vector<const Slice*> slices;
      for (const std::string& slice_name : names->second) {
        slices.push_back(&slices_.at({key.first, slice_name}));
      }
      fresh = std::make_unique<const ServiceAnswers>(render_service(name, slices, settings_.ttl));
    }
    std::string name_key(name.begin(), name.end());
    // Only this thread writes services_, so reading it needs no lock.
    auto current = services_.find(name_key);
    bool had = current != services_.end();
    if ((!had && !fresh) || (had && fresh && *current->second == *fresh)) continue;
    std::unique_ptr<const ServiceAnswers> old;  // freed after the lock is released
    {
      std::unique_lock lock(read_mutex_);
      if (!fresh) {
        old = std::move(current->second);
        services_.erase(current);
      } else if (had) {
        old = std::exchange(current->second, std::move(fresh));
      } else {
        services_.emplace(name_key, std::move(fresh));
      }
    }
    changed.push_back(std::move(name_key));
  }
  if (changed.empty()) return;
  serial_.store(unix_now(), std::memory_order_relaxed);
  if (!on_change_) return;
  for (const std::string& name : changed) {
    on_change_({reinterpret_cast<const uint8_t*>(name.data()), name.size()});
  }
}

void EndpointTable::apply(WatchEvent event) {
  std::vector<ServiceKey> touched, tracked;
  std::lock_guard lock(write_mutex_);
  switch (event.type) {
    case EventType::kAdded:
    case EventType::kModified:
      if (event.slice) {
        track({event.namespace_name, event.name}, &*event.slice, tracked);
        put({event.namespace_name, event.name}, &*event.slice, touched);
      }
      break;
    case EventType::kDeleted:
      // Even a DELETED whose object is otherwise malformed names the slice to drop.
      track({event.namespace_name, event.name}, nullptr, tracked);
      put({event.namespace_name, event.name}, nullptr, touched);
      break;
    case EventType::kBookmark:
    case EventType::kError:
      return;
  }
  publish(touched);
  report_endpoint_changes(tracked);
}

void EndpointTable::replace_all(std::string_view namespace_name, std::vector<Slice> slices) {
  std::lock_guard lock(write_mutex_);
  std::vector<ServiceKey> touched, tracked;
  std::set<SliceKey> listed;
  for (Slice& slice : slices) {
    SliceKey key{slice.namespace_name, slice.name};
    listed.insert(key);
    track(key, &slice, tracked);
    put(key, &slice, touched);
  }
  std::vector<SliceKey> gone;
  for (const auto& [key, slice] : slices_) {
    if ((namespace_name.empty() || key.first == namespace_name) && !listed.contains(key)) {
      gone.push_back(key);
    }
  }
  for (const SliceKey& key : gone) put(key, nullptr, touched);
  publish(touched);
  gone.clear();
  for (const auto& [key, service] : tracked_service_) {
    if ((namespace_name.empty() || key.first == namespace_name) && !listed.contains(key)) {
      gone.push_back(key);
    }
  }
  for (const SliceKey& key : gone) track(key, nullptr, tracked);
  report_endpoint_changes(tracked);
}

void EndpointTable::track(const SliceKey& key, const Slice* slice,
                          std::vector<ServiceKey>& changed) {
  if (!track_all_) return;
  // FQDN slices and slices of no Service carry nothing a client could connect to by address.
  bool keep = slice && slice->address_type != AddressType::kOther && !slice->service.empty();
  auto at = tracked_service_.find(key);
  if (at == tracked_service_.end() && !keep) return;
  std::lock_guard lock(tracked_mutex_);
  if (at != tracked_service_.end()) {
    ServiceKey before{key.first, at->second};
    auto service = tracked_.find(before);
    auto stored = service->second.find(key.second);
    if (keep && at->second == slice->service && stored->second == *slice) return;
    service->second.erase(stored);
    if (service->second.empty()) tracked_.erase(service);
    tracked_service_.erase(at);
    changed.push_back(std::move(before));
  }
  if (keep) {
    ServiceKey after{key.first, slice->service};
    tracked_[after].insert_or_assign(key.second, *slice);
    tracked_service_.emplace(key, slice->service);
    changed.push_back(std::move(after));
  }
}

void EndpointTable::report_endpoint_changes(std::vector<ServiceKey>& changed) {
  if (changed.empty() || !on_endpoints_change_) return;
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const ServiceKey& key : changed) on_endpoints_change_(key.first, key.second);
}

std::vector<EndpointTable::ServiceEndpoint> EndpointTable::endpoints(
    std::string_view namespace_name, std::string_view service, std::string_view port_name) const {
  std::string port;
  for (char c : port_name) port.push_back(c >= 'A' && c <= 'Z' ? char(c | 0x20) : c);
  std::vector<ServiceEndpoint> out;
  std::lock_guard lock(tracked_mutex_);
  auto slices = tracked_.find(ServiceKey{std::string(namespace_name), std::string(service)});
  if (slices == tracked_.end()) return out;
  // As render_service selects for DNS: the ready endpoints; if none, those serving while
  // terminating (so a Service mid-rollout is not left with nothing).
  bool any_ready = false;
  for (const auto& [name, slice] : slices->second) {
    for (const Endpoint& e : slice.endpoints) any_ready |= e.ready && !e.addresses.empty();
  }
  std::set<std::pair<std::string_view, uint16_t>> seen;
  for (const auto& [name, slice] : slices->second) {
    std::vector<uint16_t> ports;
    for (const SlicePort& p : slice.ports) {
      if (port.empty() || p.name == port) ports.push_back(p.port > 0 ? uint16_t(p.port) : 0);
    }
    if (port.empty() && slice.ports.empty()) ports.push_back(0);
    for (const Endpoint& e : slice.endpoints) {
      if (!(any_ready ? e.ready : e.serving && e.terminating)) continue;
      for (const Address& address : e.addresses) {
        for (uint16_t p : ports) {
          if (!seen.insert({address.text, p}).second) continue;
          out.push_back(
              {.address = address.text, .port = p, .hostname = e.hostname, .zone = e.zone});
        }
      }
    }
  }
  return out;
}

}  // namespace readyns::k8s
