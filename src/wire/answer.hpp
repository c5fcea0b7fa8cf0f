// Upstream answers: reply checks, preparation for the cache, and serving stored answers.
//
// Checking that a reply answers what we asked, preparing it for the cache, and serving a stored
// answer to a client with its ID, case and TTLs patched (the hit path).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "wire/message.hpp"

namespace readyns::wire {

struct TtlPolicy {
  uint32_t min_ttl = 0;   // floor for positive answers
  uint32_t max_ttl = 30;  // ceiling for positive answers (NodeLocal DNSCache: 30 s)
  uint32_t neg_ttl = 5;   // ceiling for NXDOMAIN/NODATA (NodeLocal DNSCache: 5 s)
};

enum class ReplyCheck : uint8_t {
  kAccept,
  kMismatch,   // not an answer to our query (ID, question or QR): ignore it and keep waiting
  kTruncated,  // TC=1: ask again over TCP
  // An answer to our query that must not be used: its records do not walk, or it carries an
  // extended RCODE. We send EDNS version 0 and no cookies, so nothing we ask earns one, and a
  // client would get only its lower 4 bits once our OPT replaces the reply's.
  kBroken,
};

// Checks that `reply` answers the query we sent: QR set, same ID, same question. With
// `exact_case` the name must match byte for byte (0x20 randomisation). Then, unless truncated, that
// it can be used.
ReplyCheck check_reply(std::span<const uint8_t> reply, uint16_t id, const uint8_t* qname,
                       size_t qname_len, uint16_t qtype, uint16_t qclass, bool exact_case);

// An upstream answer made ready to store and serve: OPT removed, question lower-cased, records
// that do not belong to the question's CNAME chain or the forwarded zone removed, TTLs clamped.
struct PreparedAnswer {
  std::vector<uint8_t> wire;
  std::vector<uint16_t> ttl_offsets;  // where each record's TTL sits in `wire`
  uint32_t ttl = 0;                   // how long it may be cached; 0: serve once, do not cache
  uint8_t rcode = 0;
  bool negative = false;  // NXDOMAIN or NODATA
};

// Returns false if the reply is malformed (it must then be treated as a failed exchange).
// `zone` is the forwarded zone (uncompressed wire) the reply's records must lie in.
bool prepare_answer(std::span<const uint8_t> reply, const TtlPolicy& policy,
                    std::span<const uint8_t> zone, PreparedAnswer& out);

// What render_answer sends in place of an answer larger than the client's limit; TC=1 either way.
enum class Overflow : uint8_t {
  // No records, NOERROR: a cache's answer is relayed whole (over TCP) or not at all.
  kEmpty,
  // The rcode and the whole records that fit, in order (answers first), as miekg/dns's
  // Msg.Truncate leaves CoreDNS's answers.
  kLeadingRecords,
};

// Serves a stored answer to client query `q`: writes it to `out` with the client's ID, flags and
// question case, each TTL lowered by `elapsed` seconds (or set to `fixed_ttl` when non-zero, for
// stale answers), and OPT appended when the client used EDNS. An answer larger than `limit`
// becomes what `overflow` says. `ttl_offsets` must list every stored record's, in order. Returns
// the length written.
size_t render_answer(std::span<const uint8_t> stored, std::span<const uint16_t> ttl_offsets,
                     uint32_t elapsed, uint32_t fixed_ttl, const Query& q, size_t limit,
                     std::span<uint8_t> out, Overflow overflow = Overflow::kEmpty);

// Reads a possibly compressed name at `pos` into `out` lower-cased; returns the offset after the
// name in the message, or 0 if malformed (bad pointer, loop, too long).
size_t read_name(std::span<const uint8_t> msg, size_t pos, uint8_t* out, size_t& out_len);

}  // namespace readyns::wire
