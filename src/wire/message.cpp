// DNS message parsing and building on raw wire bytes, for the query hot path.
#include "wire/message.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace readyns::wire {
namespace {

// Parses an uncompressed name; returns its length or 0 if malformed (pointers are not allowed
// in a question: RFC 1035 permits them, but no client sends one and they make keys ambiguous).
size_t question_name_length(std::span<const uint8_t> msg, size_t pos) {
  size_t start = pos;
  while (pos < msg.size()) {
    uint8_t label = msg[pos];
    if (label == 0) {
      size_t len = pos + 1 - start;
      return len <= kMaxNameLength ? len : 0;
    }
    if (label > 63) return 0;
    pos += 1 + label;
  }
  return 0;
}

// Walks `count` resource records from `pos`, noting an OPT record in the additional section.
size_t walk_records(std::span<const uint8_t> msg, size_t pos, unsigned count, bool additional,
                    Edns& edns, bool& malformed) {
  for (unsigned i = 0; i < count; ++i) {
    size_t owner = pos;
    pos = skip_name(msg, pos);
    if (pos == 0 || pos + 10 > msg.size()) return malformed = true, 0;
    uint16_t type = get16(&msg[pos]);
    uint16_t rdlen = get16(&msg[pos + 8]);
    if (type == kTypeOpt) {
      // RFC 6891 6.1.1: one OPT, owned by the root, in the additional section only.
      if (!additional || edns.present || msg[owner] != 0) return malformed = true, 0;
      edns.present = true;
      edns.udp_size = get16(&msg[pos + 2]);
      edns.ext_rcode = msg[pos + 4];
      edns.version = msg[pos + 5];
      edns.do_bit = msg[pos + 6] & 0x80;
    }
    pos += 10 + rdlen;
    if (pos > msg.size()) return malformed = true, 0;
  }
  return pos;
}

}  // namespace

size_t skip_name(std::span<const uint8_t> msg, size_t pos) {
  size_t total = 0;
  while (pos < msg.size()) {
    uint8_t label = msg[pos];
    if (label == 0) return pos + 1;
    if ((label & 0xc0) == 0xc0) return pos + 2 <= msg.size() ? pos + 2 : 0;
    if (label > 63) return 0;
    total += 1 + label;
    if (total + 1 > kMaxNameLength) return 0;  // the root label still follows
    pos += 1 + label;
  }
  return 0;
}

bool read_edns(std::span<const uint8_t> msg, size_t pos, Edns& out) {
  bool malformed = false;
  pos = walk_records(msg, pos, get16(&msg[6]) + get16(&msg[8]), false, out, malformed);
  if (!malformed) walk_records(msg, pos, get16(&msg[10]), true, out, malformed);
  return !malformed;
}

QueryCheck parse_query(std::span<const uint8_t> msg, Query& out) {
  if (msg.size() < kHeaderSize) return QueryCheck::kDrop;
  const uint8_t* h = msg.data();
  if (h[2] & kFlagQr) return QueryCheck::kDrop;  // never answer an answer: reflection loops
  out = Query{};
  out.id = get16(h);
  out.flags_hi = h[2];
  out.flags_lo = h[3];
  uint16_t qdcount = get16(h + 4);
  size_t pos = kHeaderSize;
  bool malformed = false;
  for (unsigned i = 0; i < qdcount && !malformed; ++i) {
    size_t name_len = question_name_length(msg, pos);
    if (name_len == 0 || pos + name_len + 4 > msg.size()) {
      malformed = true;
    } else if (qdcount == 1) {
      out.question = {h + pos, uint16_t(name_len), get16(h + pos + name_len),
                      get16(h + pos + name_len + 2)};
      out.question_valid = true;
      out.question_end = pos + name_len + 4;
    }
    pos += name_len + 4;
  }
  // The OPT is read even for a query refused below: RFC 6891 7, an answer to a query with EDNS
  // carries an OPT, whatever its RCODE.
  if (!malformed) malformed = !read_edns(msg, pos, out.edns);
  if (malformed) out.edns = Edns{};  // do not trust an OPT found in a malformed message
  if (opcode_of(h) != 0) return QueryCheck::kNotImp;
  if (!out.question_valid || malformed) return QueryCheck::kFormErr;
  if (out.edns.present && out.edns.version != 0) return QueryCheck::kBadVers;
  uint16_t qtype = out.question.qtype;
  if (qtype == kTypeAxfr || qtype == kTypeIxfr) return QueryCheck::kRefused;
  return QueryCheck::kOk;
}

size_t lower_name(const uint8_t* name, size_t len, uint8_t* out) {
  for (size_t i = 0; i < len;) {
    uint8_t label = name[i];
    out[i] = label;
    for (size_t j = 1; j <= label; ++j) out[i + j] = ascii_lower(name[i + j]);
    i += 1 + label;
  }
  return len;
}

bool names_equal(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen) {
  if (alen != blen) return false;
  for (size_t i = 0; i < alen; ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool name_in_zone(const uint8_t* name, size_t len, const uint8_t* zone, size_t zone_len) {
  if (zone_len > len) return false;
  // Only a label boundary of `name` may start the suffix.
  for (size_t pos = 0; pos < len; pos += 1 + name[pos]) {
    if (len - pos == zone_len) return names_equal(name + pos, zone_len, zone, zone_len);
    if (name[pos] == 0) break;
  }
  return false;
}

size_t append_opt(std::span<uint8_t> out, size_t len, bool do_bit, uint8_t ext_rcode) {
  if (len + kOptRecordSize > out.size()) return 0;
  uint8_t* p = out.data() + len;
  p[0] = 0;  // root owner
  put16(p + 1, kTypeOpt);
  put16(p + 3, kEdnsUdpSize);
  p[5] = ext_rcode;
  p[6] = 0;  // EDNS version 0
  p[7] = do_bit ? 0x80 : 0;
  p[8] = 0;
  put16(p + 9, 0);
  put16(out.data() + 10, uint16_t(get16(out.data() + 10) + 1));
  return len + kOptRecordSize;
}

size_t build_empty_answer(const Query& q, uint16_t rcode, std::span<uint8_t> out) {
  size_t qlen = q.question_valid ? q.question.name_len + 4u : 0;
  if (out.size() < kHeaderSize + qlen) return 0;
  uint8_t* h = out.data();
  put16(h, q.id);
  h[2] = uint8_t(kFlagQr | (q.flags_hi & (0x78 | kFlagRd)));  // keep opcode and RD
  h[3] = uint8_t(kFlagRa | (q.flags_lo & kFlagCd) | (rcode & 0x0f));
  put16(h + 4, q.question_valid ? 1 : 0);
  put16(h + 6, 0);
  put16(h + 8, 0);
  put16(h + 10, 0);
  size_t len = kHeaderSize;
  if (q.question_valid) {
    std::memcpy(h + len, q.question.name, q.question.name_len);
    len += q.question.name_len;
    put16(h + len, q.question.qtype);
    put16(h + len + 2, q.question.qclass);
    len += 4;
  }
  if (q.edns.present) len = append_opt(out, len, q.edns.do_bit, uint8_t(rcode >> 4));
  return len;
}

void append_name_text(const uint8_t* name, size_t len, std::string& out) {
  if (len <= 1) return out.push_back('.');
  for (size_t i = 0; i < len && name[i] != 0; i += 1 + name[i]) {
    for (size_t j = 1; j <= name[i] && i + j < len; ++j) {
      uint8_t c = name[i + j];
      if (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '.') {
        out.push_back(char(c));
      } else {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\%03u", c);
        out += esc;
      }
    }
    out.push_back('.');
  }
}

size_t name_from_text(const char* text, size_t text_len, uint8_t* out, size_t cap) {
  if (text_len > 0 && text[text_len - 1] == '.') --text_len;
  size_t len = 0;
  size_t start = 0;
  while (start < text_len) {
    size_t dot = start;
    while (dot < text_len && text[dot] != '.') ++dot;
    size_t label = dot - start;
    if (label == 0 || label > 63 || len + 1 + label + 1 > std::min(cap, kMaxNameLength)) return 0;
    out[len++] = uint8_t(label);
    std::memcpy(out + len, text + start, label);
    len += label;
    start = dot + 1;
    if (dot == text_len - 1 && text[dot] == '.') return 0;  // "a..b" or trailing dots
  }
  if (len + 1 > cap) return 0;
  out[len++] = 0;
  return len;
}

}  // namespace readyns::wire
