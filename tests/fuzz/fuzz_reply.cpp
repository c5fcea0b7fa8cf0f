// fuzz_reply: upstream replies, as the forwarder and the worker handle them.
//
// wire::check_reply against a fixed question and against the reply's own, wire::prepare_answer for
// a zone that is fixed, a suffix of the reply's question or taken from the input, then
// wire::render_answer of the prepared answer to a client. Each step is checked against an
// independent walker.
//
// Input: [flags][zone byte][render byte][zone bytes, mode 3 only][reply...]
//   flags bits 0-1: zone (0 ".", 1 "example.com.", 2 suffix of the question, 3 from input)
//         bit 2: exact case (0x20) for check_reply; bit 3: client EDNS; bit 4: client DO;
//         bits 5-7: TTL policy
//   zone byte: labels dropped (mode 2) or zone text length (mode 3)
//   render byte: bits 0-1 the client's limit, bits 2-7 seconds elapsed
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "wire/answer.hpp"
#include "wire/message.hpp"

using namespace readyns;
using fuzz::rd16;
using fuzz::rd32;

namespace {

// The question the seeds answer: www.example.com. A IN, ID 0x1234.
constexpr uint8_t kFixedName[] = {3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm',
                                  'p', 'l', 'e', 3,   'c', 'o', 'm', 0};
constexpr uint8_t kExampleCom[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
constexpr uint16_t kFixedId = 0x1234;

constexpr wire::TtlPolicy kPolicies[8] = {
    {0, 30, 5},       {0, 0, 0},  {10, 5, 5},        {0, 0x7fffffff, 0x7fffffff},
    {60, 86400, 300}, {0, 30, 0}, {300, 3600, 3600}, {0, UINT32_MAX, UINT32_MAX},
};
constexpr size_t kLimits[4] = {512, 1232, 4096, wire::kMaxMessageSize};

// Length of an uncompressed, valid name at `pos`, or 0.
size_t plain_name_length(std::span<const uint8_t> m, size_t pos) {
  size_t start = pos;
  while (pos < m.size()) {
    uint8_t len = m[pos];
    if (len > 63) return 0;
    if (pos + 1 - start + len > 255) return 0;
    if (len == 0) return pos + 1 - start;
    pos += 1 + len;
  }
  return 0;
}

bool same_name(const uint8_t* a, const uint8_t* b, size_t len, bool exact) {
  if (exact) return std::memcmp(a, b, len) == 0;
  for (size_t i = 0; i < len; ++i) {
    if (wire::ascii_lower(a[i]) != wire::ascii_lower(b[i])) return false;
  }
  return true;
}

// Whether the records from `pos` walk (names checked for length and label types only, pointers
// not followed) with at most one OPT, root-owned, in the additional section and with no extended
// RCODE.
bool usable_records(std::span<const uint8_t> r, size_t pos) {
  bool opt = false;
  for (int section = 0; section < 3; ++section) {
    for (unsigned i = rd16(&r[6 + 2 * section]); i > 0; --i) {
      size_t owner = pos, name_len = 0;
      for (; pos < r.size() && r[pos] != 0 && r[pos] < 0xc0; pos += 1 + r[pos]) {
        name_len += 1 + r[pos];
        if (r[pos] > 63 || name_len >= 255) return false;
      }
      if (pos >= r.size()) return false;
      pos += r[pos] == 0 ? 1 : 2;
      if (pos + 10 > r.size()) return false;
      if (rd16(&r[pos]) == wire::kTypeOpt) {
        if (section != 2 || opt || r[owner] != 0 || r[pos + 4] != 0) return false;
        opt = true;
      }
      pos += 10 + rd16(&r[pos + 8]);
      if (pos > r.size()) return false;
    }
  }
  return true;
}

// What check_reply must say, written from its contract.
wire::ReplyCheck expected_check(std::span<const uint8_t> r, uint16_t id, const uint8_t* qname,
                                size_t qlen, uint16_t qtype, uint16_t qclass, bool exact) {
  if (r.size() < 12 + qlen + 4) return wire::ReplyCheck::kMismatch;
  if (!(r[2] & wire::kFlagQr) || rd16(&r[0]) != id || rd16(&r[4]) != 1 ||
      wire::opcode_of(r.data()) != 0) {
    return wire::ReplyCheck::kMismatch;
  }
  if (!same_name(&r[12], qname, qlen, exact) || plain_name_length(r, 12) != qlen ||
      rd16(&r[12 + qlen]) != qtype || rd16(&r[12 + qlen + 2]) != qclass) {
    return wire::ReplyCheck::kMismatch;
  }
  if (r[2] & wire::kFlagTc) return wire::ReplyCheck::kTruncated;
  return usable_records(r, 12 + qlen + 4) ? wire::ReplyCheck::kAccept : wire::ReplyCheck::kBroken;
}

void check_both_ways(std::span<const uint8_t> reply, uint16_t id, const uint8_t* qname, size_t qlen,
                     uint16_t qtype, uint16_t qclass, bool exact) {
  wire::ReplyCheck got = wire::check_reply(reply, id, qname, qlen, qtype, qclass, exact);
  FUZZ_CHECK(got == expected_check(reply, id, qname, qlen, qtype, qclass, exact));
}

std::vector<uint8_t> zone_for(uint8_t mode, uint8_t param, std::span<const uint8_t> text,
                              std::span<const uint8_t> reply) {
  switch (mode) {
    case 1:
      return {std::begin(kExampleCom), std::end(kExampleCom)};
    case 2: {
      std::vector<uint8_t> name;
      if (fuzz::oracle_name(reply, 12, &name) == 0) return {0};
      size_t pos = 0;
      for (unsigned drop = param; drop > 0 && name[pos] != 0; --drop) pos += 1 + name[pos];
      return {name.begin() + long(pos), name.end()};
    }
    case 3: {
      uint8_t buf[wire::kMaxNameLength];
      size_t len = wire::name_from_text(reinterpret_cast<const char*>(text.data()), text.size(),
                                        buf, sizeof buf);
      if (len == 0) return {0};
      wire::lower_name(buf, len, buf);
      return {buf, buf + len};
    }
    default:
      return {0};
  }
}

// The answer section's records must hang off the question through CNAMEs.
void check_chain(std::span<const uint8_t> m, const fuzz::OracleMessage& msg) {
  std::vector<std::vector<uint8_t>> chain{msg.qname};
  for (bool grew = true; grew;) {
    grew = false;
    for (const fuzz::OracleRecord& r : msg.records) {
      if (r.section != 0 || r.type != wire::kTypeCname) continue;
      if (std::find(chain.begin(), chain.end(), r.owner) == chain.end()) continue;
      std::vector<uint8_t> target;
      FUZZ_CHECK(fuzz::oracle_name(m, r.rdata, &target) != 0);
      if (std::find(chain.begin(), chain.end(), target) == chain.end()) {
        chain.push_back(std::move(target));
        grew = true;
      }
    }
  }
  for (const fuzz::OracleRecord& r : msg.records) {
    if (r.section == 0) FUZZ_CHECK(std::find(chain.begin(), chain.end(), r.owner) != chain.end());
  }
}

void check_prepared(std::span<const uint8_t> reply, const wire::TtlPolicy& policy,
                    std::span<const uint8_t> zone, const wire::PreparedAnswer& p) {
  const std::vector<uint8_t>& w = p.wire;
  fuzz::OracleMessage in, out;
  // prepare_answer is never laxer than a plain walk of the reply.
  FUZZ_CHECK(fuzz::oracle_walk(reply, in));
  FUZZ_CHECK(fuzz::oracle_walk(w, out));
  // Nothing after the last record: bytes there would be read as a record once render_answer
  // appends the client's OPT (ARCOUNT+1), smuggling unfiltered data past the zone check.
  FUZZ_CHECK(out.end == w.size());
  FUZZ_CHECK(w.size() <= wire::kMaxMessageSize);
  FUZZ_CHECK(std::memcmp(w.data(), reply.data(), 4) == 0);  // ID and flags as received
  // The question: the reply's, lower-cased, uncompressed.
  size_t qlen = plain_name_length(reply, 12);
  FUZZ_CHECK(qlen != 0 && out.question_end == 12 + qlen + 4);
  std::vector<uint8_t> lower = fuzz::lowered(reply.subspan(12, qlen));
  FUZZ_CHECK(std::memcmp(&w[12], lower.data(), lower.size()) == 0);
  FUZZ_CHECK(std::memcmp(&w[12 + qlen], &reply[12 + qlen], 4) == 0);  // type and class

  FUZZ_CHECK(p.rcode == (reply[3] & 0x0f));
  unsigned answers = rd16(&w[6]);
  FUZZ_CHECK(p.negative ==
             (p.rcode == wire::kNxDomain || (p.rcode == wire::kNoError && answers == 0)));
  uint32_t bound = p.negative ? policy.neg_ttl : policy.max_ttl;
  FUZZ_CHECK(p.ttl <= bound);
  if (p.rcode != wire::kNoError && p.rcode != wire::kNxDomain) FUZZ_CHECK(p.ttl == 0);
  FUZZ_CHECK(p.ttl_offsets.size() == out.records.size());
  for (size_t i = 0; i < out.records.size(); ++i) {
    const fuzz::OracleRecord& r = out.records[i];
    FUZZ_CHECK(r.type != wire::kTypeOpt && r.type != 250);  // no OPT, no TSIG
    FUZZ_CHECK(p.ttl_offsets[i] == r.ttl_offset);
    uint32_t ttl = rd32(&w[r.ttl_offset]);
    FUZZ_CHECK(ttl <= 0x7fffffff && ttl <= bound);
    if (!p.negative && p.rcode == wire::kNoError) FUZZ_CHECK(p.ttl <= ttl);
    if (r.section != 0) FUZZ_CHECK(fuzz::oracle_in_zone(r.owner, zone));
  }
  check_chain(w, out);
  // prepare_answer() clamped the TTLs and render_answer() ages them after the names were checked:
  // no name may read through them.
  FUZZ_CHECK(!fuzz::names_cross_ttls(w, out));
  // ldns as an oracle: where it reads the reply as the walker does, it reads the answer too.
  if (fuzz::ldns_parses(reply) && fuzz::ldns_agrees(reply, in)) FUZZ_CHECK(fuzz::ldns_parses(w));

  // Preparing a prepared answer changes nothing.
  wire::PreparedAnswer again;
  FUZZ_CHECK(wire::prepare_answer(w, policy, zone, again));
  FUZZ_CHECK(again.wire == p.wire);
  FUZZ_CHECK(again.ttl_offsets == p.ttl_offsets);
  FUZZ_CHECK(again.ttl == p.ttl && again.rcode == p.rcode && again.negative == p.negative);
}

void check_render(const wire::Query& q, const wire::PreparedAnswer& p, uint32_t elapsed,
                  size_t limit) {
  static std::vector<uint8_t> out(wire::kMaxMessageSize);  // reused: no 64 KiB memset per call
  size_t len = wire::render_answer(p.wire, p.ttl_offsets, elapsed, 0, q, limit, out);
  FUZZ_CHECK(len >= 12 && len <= limit);
  std::span<const uint8_t> a(out.data(), len);
  FUZZ_CHECK(rd16(&a[0]) == q.id && (a[2] & wire::kFlagQr));
  FUZZ_CHECK(std::memcmp(&a[12], q.question.name, q.question.name_len) == 0);
  size_t total = p.wire.size() + (q.edns.present ? wire::kOptRecordSize : 0);
  if (total > limit) {
    FUZZ_CHECK((a[2] & wire::kFlagTc) && rd16(&a[6]) == 0);
    FUZZ_CHECK(fuzz::ldns_parses(a));
    return;
  }
  FUZZ_CHECK(len == total);
  FUZZ_CHECK((a[3] & 0x0f) == p.rcode);
  for (uint16_t off : p.ttl_offsets) {
    uint32_t stored = rd32(&p.wire[off]);
    FUZZ_CHECK(rd32(&a[off]) == (stored > elapsed ? stored - elapsed : 0));
  }
  fuzz::OracleMessage m;
  bool trailing = fuzz::oracle_walk(p.wire, m) && m.end != p.wire.size();
  if (fuzz::ldns_parses(p.wire) && fuzz::ldns_agrees(p.wire, m) && !trailing) {
    FUZZ_CHECK(fuzz::ldns_parses(a));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  uint8_t flags = data[0], zone_param = data[1], render = data[2];
  data += 3, size -= 3;
  uint8_t zone_mode = flags & 3;
  std::span<const uint8_t> zone_text;
  if (zone_mode == 3) {
    size_t n = std::min<size_t>(zone_param % 64, size);
    zone_text = {data, n};
    data += n, size -= n;
  }
  // A reply arrives in one datagram or one TCP frame: never more than 64 KiB.
  if (size > wire::kMaxMessageSize) return 0;
  const std::vector<uint8_t> reply(data, data + size);  // own copy: ASan sees its exact end
  bool exact = flags & 4;
  const wire::TtlPolicy& policy = kPolicies[flags >> 5];

  check_both_ways(reply, kFixedId, kFixedName, sizeof kFixedName, wire::kTypeA, wire::kClassIn,
                  exact);
  size_t own_len = plain_name_length(reply, 12);
  if (own_len && reply.size() >= 12 + own_len + 4) {
    // As the forwarder would see it after sending exactly this question (its own buffer).
    std::vector<uint8_t> qname(reply.begin() + 12, reply.begin() + 12 + long(own_len));
    uint16_t qtype = rd16(&reply[12 + own_len]), qclass = rd16(&reply[12 + own_len + 2]);
    check_both_ways(reply, rd16(&reply[0]), qname.data(), own_len, qtype, qclass, exact);
    check_both_ways(reply, rd16(&reply[0]) ^ 1, qname.data(), own_len, qtype, qclass, exact);
  }

  std::vector<uint8_t> zone = zone_for(zone_mode, zone_param, zone_text, reply);
  wire::PreparedAnswer prepared;
  if (!wire::prepare_answer(reply, policy, zone, prepared)) return 0;
  check_prepared(reply, policy, zone, prepared);

  // The client asked the same question in its own case (the reply's).
  wire::Query q;
  q.id = uint16_t(0xbeef ^ render);
  q.flags_hi = wire::kFlagRd;
  q.flags_lo = (flags & 8) ? wire::kFlagCd : 0;
  q.question_valid = true;
  q.question = {&reply[12], uint16_t(own_len), rd16(&reply[12 + own_len]),
                rd16(&reply[12 + own_len + 2])};
  q.question_end = 12 + own_len + 4;
  q.edns.present = flags & 8;
  q.edns.do_bit = flags & 16;
  size_t limit = kLimits[render & 3];
  q.edns.udp_size = uint16_t(std::min<size_t>(limit, 65535));
  if (!q.edns.present) limit = std::max<size_t>(limit == wire::kMaxMessageSize ? limit : 512, 512);
  check_render(q, prepared, render >> 2, limit);
  return 0;
}
