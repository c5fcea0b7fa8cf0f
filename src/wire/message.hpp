// DNS message parsing and building on raw wire bytes, for the query hot path.
//
// No allocation, no ldns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace readyns::wire {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameLength = 255;
constexpr uint16_t kEdnsUdpSize = 1232;    // what we advertise (DNS flag day 2020)
constexpr uint16_t kPlainUdpSize = 512;    // RFC 1035 limit without EDNS
constexpr size_t kMaxMessageSize = 65535;  // TCP length prefix limit
constexpr size_t kOptRecordSize = 11;      // root name, type, class, ttl, rdlen 0

enum Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};
constexpr uint8_t kExtRcodeBadVers = 16;  // RFC 6891: upper 8 bits live in the OPT TTL

enum Type : uint16_t {
  kTypeA = 1,
  kTypeNs = 2,
  kTypeCname = 5,
  kTypeSoa = 6,
  kTypePtr = 12,
  kTypeAaaa = 28,
  kTypeSrv = 33,
  kTypeOpt = 41,
  kTypeAxfr = 252,
  kTypeIxfr = 251,
  kTypeAny = 255,
};
constexpr uint16_t kClassIn = 1;

inline uint16_t get16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
inline uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline uint8_t ascii_lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? uint8_t(c | 0x20) : c;
}

// Header flag bits, as they sit in bytes 2 and 3.
constexpr uint8_t kFlagQr = 0x80, kFlagAa = 0x04, kFlagTc = 0x02, kFlagRd = 0x01;
constexpr uint8_t kFlagRa = 0x80, kFlagAd = 0x20, kFlagCd = 0x10;
inline uint8_t opcode_of(const uint8_t* msg) {
  return (msg[2] >> 3) & 0x0f;
}
inline uint8_t rcode_of(const uint8_t* msg) {
  return msg[3] & 0x0f;
}

// The question of a message: name bytes stay in the packet, exactly as the client cased them.
struct Question {
  const uint8_t* name = nullptr;
  uint16_t name_len = 0;  // including the root label
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

struct Edns {
  bool present = false;
  bool do_bit = false;
  uint8_t version = 0;
  uint8_t ext_rcode = 0;  // the upper 8 of a 12-bit RCODE
  uint16_t udp_size = kPlainUdpSize;
};

// A client query, checked enough to be answered or forwarded.
struct Query {
  uint16_t id = 0;
  uint8_t flags_hi = 0;  // byte 2: QR, opcode, AA, TC, RD
  uint8_t flags_lo = 0;  // byte 3: RA, Z, AD, CD, rcode
  bool question_valid = false;
  Question question;
  size_t question_end = 0;  // offset just past the question
  Edns edns;

  // Largest UDP answer we send it: what it accepts, but no more than we advertise, as DNS flag
  // day 2020 asks, so that no answer is fragmented on the way (larger ones go by TCP).
  size_t udp_limit() const {
    return edns.present ? std::clamp<size_t>(edns.udp_size, 512, kEdnsUdpSize) : 512;
  }
  bool rd() const { return flags_hi & kFlagRd; }
  bool cd() const { return flags_lo & kFlagCd; }
};

enum class QueryCheck : uint8_t {
  kOk,
  kDrop,     // a response (QR=1) or too short to answer: send nothing
  kFormErr,  // malformed: answer FORMERR
  kNotImp,   // opcode other than QUERY: answer NOTIMP
  kBadVers,  // EDNS version we do not speak: answer BADVERS (RFC 6891 6.1.3)
  kRefused,  // a query type a cache must not forward (zone transfers)
};

// Parses and checks a client query. On anything but kDrop, `out` holds what is needed to answer.
QueryCheck parse_query(std::span<const uint8_t> msg, Query& out);

// Walks the records after the question, which ends at `pos`, for the OPT record. Returns false if
// they overrun the message or an OPT is not the one, root-owned, in the additional section.
bool read_edns(std::span<const uint8_t> msg, size_t pos, Edns& out);

// Walks one name at `pos` (compression allowed); returns the offset after it, or 0 if malformed.
size_t skip_name(std::span<const uint8_t> msg, size_t pos);

// Copies a wire name to `out` lower-cased (uncompressed names only); returns its length.
size_t lower_name(const uint8_t* name, size_t len, uint8_t* out);

// Case-insensitive comparison of two uncompressed wire names.
bool names_equal(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen);

// True if `name` equals `zone` or lies beneath it (both uncompressed wire, any case).
bool name_in_zone(const uint8_t* name, size_t len, const uint8_t* zone, size_t zone_len);

// Writes an answer carrying no records: the header echoing the query, its question if it had
// one, and an OPT record when the query had EDNS. Returns the length written (0 if out is small).
size_t build_empty_answer(const Query& q, uint16_t rcode, std::span<uint8_t> out);

// Appends our OPT record (udp size 1232, the DO bit echoed, extended rcode) and bumps ARCOUNT.
size_t append_opt(std::span<uint8_t> out, size_t len, bool do_bit, uint8_t ext_rcode);

// Appends a wire name as dotted text, every byte outside printable ASCII and the characters
// `"` `\\` `.` inside labels escaped as \\DDD (RFC 4343 style), so it is safe in JSON and logs.
void append_name_text(const uint8_t* name, size_t len, std::string& out);

// Converts a presentation name ("svc.ns.svc.cluster.local") to wire; returns length or 0.
size_t name_from_text(const char* text, size_t text_len, uint8_t* out, size_t cap);

}  // namespace readyns::wire
