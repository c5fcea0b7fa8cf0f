// fuzz_endpointslice: EndpointSlice JSON from the API into k8s::EndpointTable, then questions.
//
// Input: text lines. The first line is an EndpointSliceList body (k8s::parse_slice_list, then
// EndpointTable::replace_all and mark_synced); every further line is one watch event
// (k8s::parse_watch_event, then EndpointTable::apply). Afterwards the table is asked A, AAAA,
// SRV, SOA and TXT questions for the names the parsed slices imply, and every answer is checked:
// its size against the client's limit, its header and question, ldns parsing it, and its
// independence from the case of the question.
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "k8s/endpoint_table.hpp"
#include "k8s/slice.hpp"
#include "wire/message.hpp"

using namespace readyns;
using fuzz::rd16;

namespace {

constexpr uint8_t kZoneSuffix[] = {3,   's', 'v', 'c', 7,   'c', 'l', 'u', 's', 't',
                                   'e', 'r', 5,   'l', 'o', 'c', 'a', 'l', 0};

// Names worth asking about, from everything the slices said.
struct Names {
  std::set<std::string> services;  // "svc.ns"
  std::set<std::string> prefixes;  // "web-0", "10-0-0-1", "_http._tcp"

  void note(const k8s::Slice& s) {
    if (services.size() < 3) services.insert(s.service + "." + s.namespace_name);
    for (const k8s::Endpoint& e : s.endpoints) {
      if (!e.hostname.empty() && prefixes.size() < 5) prefixes.insert(e.hostname);
      for (const k8s::Address& a : e.addresses) {
        std::string dashed = a.text;
        for (char& c : dashed) {
          if (c == '.' || c == ':') c = '-';
        }
        if (prefixes.size() < 5) prefixes.insert(dashed);
      }
    }
    for (const k8s::SlicePort& p : s.ports) {
      if (!p.name.empty() && !p.protocol.empty() && prefixes.size() < 7) {
        prefixes.insert("_" + p.name + "._" + p.protocol);
      }
    }
  }
};

// Every name the table reports as changed is a Service name in its zone, lower-cased.
void check_changed(std::span<const uint8_t> name) {
  FUZZ_CHECK(name.size() > sizeof kZoneSuffix && name.size() <= wire::kMaxNameLength);
  FUZZ_CHECK(std::memcmp(name.data() + name.size() - sizeof kZoneSuffix, kZoneSuffix,
                         sizeof kZoneSuffix) == 0);
  std::vector<uint8_t> lower = fuzz::lowered(name);
  FUZZ_CHECK(std::equal(lower.begin(), lower.end(), name.begin()));
  size_t pos = 0;
  while (name[pos] != 0) {
    FUZZ_CHECK(name[pos] <= 63);
    pos += 1 + name[pos];
    FUZZ_CHECK(pos < name.size());
  }
  FUZZ_CHECK(pos + 1 == name.size());
}

struct Asked {
  size_t len = 0;
  std::vector<uint8_t> bytes;
};

Asked ask(const k8s::EndpointTable& table, const std::vector<uint8_t>& name, uint16_t qtype,
          bool edns, size_t limit) {
  std::vector<uint8_t> msg(12, 0);
  wire::put16(&msg[0], 0xbeef);
  msg[2] = wire::kFlagRd;
  wire::put16(&msg[4], 1);
  msg.insert(msg.end(), name.begin(), name.end());
  msg.push_back(uint8_t(qtype >> 8));
  msg.push_back(uint8_t(qtype));
  msg.push_back(0);
  msg.push_back(1);
  if (edns) {
    wire::put16(&msg[10], 1);
    const uint8_t opt[] = {0, 0, 41, uint8_t(limit >> 8), uint8_t(limit), 0, 0, 0x80, 0, 0, 0};
    msg.insert(msg.end(), std::begin(opt), std::end(opt));
  }
  wire::Query q;
  FUZZ_CHECK(wire::parse_query(msg, q) == wire::QueryCheck::kOk);
  if (!edns) limit = q.udp_limit();
  static std::vector<uint8_t> out(wire::kMaxMessageSize);  // reused: no 64 KiB memset per call
  size_t len = table.answer(q, out, limit);
  if (len == 0) return {};
  std::span<const uint8_t> a(out.data(), len);
  FUZZ_CHECK(len >= 12 && len <= limit);
  FUZZ_CHECK(rd16(&a[0]) == 0xbeef && (a[2] & wire::kFlagQr) && (a[2] & wire::kFlagRd));
  FUZZ_CHECK(rd16(&a[4]) == 1);
  FUZZ_CHECK(std::memcmp(&a[12], name.data(), name.size()) == 0);  // the client's case
  FUZZ_CHECK(fuzz::ldns_parses(a));
  fuzz::OracleMessage m;
  FUZZ_CHECK(fuzz::oracle_walk(a, m));
  FUZZ_CHECK(m.end == len);
  uint8_t rcode = a[3] & 0x0f;
  unsigned answers = rd16(&a[6]), authority = rd16(&a[8]);
  if (a[2] & wire::kFlagTc) {
    FUZZ_CHECK(answers == 0 && authority == 0);
  } else {
    FUZZ_CHECK(rcode == wire::kNoError || rcode == wire::kNxDomain);
    if (qtype == wire::kTypeSoa) {
      FUZZ_CHECK(rcode == wire::kNoError && answers == 1 && m.records[0].type == wire::kTypeSoa);
    } else if (answers == 0) {
      FUZZ_CHECK(authority == 1 && m.records[0].type == wire::kTypeSoa);
    } else {
      FUZZ_CHECK(rcode == wire::kNoError);
      for (const fuzz::OracleRecord& r : m.records) {
        if (r.section == 0) FUZZ_CHECK(r.type == qtype && r.owner == fuzz::lowered(name));
      }
    }
  }
  if (edns) {
    FUZZ_CHECK(!m.records.empty() && m.records.back().type == wire::kTypeOpt);
  } else {
    for (const fuzz::OracleRecord& r : m.records) FUZZ_CHECK(r.type != wire::kTypeOpt);
  }
  return {len, {a.begin(), a.end()}};
}

std::optional<std::vector<uint8_t>> to_wire(const std::string& text) {
  uint8_t buf[wire::kMaxNameLength];
  size_t len = wire::name_from_text(text.data(), text.size(), buf, sizeof buf);
  if (len == 0) return std::nullopt;
  return std::vector<uint8_t>(buf, buf + len);
}

std::vector<uint8_t> upper_cased(std::vector<uint8_t> name) {
  for (uint8_t& c : name) {
    if (c >= 'a' && c <= 'z') c &= ~0x20;
  }
  return name;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  k8s::EndpointTable table({.cluster_domain = "cluster.local", .ttl = 5});
  size_t changes = 0;
  table.set_on_change([&](std::span<const uint8_t> name) {
    check_changed(name);
    ++changes;
  });
  Names names;

  size_t line_end = text.find('\n');
  std::string_view first = text.substr(0, line_end);
  if (std::optional<k8s::SliceList> list = k8s::parse_slice_list(first)) {
    FUZZ_CHECK(!list->resource_version.empty());
    std::set<std::pair<std::string, std::string>> keys;
    for (const k8s::Slice& s : list->items) {
      names.note(s);
      keys.insert({s.namespace_name, s.name});
    }
    std::vector<k8s::Slice> again = list->items;
    table.replace_all("", std::move(list->items));
    if (keys.size() == again.size()) {
      // The same list again changes nothing (with unique slice names, as the API has them).
      size_t before = changes;
      table.replace_all("", std::move(again));
      FUZZ_CHECK(changes == before);
    }
    table.mark_synced();
  }

  while (line_end != std::string_view::npos) {
    text.remove_prefix(line_end + 1);
    line_end = text.find('\n');
    std::optional<k8s::WatchEvent> event = k8s::parse_watch_event(text.substr(0, line_end));
    if (!event) continue;
    if (event->slice) {
      names.note(*event->slice);
      FUZZ_CHECK(event->slice->namespace_name == event->namespace_name &&
                 event->slice->name == event->name);
    }
    k8s::WatchEvent copy = *event;
    size_t before = changes;
    table.apply(std::move(*event));
    if (copy.type == k8s::EventType::kBookmark || copy.type == k8s::EventType::kError) {
      FUZZ_CHECK(changes == before);
    }
    // The same event twice: the second changes nothing.
    before = changes;
    table.apply(std::move(copy));
    FUZZ_CHECK(changes == before);
  }
  table.mark_synced();

  // Ask: each Service, names in front of it, and a few it cannot have.
  std::vector<std::string> questions;
  for (const std::string& service : names.services) {
    std::string base = service + ".svc.cluster.local";
    questions.push_back(base);
    for (const std::string& prefix : names.prefixes) questions.push_back(prefix + "." + base);
    questions.push_back("nope." + base);
    questions.push_back("a.b.c." + base);
  }
  for (const std::string& question : questions) {
    std::optional<std::vector<uint8_t>> name = to_wire(question);
    if (!name) continue;
    for (uint16_t qtype : {uint16_t(wire::kTypeA), uint16_t(wire::kTypeAaaa),
                           uint16_t(wire::kTypeSrv), uint16_t(wire::kTypeSoa), uint16_t(16)}) {
      Asked plain = ask(table, *name, qtype, false, 512);
      Asked upper = ask(table, upper_cased(*name), qtype, false, 512);
      // The answer does not depend on the question's case, but for the echoed name.
      FUZZ_CHECK(plain.len == upper.len);
      if (plain.len) {
        size_t q_end = 12 + name->size();
        FUZZ_CHECK(std::memcmp(plain.bytes.data() + q_end, upper.bytes.data() + q_end,
                               plain.len - q_end) == 0);
      }
      if (qtype == wire::kTypeA || qtype == wire::kTypeSrv) {
        ask(table, *name, qtype, true, 1232);
        ask(table, *name, qtype, true, wire::kMaxMessageSize);
      }
    }
  }
  return 0;
}
