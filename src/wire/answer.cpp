// Upstream answers: reply checks, preparation for the cache, and serving stored answers.
#include "wire/answer.hpp"

#include <ldns/ldns.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace readyns::wire {
namespace {

enum Section : uint8_t { kAnswer, kAuthority, kAdditional };

struct RecordInfo {
  uint16_t start = 0, end = 0;  // byte range in the message
  uint16_t ttl_offset = 0;
  uint16_t type = 0;
  Section section = kAnswer;
  bool keep = true;
};

struct Name {
  uint8_t bytes[kMaxNameLength];
  size_t len = 0;
  bool operator==(const Name& o) const {
    return len == o.len && std::memcmp(bytes, o.bytes, len) == 0;
  }
};

// What walk() finds in a message, with walk()'s working space. Reused from one message to the
// next (one per thread), so that its vectors keep their capacity and preparing an answer
// allocates nothing.
struct Layout {
  size_t question_end;
  std::vector<RecordInfo> records;
  uint32_t soa_ttl, soa_minimum;
  bool has_soa;
  bool opt_last;  // OPT absent, or the very last record: strip it by truncation

  std::vector<bool> name_bytes;  // NameBytes' map of the message
  std::vector<Name> owners;      // each record's owner name, for the chain pass
  std::vector<Name> chain;       // the question name and the CNAME targets reached from it
  std::vector<bool> on_chain;    // by answer record

  // Makes it ready for another message. The room a message of many records took goes back to
  // the heap: owner names are large.
  void reset() {
    constexpr size_t kKeptRecords = 64;
    question_end = 0;
    soa_ttl = soa_minimum = 0;
    has_soa = false;
    opt_last = true;
    if (owners.capacity() > kKeptRecords) {
      records = {};
      owners = {};
      on_chain = {};
    }
    records.clear();
    owners.clear();
    chain.clear();
  }
};

// Bytes a name may be read from: the question's name, owner names and RDATA. Never the header, the
// question's type and class, or a record's type, class, TTL and RDLENGTH: prepare_answer() and
// render_answer() rewrite the ID, the counts and the TTLs after the names were checked, so a name
// read through them would change (or break) in the answer a client gets.
class NameBytes {
 public:
  // Nothing allowed yet, in a message of `size` bytes; `allowed` is the space to keep that in.
  NameBytes(size_t size, std::vector<bool>& allowed) : allowed_(allowed) {
    allowed_.assign(size, false);
  }

  void allow(size_t from, size_t to) {
    std::fill(allowed_.begin() + long(from), allowed_.begin() + long(to), true);
  }

  // Reads the name at `pos` as read_name() does, refusing it if a compression pointer leads to
  // bytes not allowed. Its bytes up to the first pointer lie where the caller found the name, so
  // the caller answers for them.
  size_t read(std::span<const uint8_t> msg, size_t pos, Name& name) const {
    size_t after = read_name(msg, pos, name.bytes, name.len);
    if (after == 0) return 0;
    // read_name() has checked every label and pointer: follow them again, looking at the bytes.
    for (bool jumped = false;;) {
      uint8_t label = msg[pos];
      bool pointer = (label & 0xc0) == 0xc0;
      size_t len = pointer ? 2 : 1u + label;
      if (jumped && std::find(allowed_.begin() + long(pos), allowed_.begin() + long(pos + len),
                              false) != allowed_.begin() + long(pos + len)) {
        return 0;
      }
      if (pointer) {
        pos = size_t(label & 0x3f) << 8 | msg[pos + 1];
        jumped = true;
      } else if (label == 0) {
        return after;
      } else {
        pos += len;
      }
    }
  }

 private:
  std::vector<bool>& allowed_;
};

// Record types whose RDATA holds names that readers decompress (RFC 3597 4, and DNAME): what comes
// before the first name, how many names, and what follows the last. Such RDATA must be exactly
// that.
struct RdataNames {
  uint16_t type;
  uint8_t before, names, after;
};
constexpr RdataNames kRdataNames[] = {
    {kTypeNs, 0, 1, 0},        {3 /* MD */, 0, 1, 0},     {4 /* MF */, 0, 1, 0},
    {kTypeCname, 0, 1, 0},     {kTypeSoa, 0, 2, 20},      {7 /* MB */, 0, 1, 0},
    {8 /* MG */, 0, 1, 0},     {9 /* MR */, 0, 1, 0},     {kTypePtr, 0, 1, 0},
    {14 /* MINFO */, 0, 2, 0}, {15 /* MX */, 2, 1, 0},    {17 /* RP */, 0, 2, 0},
    {18 /* AFSDB */, 2, 1, 0}, {21 /* RT */, 2, 1, 0},    {26 /* PX */, 2, 2, 0},
    {kTypeSrv, 6, 1, 0},       {39 /* DNAME */, 0, 1, 0},
};

// Walks the whole reply, deciding which records may be kept: answer records must hang off the
// question's CNAME chain; authority and additional records must lie inside the forwarded zone.
// Returns false if the message is malformed.
bool walk(std::span<const uint8_t> msg, std::span<const uint8_t> zone, Layout& out) {
  out.reset();
  if (msg.size() < kHeaderSize || get16(&msg[4]) != 1) return false;
  Name qname;
  size_t pos = read_name(msg, kHeaderSize, qname.bytes, qname.len);
  // An uncompressed question only: a pointer could only point into the header.
  if (pos == 0 || pos != kHeaderSize + qname.len || pos + 4 > msg.size()) return false;
  NameBytes name_bytes(msg.size(), out.name_bytes);
  name_bytes.allow(kHeaderSize, pos);
  pos += 4;
  out.question_end = pos;

  const unsigned counts[3] = {get16(&msg[6]), get16(&msg[8]), get16(&msg[10])};
  for (uint8_t section = kAnswer; section <= kAdditional; ++section) {
    for (unsigned i = 0; i < counts[section]; ++i) {
      RecordInfo rr;
      rr.start = uint16_t(pos);
      rr.section = Section(section);
      Name owner;
      pos = name_bytes.read(msg, pos, owner);
      if (pos == 0 || pos + 10 > msg.size()) return false;
      name_bytes.allow(rr.start, pos);
      rr.type = get16(&msg[pos]);
      rr.ttl_offset = uint16_t(pos + 4);
      size_t rdata = pos + 10;
      pos = rdata + get16(&msg[pos + 8]);
      if (pos > msg.size()) return false;
      rr.end = uint16_t(pos);
      name_bytes.allow(rdata, pos);
      // Names in RDATA are checked as owners are, and must fill it exactly: readers that go by
      // the fields rather than RDLENGTH would read the rest of the message differently.
      size_t after_names = rdata;
      const RdataNames* names =
          std::find_if(std::begin(kRdataNames), std::end(kRdataNames),
                       [&](const RdataNames& r) { return r.type == rr.type; });
      if (names != std::end(kRdataNames)) {
        after_names += names->before;
        Name skip;
        for (int n = 0; n < names->names && after_names != 0; ++n) {
          after_names = name_bytes.read(msg, after_names, skip);
        }
        if (after_names == 0 || after_names + names->after != pos) return false;
      }
      // RFC 6891 6.1.1 / RFC 8945 5.1: OPT only in the additional section, TSIG only last in it.
      if (rr.type == kTypeOpt && section != kAdditional) return false;
      if (rr.type == 250 && (section != kAdditional || i + 1 != counts[section])) return false;
      if (rr.type == kTypeOpt) {
        rr.keep = false;
        out.opt_last =
            out.opt_last && section == kAdditional && i + 1 == counts[section] && pos == msg.size();
      } else if (rr.type == kTypeSoa && section == kAuthority) {
        out.has_soa = true;
        out.soa_ttl = get32(&msg[rr.ttl_offset]) > 0x7fffffff ? 0 : get32(&msg[rr.ttl_offset]);
        out.soa_minimum = get32(&msg[after_names + 16]);
      }
      if (section != kAnswer && rr.type != kTypeOpt) {
        rr.keep = name_in_zone(owner.bytes, owner.len, zone.data(), zone.size()) &&
                  rr.type != 250 /* TSIG: not ours to relay */;
      }
      out.records.push_back(rr);
      out.owners.push_back(owner);
    }
  }

  // The chain: the question name, then every CNAME target reached from it, in any order.
  std::vector<Name>& chain = out.chain;
  chain.push_back(qname);
  size_t answers = counts[kAnswer];
  std::vector<bool>& on_chain = out.on_chain;
  on_chain.assign(answers, false);
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < answers; ++i) {
      if (on_chain[i] || std::find(chain.begin(), chain.end(), out.owners[i]) == chain.end())
        continue;
      on_chain[i] = true;
      if (out.records[i].type == kTypeCname) {
        Name target;  // read and checked above
        read_name(msg, out.records[i].ttl_offset + 6u, target.bytes, target.len);
        if (chain.size() < 16) chain.push_back(target), grew = true;
      }
    }
  }
  for (size_t i = 0; i < answers; ++i) out.records[i].keep = on_chain[i];
  return true;
}

// Rewrites a reply keeping only the records marked `keep`, through ldns so compression stays
// valid whatever was dropped. ldns reads each kept record where walk() found it and must end
// where walk() did: ldns reads RDATA field by field and goes on from where its fields end, not
// from RDLENGTH, so when the two disagree the reply reads two ways (malformed, then) and records
// would be kept or dropped by the wrong reading.
bool rebuild(std::span<const uint8_t> msg, const Layout& layout, std::vector<uint8_t>& out) {
  std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)> kept(ldns_pkt_new(), ldns_pkt_free);
  const ldns_pkt_section targets[3] = {LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY,
                                       LDNS_SECTION_ADDITIONAL};
  ldns_rr* rr = nullptr;
  size_t pos = kHeaderSize;
  if (ldns_wire2rr(&rr, msg.data(), msg.size(), &pos, LDNS_SECTION_QUESTION) != LDNS_STATUS_OK) {
    return false;
  }
  ldns_pkt_push_rr(kept.get(), LDNS_SECTION_QUESTION, rr);
  for (const RecordInfo& r : layout.records) {
    if (!r.keep) continue;
    pos = r.start;
    if (ldns_wire2rr(&rr, msg.data(), msg.size(), &pos, targets[r.section]) != LDNS_STATUS_OK) {
      return false;
    }
    ldns_pkt_push_rr(kept.get(), targets[r.section], rr);
    if (pos != r.end) return false;
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, kept.get(), &size) != LDNS_STATUS_OK) return false;
  out.assign(wire, wire + size);
  LDNS_FREE(wire);
  std::memcpy(out.data(), msg.data(), 4);  // ID and flags exactly as received
  return true;
}

uint32_t clamp_ttl(uint32_t ttl, uint32_t lo, uint32_t hi) {
  return std::min(std::max(ttl, lo), hi);
}

}  // namespace

size_t read_name(std::span<const uint8_t> msg, size_t pos, uint8_t* out, size_t& out_len) {
  size_t after = 0;  // where the name ends in the message, fixed by the first pointer
  size_t lowest = pos;
  out_len = 0;
  for (int jumps = 0; pos < msg.size();) {
    uint8_t label = msg[pos];
    if ((label & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size() || ++jumps > 64) return 0;
      size_t target = size_t(label & 0x3f) << 8 | msg[pos + 1];
      if (after == 0) after = pos + 2;
      if (target >= lowest) return 0;  // pointers must go backwards: no loops
      lowest = pos = target;
      continue;
    }
    if (label > 63 || out_len + 1 + label > kMaxNameLength || pos + 1 + label > msg.size()) {
      return 0;
    }
    out[out_len++] = label;
    for (size_t i = 1; i <= label; ++i) out[out_len++] = ascii_lower(msg[pos + i]);
    if (label == 0) return after ? after : pos + 1;
    pos += 1 + label;
  }
  return 0;
}

ReplyCheck check_reply(std::span<const uint8_t> reply, uint16_t id, const uint8_t* qname,
                       size_t qname_len, uint16_t qtype, uint16_t qclass, bool exact_case) {
  size_t qend = kHeaderSize + qname_len;
  if (reply.size() < qend + 4) return ReplyCheck::kMismatch;
  const uint8_t* h = reply.data();
  if (!(h[2] & kFlagQr) || get16(h) != id || get16(h + 4) != 1 || opcode_of(h) != 0) {
    return ReplyCheck::kMismatch;
  }
  bool same_name = exact_case ? std::memcmp(h + kHeaderSize, qname, qname_len) == 0
                              : names_equal(h + kHeaderSize, qname_len, qname, qname_len);
  // The reply's name must also end where ours does, or a longer name could slip through.
  if (!same_name || skip_name(reply, kHeaderSize) != qend || get16(h + qend) != qtype ||
      get16(h + qend + 2) != qclass) {
    return ReplyCheck::kMismatch;
  }
  // Its records are never used: a record cut in two must not keep it from coming over TCP.
  if (h[2] & kFlagTc) return ReplyCheck::kTruncated;
  Edns edns;
  if (!read_edns(reply, qend + 4, edns) || edns.ext_rcode != 0) return ReplyCheck::kBroken;
  return ReplyCheck::kAccept;
}

bool prepare_answer(std::span<const uint8_t> reply, const TtlPolicy& policy,
                    std::span<const uint8_t> zone, PreparedAnswer& out) {
  thread_local Layout layout;
  if (!walk(reply, zone, layout)) return false;
  bool drops = std::any_of(layout.records.begin(), layout.records.end(),
                           [](const RecordInfo& r) { return !r.keep && r.type != kTypeOpt; });
  if (drops || !layout.opt_last) {
    std::vector<uint8_t> rebuilt;
    if (!rebuild(reply, layout, rebuilt)) return false;
    if (!walk(rebuilt, zone, layout)) return false;
    out.wire = std::move(rebuilt);
  } else {
    // Bytes after the last record are not ours to relay: a client would read them as records.
    size_t end = layout.records.empty() ? layout.question_end : layout.records.back().end;
    out.wire.assign(reply.begin(), reply.begin() + end);
    if (!layout.records.empty() && layout.records.back().type == kTypeOpt) {
      out.wire.resize(layout.records.back().start);
      put16(&out.wire[10], uint16_t(get16(&out.wire[10]) - 1));
      layout.records.pop_back();
    }
  }
  lower_name(&out.wire[kHeaderSize], layout.question_end - 4 - kHeaderSize, &out.wire[kHeaderSize]);

  out.rcode = rcode_of(out.wire.data());
  // RFC 2308 2.2: a CNAME chain that ends without the asked type, an SOA in the authority, is
  // NODATA too, and its denial lives as long as the SOA says (a chain alone is kept as it is).
  const uint16_t qtype = get16(&out.wire[layout.question_end - 4]);
  const bool asked_type_answered =
      std::any_of(layout.records.begin(), layout.records.end(), [qtype](const RecordInfo& r) {
        return r.section == kAnswer && (r.type == qtype || qtype == kTypeAny);
      });
  const bool any_answer = get16(&out.wire[6]) != 0;
  out.negative =
      out.rcode == kNxDomain ||
      (out.rcode == kNoError && (!any_answer || (!asked_type_answered && layout.has_soa)));
  uint32_t entry_ttl = UINT32_MAX;
  if (out.negative) {
    // RFC 2308 5: the SOA's TTL and MINIMUM bound how long the denial lives; no SOA, no caching.
    entry_ttl = layout.has_soa ? std::min({layout.soa_ttl, layout.soa_minimum, policy.neg_ttl}) : 0;
  } else if (out.rcode != kNoError) {
    entry_ttl = 0;
  }
  out.ttl_offsets.clear();
  for (const RecordInfo& rr : layout.records) {
    uint8_t* field = &out.wire[rr.ttl_offset];
    uint32_t ttl = get32(field);
    if (ttl > 0x7fffffff) ttl = 0;  // RFC 2181 8: a TTL with the top bit set means zero
    ttl = out.negative ? std::min(ttl, entry_ttl) : clamp_ttl(ttl, policy.min_ttl, policy.max_ttl);
    if (!out.negative && out.rcode == kNoError) entry_ttl = std::min(entry_ttl, ttl);
    put32(field, ttl);
    out.ttl_offsets.push_back(rr.ttl_offset);
  }
  out.ttl = entry_ttl == UINT32_MAX ? 0 : entry_ttl;
  return true;
}

size_t render_answer(std::span<const uint8_t> stored, std::span<const uint16_t> ttl_offsets,
                     uint32_t elapsed, uint32_t fixed_ttl, const Query& q, size_t limit,
                     std::span<uint8_t> out, Overflow overflow) {
  size_t opt_size = q.edns.present ? kOptRecordSize : 0;
  size_t room = std::min(limit, out.size());
  bool fits = stored.size() + opt_size <= room;
  if (!fits && overflow == Overflow::kEmpty) {
    size_t len = build_empty_answer(q, kNoError, out);
    if (len) out[2] |= kFlagTc;  // RFC 7766 / 1035: the client retries over TCP
    return len;
  }
  // The records that fit: none past the first that does not, so no section gets a record while
  // an earlier one lost one (miekg/dns's truncateLoop).
  size_t kept = ttl_offsets.size();
  size_t len = stored.size();
  if (!fits) {
    kept = 0;
    len = kHeaderSize + q.question.name_len + 4u;
    for (uint16_t offset : ttl_offsets) {
      size_t end = offset + 6u + get16(stored.data() + offset + 4);
      if (end + opt_size > room) break;
      ++kept;
      len = end;
    }
    if (len + opt_size > out.size()) return 0;
  }
  uint8_t* p = out.data();
  std::memcpy(p, stored.data(), len);
  put16(p, q.id);
  p[2] = uint8_t(kFlagQr | (q.flags_hi & kFlagRd) | (fits ? 0 : kFlagTc));
  p[3] = uint8_t(kFlagRa | (q.flags_lo & kFlagCd) | rcode_of(stored.data()));
  std::memcpy(p + kHeaderSize, q.question.name, q.question.name_len);
  if (!fits) {
    // ANCOUNT, NSCOUNT, ARCOUNT: the kept records fill the sections in order.
    size_t left = kept;
    for (size_t count_at : {6, 8, 10}) {
      uint16_t count = uint16_t(std::min<size_t>(get16(p + count_at), left));
      put16(p + count_at, count);
      left -= count;
    }
  }
  for (uint16_t offset : ttl_offsets.first(kept)) {
    uint32_t ttl = get32(stored.data() + offset);
    put32(p + offset, fixed_ttl ? fixed_ttl : (ttl > elapsed ? ttl - elapsed : 0));
  }
  if (q.edns.present) len = append_opt(out, len, q.edns.do_bit, 0);
  return len;
}

}  // namespace readyns::wire
