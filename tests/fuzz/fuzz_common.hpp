// Shared helpers of the libFuzzer targets: a checked assertion, quiet logs, a DNS walker.
//
// The assertion survives NDEBUG; the small DNS message walker is written independently of src/wire
// and used as the oracle.
#pragma once

// Without it, ldns/common.h defines true and false as macros (see tests/k8s/dns_probe.hpp).
#include <stdbool.h>

#include <ldns/ldns.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

// A violated invariant: print it and abort, which libFuzzer reports as a crash with the input.
#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace readyns::fuzz {

// Called from LLVMFuzzerInitialize: the code under test logs malformed input, which would flood
// the fuzzer's output and slow it down.
inline void quiet_logs() {
  spdlog::set_level(spdlog::level::off);
}

inline uint16_t rd16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
inline uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// True if ldns accepts the whole message.
inline bool ldns_parses(std::span<const uint8_t> m) {
  ldns_pkt* pkt = nullptr;
  ldns_status status = ldns_wire2pkt(&pkt, m.data(), m.size());
  if (pkt) ldns_pkt_free(pkt);
  return status == LDNS_STATUS_OK;
}

// Reads a (possibly compressed) name at `pos` into `out` lower-cased, uncompressed. Returns the
// offset after the name in the message, or 0. Pointers must point strictly backwards.
inline size_t oracle_name(std::span<const uint8_t> m, size_t pos, std::vector<uint8_t>* out) {
  size_t after = 0;
  size_t limit = pos;
  if (out) out->clear();
  size_t total = 0;
  for (int jumps = 0;;) {
    if (pos >= m.size()) return 0;
    uint8_t len = m[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= m.size() || ++jumps > 64) return 0;
      size_t target = size_t(len & 0x3f) << 8 | m[pos + 1];
      if (!after) after = pos + 2;
      if (target >= limit) return 0;
      limit = pos = target;
      continue;
    }
    if (len > 63 || pos + 1 + len > m.size()) return 0;
    total += 1 + len;
    if (total > 255) return 0;
    if (out) {
      out->push_back(len);
      for (size_t i = 1; i <= len; ++i) {
        uint8_t c = m[pos + i];
        out->push_back(c >= 'A' && c <= 'Z' ? uint8_t(c | 0x20) : c);
      }
    }
    if (len == 0) return after ? after : pos + 1;
    pos += 1 + len;
  }
}

struct OracleRecord {
  int section = 0;  // 0 answer, 1 authority, 2 additional
  size_t start = 0, ttl_offset = 0, rdata = 0, end = 0;
  uint16_t type = 0, rclass = 0;
  std::vector<uint8_t> owner;  // lower-cased, uncompressed
};

struct OracleMessage {
  std::vector<uint8_t> qname;  // lower-cased
  size_t question_end = 0;
  std::vector<OracleRecord> records;
  size_t end = 0;  // just past the last record
};

// Walks a message with exactly one question. False if malformed.
inline bool oracle_walk(std::span<const uint8_t> m, OracleMessage& out) {
  if (m.size() < 12 || rd16(&m[4]) != 1) return false;
  size_t pos = oracle_name(m, 12, &out.qname);
  if (pos == 0 || pos + 4 > m.size()) return false;
  pos += 4;
  out.question_end = pos;
  for (int section = 0; section < 3; ++section) {
    unsigned count = rd16(&m[6 + 2 * section]);
    for (unsigned i = 0; i < count; ++i) {
      OracleRecord r;
      r.section = section;
      r.start = pos;
      pos = oracle_name(m, pos, &r.owner);
      if (pos == 0 || pos + 10 > m.size()) return false;
      r.type = rd16(&m[pos]);
      r.rclass = rd16(&m[pos + 2]);
      r.ttl_offset = pos + 4;
      r.rdata = pos + 10;
      pos = r.rdata + rd16(&m[pos + 8]);
      if (pos > m.size()) return false;
      r.end = pos;
      out.records.push_back(std::move(r));
    }
  }
  out.end = pos;
  return true;
}

inline std::vector<uint8_t> lowered(std::span<const uint8_t> bytes) {
  std::vector<uint8_t> out(bytes.begin(), bytes.end());
  for (uint8_t& c : out) {
    if (c >= 'A' && c <= 'Z') c |= 0x20;
  }
  return out;
}

// True if ldns reads the same records as the walker: owner, type and TTL, in order, per section,
// and nothing else. They differ when a record's RDLENGTH disagrees with its RDATA (ldns goes on
// from where it stopped reading fields, not from RDLENGTH), so each TTL is first set to a value of
// its own and a marker record is appended right after the walker's last record.
inline bool ldns_agrees(std::span<const uint8_t> m, const OracleMessage& msg) {
  constexpr uint32_t kMark = 0x12340000u, kEndMark = 0x0badf00du;
  if (m.size() < 12 || rd16(&m[10]) == 0xffff) return false;
  std::vector<uint8_t> marked(m.begin(), m.begin() + long(msg.end));
  auto put32 = [](uint8_t* p, uint32_t v) {
    p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
  };
  for (size_t i = 0; i < msg.records.size(); ++i) {
    if (msg.records[i].type != 41) put32(&marked[msg.records[i].ttl_offset], kMark + uint32_t(i));
  }
  // Root owner, type 65280 (private use), class IN, the end mark as TTL, no RDATA.
  const uint8_t end_record[] = {0, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  marked.insert(marked.end(), std::begin(end_record), std::end(end_record));
  put32(&marked[marked.size() - 6], kEndMark);
  uint16_t arcount = uint16_t(rd16(&marked[10]) + 1);
  marked[10] = uint8_t(arcount >> 8), marked[11] = uint8_t(arcount);

  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, marked.data(), marked.size()) != LDNS_STATUS_OK) {
    if (pkt) ldns_pkt_free(pkt);
    return false;
  }
  const ldns_rr_list* lists[3] = {ldns_pkt_answer(pkt), ldns_pkt_authority(pkt),
                                  ldns_pkt_additional(pkt)};
  size_t index[3] = {0, 0, 0};
  bool same = true;
  for (size_t i = 0; i < msg.records.size() && same; ++i) {
    const OracleRecord& r = msg.records[i];
    if (r.type == 41 || (r.type == 250 && r.section == 2)) continue;  // ldns lifts them out
    const ldns_rr_list* list = lists[r.section];
    if (index[r.section] >= ldns_rr_list_rr_count(list)) {
      same = false;
      break;
    }
    const ldns_rr* rr = ldns_rr_list_rr(list, index[r.section]++);
    const ldns_rdf* owner = ldns_rr_owner(rr);
    std::vector<uint8_t> theirs = lowered({ldns_rdf_data(owner), ldns_rdf_size(owner)});
    same = ldns_rr_get_type(rr) == r.type && theirs == r.owner &&
           ldns_rr_ttl(rr) == kMark + uint32_t(i);
  }
  if (same) {
    // Then exactly the end marker.
    same = index[0] == ldns_rr_list_rr_count(lists[0]) &&
           index[1] == ldns_rr_list_rr_count(lists[1]) &&
           index[2] + 1 == ldns_rr_list_rr_count(lists[2]) &&
           ldns_rr_ttl(ldns_rr_list_rr(lists[2], index[2])) == kEndMark;
  }
  ldns_pkt_free(pkt);
  return same;
}

// True if some name of the message reads through a TTL field (a compression pointer into bytes
// that a label then runs across): rewriting TTLs then changes the name, or breaks the message.
inline bool names_cross_ttls(std::span<const uint8_t> m, const OracleMessage& msg) {
  for (uint8_t fill : {0x00, 0x01, 0x3f}) {
    std::vector<uint8_t> copy(m.begin(), m.end());
    for (const OracleRecord& r : msg.records) std::fill_n(&copy[r.ttl_offset], 4, fill);
    OracleMessage again;
    if (!oracle_walk(copy, again) || again.records.size() != msg.records.size() ||
        again.qname != msg.qname) {
      return true;
    }
    for (size_t i = 0; i < msg.records.size(); ++i) {
      if (again.records[i].owner != msg.records[i].owner ||
          again.records[i].ttl_offset != msg.records[i].ttl_offset) {
        return true;
      }
      // Names in RDATA (a CNAME's target is what the chain follows).
      if (msg.records[i].type == 5) {
        std::vector<uint8_t> a, b;
        if (oracle_name(m, msg.records[i].rdata, &a) !=
                oracle_name(copy, msg.records[i].rdata, &b) ||
            a != b) {
          return true;
        }
      }
    }
  }
  return false;
}

// True if `name` equals `zone` or lies beneath it (both lower-cased uncompressed wire).
inline bool oracle_in_zone(const std::vector<uint8_t>& name, std::span<const uint8_t> zone) {
  for (size_t pos = 0; pos < name.size(); pos += 1 + name[pos]) {
    if (name.size() - pos == zone.size() &&
        std::equal(zone.begin(), zone.end(), name.begin() + long(pos))) {
      return true;
    }
    if (name[pos] == 0) break;
  }
  return false;
}

}  // namespace readyns::fuzz
