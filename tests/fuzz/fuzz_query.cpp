// fuzz_query: the client-facing fast path on arbitrary bytes.
//
// wire::parse_query, the empty answer for every verdict (FORMERR, NOTIMP, BADVERS, REFUSED), then
// for a good query the cache hit path: cache::make_key, a stored answer inserted under that key and
// found again, and wire::render_answer of it for the client (ID, flags, question case, TTLs, OPT,
// truncation).
#include <cstring>
#include <vector>

#include "cache/cache.hpp"
#include "fuzz_common.hpp"
#include "wire/answer.hpp"
#include "wire/message.hpp"

using namespace readyns;
using fuzz::rd16;
using fuzz::rd32;

namespace {

constexpr uint32_t kTtlA = 25, kTtlTxt = 3, kEntryTtl = 30;

struct Stored {
  std::vector<uint8_t> wire;
  std::vector<uint16_t> ttl_offsets;
};

void add16(std::vector<uint8_t>& m, uint16_t v) {
  m.push_back(uint8_t(v >> 8));
  m.push_back(uint8_t(v));
}
void add32(std::vector<uint8_t>& m, uint32_t v) {
  add16(m, uint16_t(v >> 16));
  add16(m, uint16_t(v));
}

// An answer as the cache holds it: ID 0, the lower-cased question of `key`, an A record, a TXT
// record and a TXT record of `pad` bytes (so some answers exceed the client's limit).
Stored stored_answer(const cache::Key& key, uint8_t rcode, size_t pad) {
  Stored s;
  std::vector<uint8_t>& m = s.wire;
  add16(m, 0);
  m.push_back(wire::kFlagQr | wire::kFlagAa);
  m.push_back(rcode);
  add16(m, 1);
  add16(m, pad ? 3 : 2);
  add16(m, 0);
  add16(m, 0);
  m.insert(m.end(), key.question, key.question + key.len);
  auto record = [&](uint16_t type, uint32_t ttl, const std::vector<uint8_t>& rdata) {
    m.push_back(0xc0);
    m.push_back(0x0c);
    add16(m, type);
    add16(m, wire::kClassIn);
    s.ttl_offsets.push_back(uint16_t(m.size()));
    add32(m, ttl);
    add16(m, uint16_t(rdata.size()));
    m.insert(m.end(), rdata.begin(), rdata.end());
  };
  record(wire::kTypeA, kTtlA, {192, 0, 2, 1});
  record(16, kTtlTxt, {5, 'h', 'e', 'l', 'l', 'o'});
  if (pad) {
    std::vector<uint8_t> txt;
    while (pad > 0) {
      size_t chunk = std::min<size_t>(pad, 255);
      txt.push_back(uint8_t(chunk));
      txt.insert(txt.end(), chunk, 'x');
      pad -= chunk;
    }
    record(16, kTtlA, txt);
  }
  return s;
}

// The empty answer's invariants, for the verdict's rcode.
void check_empty(const wire::Query& q, uint16_t rcode, std::span<const uint8_t> a) {
  size_t qlen = q.question_valid ? q.question.name_len + 4u : 0;
  FUZZ_CHECK(a.size() == 12 + qlen + (q.edns.present ? 11 : 0));
  FUZZ_CHECK(rd16(&a[0]) == q.id);
  FUZZ_CHECK(a[2] & wire::kFlagQr);
  FUZZ_CHECK((a[2] & 0x78) == (q.flags_hi & 0x78));  // opcode echoed
  FUZZ_CHECK((a[3] & 0x0f) == (rcode & 0x0f));
  FUZZ_CHECK(rd16(&a[4]) == (q.question_valid ? 1 : 0));
  FUZZ_CHECK(rd16(&a[6]) == 0 && rd16(&a[8]) == 0);
  FUZZ_CHECK(rd16(&a[10]) == (q.edns.present ? 1 : 0));
  if (q.question_valid) {
    FUZZ_CHECK(std::memcmp(&a[12], q.question.name, q.question.name_len) == 0);
  }
  if (q.edns.present) {
    const uint8_t* opt = &a[a.size() - 11];
    FUZZ_CHECK(opt[0] == 0 && rd16(opt + 1) == wire::kTypeOpt);
    FUZZ_CHECK(opt[5] == uint8_t(rcode >> 4));
    FUZZ_CHECK(bool(opt[7] & 0x80) == q.edns.do_bit);
  }
  // An answer to an opcode ldns does not know is still a well-formed message.
  FUZZ_CHECK(fuzz::ldns_parses(a));
}

// A rendered hit: either the stored answer patched for the client, or an empty TC=1 answer.
void check_render(const wire::Query& q, const Stored& s, std::span<const uint8_t> out,
                  uint32_t elapsed, uint32_t fixed_ttl, size_t limit) {
  size_t total = s.wire.size() + (q.edns.present ? 11 : 0);
  FUZZ_CHECK(out.size() <= limit);
  FUZZ_CHECK(rd16(&out[0]) == q.id);
  FUZZ_CHECK(out[2] & wire::kFlagQr);
  FUZZ_CHECK(bool(out[2] & wire::kFlagRd) == q.rd());
  FUZZ_CHECK(bool(out[3] & wire::kFlagCd) == q.cd());
  FUZZ_CHECK(std::memcmp(&out[12], q.question.name, q.question.name_len) == 0);
  FUZZ_CHECK(fuzz::ldns_parses(out));
  if (total > limit) {
    FUZZ_CHECK(out[2] & wire::kFlagTc);
    FUZZ_CHECK(rd16(&out[6]) == 0);
    return;
  }
  FUZZ_CHECK(!(out[2] & wire::kFlagTc));
  FUZZ_CHECK(out.size() == total);
  FUZZ_CHECK((out[3] & 0x0f) == (s.wire[3] & 0x0f));
  for (uint16_t off : s.ttl_offsets) {
    uint32_t stored = rd32(&s.wire[off]);
    uint32_t want = fixed_ttl ? fixed_ttl : (stored > elapsed ? stored - elapsed : 0);
    FUZZ_CHECK(rd32(&out[off]) == want);
  }
  size_t q_end = 12 + q.question.name_len;
  // Past the question name, everything but the TTLs and the OPT is the stored answer's.
  FUZZ_CHECK(std::memcmp(&out[q_end], &s.wire[q_end], s.ttl_offsets[0] - q_end) == 0);
  if (q.edns.present) {
    FUZZ_CHECK(rd16(&out[10]) == 1);
    FUZZ_CHECK(out[s.wire.size()] == 0 && rd16(&out[s.wire.size() + 1]) == wire::kTypeOpt);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > wire::kMaxMessageSize) return 0;
  // Own copy, so ASan sees reads past the end of exactly `size` bytes.
  std::vector<uint8_t> msg(data, data + size);
  wire::Query q;
  wire::QueryCheck check = wire::parse_query(msg, q);
  if (check == wire::QueryCheck::kDrop) {
    FUZZ_CHECK(size < 12 || (msg[2] & wire::kFlagQr));
    return 0;
  }
  FUZZ_CHECK(size >= 12 && !(msg[2] & wire::kFlagQr));
  FUZZ_CHECK(q.id == rd16(&msg[0]));
  if (q.question_valid) {
    const wire::Question& qq = q.question;
    FUZZ_CHECK(qq.name == msg.data() + 12);
    FUZZ_CHECK(q.question_end == 12u + qq.name_len + 4 && q.question_end <= size);
    FUZZ_CHECK(qq.name_len >= 1 && qq.name_len <= wire::kMaxNameLength);
    FUZZ_CHECK(qq.qtype == rd16(qq.name + qq.name_len));
    FUZZ_CHECK(qq.qclass == rd16(qq.name + qq.name_len + 2));
    // An uncompressed name that ends exactly at name_len.
    size_t pos = 0;
    while (qq.name[pos] != 0) {
      FUZZ_CHECK(qq.name[pos] <= 63);
      pos += 1 + qq.name[pos];
      FUZZ_CHECK(pos < qq.name_len);
    }
    FUZZ_CHECK(pos + 1 == qq.name_len);
  }
  uint16_t rcode = 0;
  switch (check) {
    case wire::QueryCheck::kOk:
      FUZZ_CHECK(q.question_valid && wire::opcode_of(msg.data()) == 0);
      FUZZ_CHECK(!q.edns.present || q.edns.version == 0);
      break;
    case wire::QueryCheck::kFormErr:
      rcode = wire::kFormErr;
      break;
    case wire::QueryCheck::kNotImp:
      FUZZ_CHECK(wire::opcode_of(msg.data()) != 0);
      rcode = wire::kNotImp;
      break;
    case wire::QueryCheck::kBadVers:
      FUZZ_CHECK(q.edns.present && q.edns.version != 0);
      rcode = wire::kExtRcodeBadVers;
      break;
    case wire::QueryCheck::kRefused:
      FUZZ_CHECK(q.question.qtype == wire::kTypeAxfr || q.question.qtype == wire::kTypeIxfr);
      rcode = wire::kRefused;
      break;
    case wire::QueryCheck::kDrop:
      break;
  }
  FUZZ_CHECK(q.udp_limit() >= 512);

  // Inputs steer the rest through a few derived numbers, so one input replays exactly.
  uint32_t mix = 0;
  for (uint8_t b : msg) mix = mix * 31 + b;

  static std::vector<uint8_t> out(wire::kMaxMessageSize);  // reused: no 64 KiB memset per call
  size_t len = wire::build_empty_answer(q, rcode, out);
  FUZZ_CHECK(len > 0);
  check_empty(q, rcode, {out.data(), len});
  // Into a buffer too small for it: nothing, never a partial answer.
  std::vector<uint8_t> small(mix % (len + 1));
  size_t small_len = wire::build_empty_answer(q, rcode, small);
  FUZZ_CHECK(small_len == 0 ||
             (small_len == len && std::memcmp(small.data(), out.data(), len) == 0));
  if (check != wire::QueryCheck::kOk) return 0;

  // The hit path, as core::Worker runs it.
  uint8_t key_bytes[cache::kMaxKeySize];
  cache::Key key = cache::make_key(q.question, q.edns.do_bit, key_bytes);
  FUZZ_CHECK(key.len == q.question.name_len + 4);
  FUZZ_CHECK(key.do_bit == q.edns.do_bit);
  std::vector<uint8_t> want = fuzz::lowered({q.question.name, q.question.name_len});
  FUZZ_CHECK(std::memcmp(key_bytes, want.data(), want.size()) == 0);
  FUZZ_CHECK(rd16(key_bytes + want.size()) == q.question.qtype);
  FUZZ_CHECK(rd16(key_bytes + want.size() + 2) == q.question.qclass);
  {
    // Any casing of the name gives the same key.
    std::vector<uint8_t> flipped(q.question.name, q.question.name + q.question.name_len);
    for (size_t i = 0; i < flipped.size(); i += 1 + flipped[i]) {
      for (size_t j = 1; j <= flipped[i]; ++j) {
        uint8_t& c = flipped[i + j];
        if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && ((mix >> (j % 32)) & 1)) c ^= 0x20;
      }
    }
    wire::Question other = q.question;
    other.name = flipped.data();
    uint8_t other_bytes[cache::kMaxKeySize];
    cache::Key k2 = cache::make_key(other, q.edns.do_bit, other_bytes);
    FUZZ_CHECK(k2.hash == key.hash && k2.len == key.len);
    FUZZ_CHECK(std::memcmp(other_bytes, key_bytes, key.len) == 0);
  }

  uint8_t stored_rcode = (mix & 0x100) ? wire::kNxDomain : wire::kNoError;
  size_t pad = (mix >> 9) % 1600;
  if (pad < 300) pad = 0;
  Stored s = stored_answer(key, stored_rcode, pad);
  FUZZ_CHECK(fuzz::ldns_parses(s.wire));

  cache::Cache cache({.max_entries = 2, .shards = 1, .stale_max = 0});
  constexpr uint32_t kNow = 1000;
  cache.insert(key, kNow, kEntryTtl, s.wire, s.ttl_offsets);
  FUZZ_CHECK(cache.size() == 1);
  uint32_t elapsed = (mix >> 20) % 40;
  for (size_t limit : {q.udp_limit(), wire::kMaxMessageSize}) {
    size_t rendered = 0;
    cache::Found found = cache.find(key, kNow + elapsed, [&](const cache::EntryView& e) {
      FUZZ_CHECK(e.elapsed == elapsed && e.ttl == kEntryTtl);
      FUZZ_CHECK(e.wire.size() == s.wire.size() &&
                 std::memcmp(e.wire.data(), s.wire.data(), s.wire.size()) == 0);
      FUZZ_CHECK(e.ttl_offsets.size() == s.ttl_offsets.size());
      rendered = wire::render_answer(e.wire, e.ttl_offsets, e.elapsed, 0, q, limit, out);
    });
    if (elapsed >= kEntryTtl) {
      FUZZ_CHECK(found == cache::Found::kMiss && cache.size() == 0);
      break;
    }
    FUZZ_CHECK(found == cache::Found::kFresh);
    check_render(q, s, {out.data(), rendered}, elapsed, 0, limit);
  }

  // A stale answer is served with a fixed TTL.
  size_t rendered = wire::render_answer(s.wire, s.ttl_offsets, 0, 7, q, q.udp_limit(), out);
  check_render(q, s, {out.data(), rendered}, 0, 7, q.udp_limit());

  // An output buffer smaller than the answer: an empty TC answer or nothing.
  size_t total = s.wire.size() + (q.edns.present ? wire::kOptRecordSize : 0);
  std::vector<uint8_t> tiny((mix >> 12) % total);
  size_t tiny_len =
      wire::render_answer(s.wire, s.ttl_offsets, 0, 0, q, wire::kMaxMessageSize, tiny);
  FUZZ_CHECK(tiny_len <= tiny.size());
  if (tiny_len) FUZZ_CHECK(tiny[2] & wire::kFlagTc);
  return 0;
}
