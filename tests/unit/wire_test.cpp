// Unit tests for src/wire: query parsing, name helpers, empty answers, and upstream answers.

// Without it, ldns/common.h defines bool as _Bool, which breaks libstdc++'s headers under clang.
#include <stdbool.h>

#include <ldns/ldns.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "wire/answer.hpp"
#include "wire/message.hpp"

using namespace readyns::wire;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t kQdOffset = 4, kAnOffset = 6, kNsOffset = 8, kArOffset = 10;
constexpr uint16_t kTypeTxt = 16, kTypeTsig = 250, kClassAny = 255;

// ---- Hand-built messages --------------------------------------------------------------------

// Dotted text to wire, written independently of name_from_text. "" and "." give the root.
Bytes wname(std::string_view text) {
  Bytes out;
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  while (!text.empty()) {
    size_t dot = text.find('.');
    std::string_view label = text.substr(0, dot);
    out.push_back(uint8_t(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    text.remove_prefix(dot == std::string_view::npos ? text.size() : dot + 1);
  }
  out.push_back(0);
  return out;
}

// A wire name made of labels of the given sizes (filled with 'a').
Bytes name_of_labels(std::initializer_list<size_t> sizes) {
  Bytes out;
  for (size_t size : sizes) {
    out.push_back(uint8_t(size));
    out.insert(out.end(), size, 'a');
  }
  out.push_back(0);
  return out;
}

// The same, as presentation text.
std::string text_of_labels(std::initializer_list<size_t> sizes) {
  std::string out;
  for (size_t size : sizes) out += std::string(size, 'a') + ".";
  return out;
}

void add(Bytes& m, const Bytes& bytes) {
  m.insert(m.end(), bytes.begin(), bytes.end());
}
void add16(Bytes& m, uint16_t v) {
  m.push_back(uint8_t(v >> 8));
  m.push_back(uint8_t(v));
}
void add32(Bytes& m, uint32_t v) {
  add16(m, uint16_t(v >> 16));
  add16(m, uint16_t(v));
}
void bump(Bytes& m, size_t count_offset) {
  put16(&m[count_offset], uint16_t(get16(&m[count_offset]) + 1));
}

Bytes header(uint16_t id, uint8_t hi, uint8_t lo, uint16_t qd, uint16_t an = 0, uint16_t ns = 0,
             uint16_t ar = 0) {
  Bytes m;
  add16(m, id);
  m.push_back(hi);
  m.push_back(lo);
  add16(m, qd);
  add16(m, an);
  add16(m, ns);
  add16(m, ar);
  return m;
}

// Appends a resource record; the header counts are left to the caller.
void add_rr(Bytes& m, const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata,
            uint16_t rclass = kClassIn) {
  add(m, owner);
  add16(m, type);
  add16(m, rclass);
  add32(m, ttl);
  add16(m, uint16_t(rdata.size()));
  add(m, rdata);
}

// Appends an OPT record (version, DO bit and UDP size as given) and bumps ARCOUNT.
void add_opt(Bytes& m, uint16_t udp_size, uint8_t version = 0, bool do_bit = false,
             const Bytes& owner = {0}) {
  add(m, owner);
  add16(m, kTypeOpt);
  add16(m, udp_size);
  m.push_back(0);  // extended rcode
  m.push_back(version);
  m.push_back(do_bit ? 0x80 : 0);
  m.push_back(0);
  add16(m, 0);
  bump(m, kArOffset);
}

// Appends a question (class IN); QDCOUNT is left to the caller.
void add_question(Bytes& m, const Bytes& name, uint16_t qtype) {
  add(m, name);
  add16(m, qtype);
  add16(m, kClassIn);
}

Bytes make_query(std::string_view name, uint16_t qtype = kTypeA, uint8_t hi = kFlagRd,
                 uint8_t lo = 0, uint16_t id = 0x1234) {
  Bytes m = header(id, hi, lo, 1);
  add_question(m, wname(name), qtype);
  return m;
}

// The header and question of a reply to a.cluster.local A, with the given counts.
Bytes reply_start(uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
  Bytes m = header(0x4242, kFlagQr | kFlagRd, kFlagRa, 1, an, ns, ar);
  add_question(m, wname("a.cluster.local"), kTypeA);
  return m;
}

// ---- ldns-built replies ---------------------------------------------------------------------

struct ReplySpec {
  std::string qname = "svc.ns.svc.cluster.local.";
  ldns_rr_type qtype = LDNS_RR_TYPE_A;
  uint16_t id = 0x4242;
  uint8_t rcode = 0;
  bool aa = false, ad = false, edns = false;
  std::vector<std::string> answer, authority, additional;
};

Bytes build_reply(const ReplySpec& spec) {
  ldns_pkt* pkt = ldns_pkt_query_new(ldns_dname_new_frm_str(spec.qname.c_str()), spec.qtype,
                                     LDNS_RR_CLASS_IN, LDNS_RD);
  REQUIRE(pkt != nullptr);
  ldns_pkt_set_id(pkt, spec.id);
  ldns_pkt_set_qr(pkt, true);
  ldns_pkt_set_ra(pkt, true);
  ldns_pkt_set_aa(pkt, spec.aa);
  ldns_pkt_set_ad(pkt, spec.ad);
  ldns_pkt_set_rcode(pkt, spec.rcode);
  const std::pair<const std::vector<std::string>*, ldns_pkt_section> sections[] = {
      {&spec.answer, LDNS_SECTION_ANSWER},
      {&spec.authority, LDNS_SECTION_AUTHORITY},
      {&spec.additional, LDNS_SECTION_ADDITIONAL}};
  for (const auto& [texts, section] : sections) {
    for (const std::string& text : *texts) {
      ldns_rr* rr = nullptr;
      INFO(text);
      REQUIRE(ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK);
      ldns_pkt_push_rr(pkt, section, rr);
    }
  }
  if (spec.edns) {
    ldns_pkt_set_edns_udp_size(pkt, 1232);
    ldns_pkt_set_edns_do(pkt, true);
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  REQUIRE(ldns_pkt2wire(&wire, pkt, &size) == LDNS_STATUS_OK);
  Bytes out(wire, wire + size);
  LDNS_FREE(wire);
  ldns_pkt_free(pkt);
  return out;
}

// ---- Reading messages back ------------------------------------------------------------------

std::string name_text(const uint8_t* name, size_t len) {
  std::string out;
  for (size_t i = 0; i < len && name[i] != 0; i += 1 + name[i]) {
    out.append(reinterpret_cast<const char*>(name + i + 1), name[i]);
    out += '.';
  }
  return out.empty() ? "." : out;
}

struct Rec {
  std::string owner;  // lower-case text
  uint16_t type = 0;
  uint32_t ttl = 0;
  int section = 0;  // 0 answer, 1 authority, 2 additional
  size_t ttl_offset = 0;
};

// Lists every record of a message, OPT included (ldns hides it), and checks the message ends
// exactly after the last one.
std::vector<Rec> records_of(const Bytes& m) {
  REQUIRE(m.size() >= kHeaderSize);
  REQUIRE(get16(&m[kQdOffset]) == 1);
  uint8_t name[kMaxNameLength];
  size_t len = 0;
  size_t pos = read_name(m, kHeaderSize, name, len);
  REQUIRE(pos != 0);
  pos += 4;
  std::vector<Rec> out;
  for (int section = 0; section < 3; ++section) {
    for (unsigned i = 0; i < get16(&m[kAnOffset + 2 * section]); ++i) {
      pos = read_name(m, pos, name, len);
      REQUIRE(pos != 0);
      REQUIRE(pos + 10 <= m.size());
      out.push_back({name_text(name, len), get16(&m[pos]), get32(&m[pos + 4]), section, pos + 4});
      pos += 10 + get16(&m[pos + 8]);
      REQUIRE(pos <= m.size());
    }
  }
  CHECK(pos == m.size());
  return out;
}

// "owner TYPE-number" for each record of one section, in order.
std::vector<std::string> section_of(const Bytes& m, int section) {
  std::vector<std::string> out;
  for (const Rec& r : records_of(m)) {
    if (r.section == section) out.push_back(r.owner + " " + std::to_string(r.type));
  }
  return out;
}

bool has_opt(const Bytes& m) {
  for (const Rec& r : records_of(m)) {
    if (r.type == kTypeOpt) return true;
  }
  return false;
}

// True if ldns accepts the message as a whole.
bool ldns_parses(const Bytes& m) {
  ldns_pkt* pkt = nullptr;
  ldns_status status = ldns_wire2pkt(&pkt, m.data(), m.size());
  ldns_pkt_free(pkt);
  return status == LDNS_STATUS_OK;
}

const Bytes kZone = wname("cluster.local");
const char* const kSoa =
    "cluster.local. 60 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 "
    "30";

// Sets the TTL of the index-th record (in message order) of a wire message.
void set_ttl(Bytes& m, size_t index, uint32_t ttl) {
  std::vector<Rec> recs = records_of(m);
  REQUIRE(index < recs.size());
  put32(&m[recs[index].ttl_offset], ttl);
}

}  // namespace

// ============================================================================================
// parse_query
// ============================================================================================

TEST_CASE("parse_query accepts a plain query", "[wire][parse_query]") {
  Bytes m = make_query("svc.ns.svc.cluster.local", kTypeAaaa, kFlagRd, kFlagCd, 0xbeef);
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  CHECK(q.id == 0xbeef);
  CHECK(q.rd());
  CHECK(q.cd());
  CHECK(q.question_valid);
  Bytes name = wname("svc.ns.svc.cluster.local");
  CHECK(q.question.name == m.data() + kHeaderSize);
  CHECK(q.question.name_len == name.size());
  CHECK(Bytes(q.question.name, q.question.name + q.question.name_len) == name);
  CHECK(q.question.qtype == kTypeAaaa);
  CHECK(q.question.qclass == kClassIn);
  CHECK(q.question_end == m.size());
  CHECK_FALSE(q.edns.present);
  CHECK(q.udp_limit() == 512);
  q.edns = {.present = true, .udp_size = 1000};
  CHECK(q.udp_limit() == 1000);
  q.edns.udp_size = 100;
  CHECK(q.udp_limit() == 512);  // RFC 6891 6.2.5: below 512 counts as 512

  Bytes plain = make_query("svc.cluster.local", kTypeA, 0, 0);
  REQUIRE(parse_query(plain, q) == QueryCheck::kOk);
  CHECK_FALSE(q.rd());
  CHECK_FALSE(q.cd());
}

TEST_CASE("parse_query accepts the root name and ANY", "[wire][parse_query]") {
  Bytes m = make_query(".", kTypeNs);
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  CHECK(q.question.name_len == 1);
  CHECK(q.question.qtype == kTypeNs);

  Bytes any = make_query("svc.cluster.local", kTypeAny);
  CHECK(parse_query(any, q) == QueryCheck::kOk);
}

TEST_CASE("parse_query preserves the client's case", "[wire][parse_query]") {
  Bytes m = make_query("SvC.Ns.SVC.cluster.LOCAL");
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  CHECK(Bytes(q.question.name, q.question.name + q.question.name_len) ==
        wname("SvC.Ns.SVC.cluster.LOCAL"));
}

TEST_CASE("parse_query drops responses and runts", "[wire][parse_query]") {
  Query q;
  SECTION("QR=1") {
    Bytes m = make_query("svc.cluster.local", kTypeA, kFlagQr | kFlagRd);
    CHECK(parse_query(m, q) == QueryCheck::kDrop);
  }
  SECTION("QR=1 even when otherwise malformed") {
    Bytes m = header(1, kFlagQr, 0, 0);
    CHECK(parse_query(m, q) == QueryCheck::kDrop);
  }
  SECTION("fewer than 12 bytes") {
    Bytes m = make_query("svc.cluster.local");
    CHECK(parse_query(std::span<const uint8_t>(m.data(), 11), q) == QueryCheck::kDrop);
    CHECK(parse_query(std::span<const uint8_t>(m.data(), 0), q) == QueryCheck::kDrop);
  }
}

TEST_CASE("parse_query wants exactly one question", "[wire][parse_query]") {
  Query q;
  SECTION("QDCOUNT 0") {
    Bytes m = header(0x7777, kFlagRd, 0, 0);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    CHECK_FALSE(q.question_valid);
    CHECK(q.id == 0x7777);  // still echoed in the FORMERR
  }
  SECTION("QDCOUNT 2") {
    Bytes m = header(0x7777, kFlagRd, 0, 2);
    for (const char* name : {"a.cluster.local", "b.cluster.local"}) {
      add_question(m, wname(name), kTypeA);
    }
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    CHECK(q.id == 0x7777);
  }
}

TEST_CASE("parse_query answers other opcodes with NOTIMP", "[wire][parse_query]") {
  Query q;
  for (uint8_t opcode :
       {uint8_t(2) /* STATUS */, uint8_t(4) /* NOTIFY */, uint8_t(5) /* UPDATE */}) {
    INFO("opcode " << int(opcode));
    Bytes m = make_query("cluster.local", kTypeSoa, uint8_t(opcode << 3));
    REQUIRE(parse_query(m, q) == QueryCheck::kNotImp);
    CHECK(q.question_valid);  // kept, so the NOTIMP can carry it
    CHECK(q.question.qtype == kTypeSoa);
    CHECK(q.question.name_len == kZone.size());
  }
  SECTION("question not parseable") {
    Bytes m = header(1, uint8_t(5 << 3), 0, 0);
    CHECK(parse_query(m, q) == QueryCheck::kNotImp);
    CHECK_FALSE(q.question_valid);
  }
}

TEST_CASE("parse_query reads the OPT of queries it refuses, for their answer to carry one",
          "[wire][parse_query][edns]") {
  Query q;
  SECTION("QDCOUNT 0") {
    Bytes m = header(1, kFlagRd, 0, 0);
    add_opt(m, 1232, 0, true);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("QDCOUNT 2") {
    Bytes m = header(1, kFlagRd, 0, 2);
    for (const char* name : {"a.cluster.local", "b.cluster.local"}) {
      add_question(m, wname(name), kTypeA);
    }
    add_opt(m, 1232, 0, true);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("another opcode") {
    Bytes m = make_query("cluster.local", kTypeSoa, uint8_t(4 << 3));
    add_opt(m, 1232, 0, true);
    CHECK(parse_query(m, q) == QueryCheck::kNotImp);
  }
  CHECK(q.edns.present);
  CHECK(q.edns.do_bit);
}

TEST_CASE("parse_query rejects malformed question names", "[wire][parse_query]") {
  Query q;
  auto with_name = [](const Bytes& name) {
    Bytes m = header(1, kFlagRd, 0, 1);
    add_question(m, name, kTypeA);
    return m;
  };
  SECTION("truncated name") {
    Bytes m = header(1, kFlagRd, 0, 1);
    add(m, {3, 's', 'v', 'c', 7, 'c', 'l', 'u'});
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    CHECK_FALSE(q.question_valid);
  }
  SECTION("name without its type and class") {
    Bytes m = header(1, kFlagRd, 0, 1);
    add(m, wname("svc.cluster.local"));
    add16(m, kTypeA);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("label of 63 is fine, 64 is not") {
    Bytes ok = with_name(name_of_labels({63, 7}));
    CHECK(parse_query(ok, q) == QueryCheck::kOk);
    Bytes bad = with_name(name_of_labels({64, 7}));
    CHECK(parse_query(bad, q) == QueryCheck::kFormErr);
  }
  SECTION("name of 255 is fine, 256 is not") {
    Bytes max = name_of_labels({63, 63, 63, 61});
    REQUIRE(max.size() == 255);
    Bytes ok = with_name(max);
    CHECK(parse_query(ok, q) == QueryCheck::kOk);
    Bytes over = name_of_labels({63, 63, 63, 62});
    REQUIRE(over.size() == 256);
    Bytes bad = with_name(over);
    CHECK(parse_query(bad, q) == QueryCheck::kFormErr);
  }
  SECTION("compression pointer") {
    Bytes m = with_name({3, 's', 'v', 'c', 0xc0, 0x04});
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    Bytes bare = with_name({0xc0, 0x04});
    CHECK(parse_query(bare, q) == QueryCheck::kFormErr);
  }
  SECTION("extended label type") {
    Bytes m = with_name({0x41, 'a', 0});
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
}

TEST_CASE("parse_query reads EDNS", "[wire][parse_query][edns]") {
  Query q;
  SECTION("size, DO bit and version") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 4096, 0, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(q.edns.present);
    CHECK(q.edns.do_bit);
    CHECK(q.edns.version == 0);
    CHECK(q.edns.udp_size == 4096);
    CHECK(q.udp_limit() == kEdnsUdpSize);  // no more than we advertise: no fragments
    CHECK(q.question_end == m.size() - kOptRecordSize);
  }
  SECTION("without DO") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 1232, 0, false);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(q.edns.present);
    CHECK_FALSE(q.edns.do_bit);
    CHECK(q.udp_limit() == 1232);
  }
  SECTION("a tiny advertised size still allows 512") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 100);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(q.udp_limit() == 512);
  }
  SECTION("OPT with option data, after another additional record") {
    Bytes m = make_query("svc.cluster.local");
    add_rr(m, wname("x.cluster.local"), kTypeA, 5, {10, 0, 0, 1});
    bump(m, kArOffset);
    add(m, {0, 0, 41, 0x05, 0x00, 0, 0, 0x80, 0, 0, 8});  // rdlen 8: one cookie-ish option
    add(m, {0, 10, 0, 4, 1, 2, 3, 4});
    bump(m, kArOffset);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(q.edns.present);
    CHECK(q.edns.do_bit);
    CHECK(q.edns.udp_size == 0x500);
  }
  SECTION("version 1 is BADVERS") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 1232, 1, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kBadVers);
    CHECK(q.question_valid);
    CHECK(q.edns.present);  // the BADVERS answer carries an OPT
    CHECK(q.edns.version == 1);
  }
}

TEST_CASE("parse_query rejects misplaced or duplicate OPT records", "[wire][parse_query][edns]") {
  Query q;
  SECTION("two OPT records") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 1232);
    add_opt(m, 1232);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    CHECK_FALSE(q.edns.present);  // not trusted
  }
  SECTION("OPT in the answer section") {
    Bytes m = make_query("svc.cluster.local");
    add(m, {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0});
    bump(m, kAnOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("OPT in the authority section") {
    Bytes m = make_query("svc.cluster.local");
    add(m, {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0});
    bump(m, kNsOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("OPT not owned by the root") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 1232, 0, false, wname("x"));
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
}

TEST_CASE("parse_query rejects records overrunning the message", "[wire][parse_query]") {
  Query q;
  SECTION("ARCOUNT with no record") {
    Bytes m = make_query("svc.cluster.local");
    bump(m, kArOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("ARCOUNT 2 with one OPT") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 1232);
    bump(m, kArOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("OPT rdata longer than the message") {
    Bytes m = make_query("svc.cluster.local");
    add(m, {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4});
    bump(m, kArOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
    CHECK_FALSE(q.edns.present);
  }
  SECTION("answer record header cut short") {
    Bytes m = make_query("svc.cluster.local");
    add(m, {0xc0, 0x0c, 0, 1, 0, 1, 0});
    bump(m, kAnOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
  SECTION("answer record with a bad owner") {
    Bytes m = make_query("svc.cluster.local");
    add_rr(m, {0x50, 'x', 0}, kTypeA, 5, {1, 2, 3, 4});
    bump(m, kAnOffset);
    CHECK(parse_query(m, q) == QueryCheck::kFormErr);
  }
}

TEST_CASE("parse_query refuses zone transfers", "[wire][parse_query]") {
  Query q;
  Bytes axfr = make_query("cluster.local", kTypeAxfr);
  CHECK(parse_query(axfr, q) == QueryCheck::kRefused);
  CHECK(q.question_valid);
  Bytes ixfr = make_query("cluster.local", kTypeIxfr);
  CHECK(parse_query(ixfr, q) == QueryCheck::kRefused);
}

// ============================================================================================
// build_empty_answer / append_opt
// ============================================================================================

TEST_CASE("build_empty_answer echoes the query", "[wire][empty]") {
  Bytes m = make_query("SvC.cluster.local", kTypeAaaa, kFlagRd | kFlagAa | kFlagTc,
                       kFlagCd | kFlagAd, 0xbeef);
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  uint8_t out[512];
  size_t len = build_empty_answer(q, kServFail, out);
  REQUIRE(len == m.size());
  CHECK(get16(out) == 0xbeef);
  CHECK(out[2] == (kFlagQr | kFlagRd));              // AA/TC from the client not copied
  CHECK(out[3] == (kFlagRa | kFlagCd | kServFail));  // AD not copied
  CHECK(get16(out + kQdOffset) == 1);
  CHECK(get16(out + kAnOffset) == 0);
  CHECK(get16(out + kNsOffset) == 0);
  CHECK(get16(out + kArOffset) == 0);
  CHECK(Bytes(out + kHeaderSize, out + len) == Bytes(m.begin() + kHeaderSize, m.end()));

  SECTION("without RD and CD") {
    Bytes plain = make_query("svc.cluster.local", kTypeA, 0, 0);
    REQUIRE(parse_query(plain, q) == QueryCheck::kOk);
    REQUIRE(build_empty_answer(q, kRefused, out) != 0);
    CHECK(out[2] == kFlagQr);
    CHECK(out[3] == (kFlagRa | kRefused));
  }
}

TEST_CASE("build_empty_answer keeps the opcode", "[wire][empty]") {
  Bytes m = make_query("cluster.local", kTypeSoa, uint8_t(4 << 3));  // NOTIFY
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kNotImp);
  uint8_t out[512];
  REQUIRE(build_empty_answer(q, kNotImp, out) == m.size());
  CHECK(opcode_of(out) == 4);
  CHECK(out[2] & kFlagQr);
  CHECK(rcode_of(out) == kNotImp);
}

TEST_CASE("build_empty_answer without a question", "[wire][empty]") {
  Bytes m = header(0x0102, kFlagRd, 0, 0);
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kFormErr);
  uint8_t out[512];
  REQUIRE(build_empty_answer(q, kFormErr, out) == kHeaderSize);
  CHECK(get16(out) == 0x0102);
  CHECK(get16(out + kQdOffset) == 0);
  CHECK(rcode_of(out) == kFormErr);
}

TEST_CASE("build_empty_answer appends OPT only with EDNS", "[wire][empty][edns]") {
  Query q;
  uint8_t out[512];
  SECTION("no EDNS") {
    Bytes m = make_query("svc.cluster.local");
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(build_empty_answer(q, kNxDomain, out) == m.size());
    CHECK(get16(out + kArOffset) == 0);
  }
  SECTION("EDNS with DO") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 4096, 0, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    size_t len = build_empty_answer(q, kNxDomain, out);
    REQUIRE(len == q.question_end + kOptRecordSize);
    CHECK(get16(out + kArOffset) == 1);
    CHECK(rcode_of(out) == kNxDomain);
    const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0};  // udp 1232, DO
    CHECK(Bytes(out + len - kOptRecordSize, out + len) == Bytes(std::begin(opt), std::end(opt)));
  }
  SECTION("EDNS without DO") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 4096, 0, false);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    size_t len = build_empty_answer(q, kNoError, out);
    REQUIRE(len == q.question_end + kOptRecordSize);
    CHECK(out[len - 4] == 0);  // DO clear
  }
  SECTION("BADVERS: extended rcode 1 in the OPT, 0 in the header") {
    Bytes m = make_query("svc.cluster.local");
    add_opt(m, 4096, 1, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kBadVers);
    size_t len = build_empty_answer(q, kExtRcodeBadVers, out);
    REQUIRE(len == q.question_end + kOptRecordSize);
    CHECK(rcode_of(out) == 0);
    const uint8_t* opt = out + len - kOptRecordSize;
    CHECK(get16(opt + 1) == kTypeOpt);
    CHECK(opt[5] == 1);     // extended rcode: 16 >> 4
    CHECK(opt[6] == 0);     // we answer with version 0
    CHECK(opt[7] == 0x80);  // DO echoed
  }
}

TEST_CASE("build_empty_answer refuses a buffer too small", "[wire][empty]") {
  Bytes m = make_query("svc.cluster.local");
  add_opt(m, 1232);
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  uint8_t out[512];
  CHECK(build_empty_answer(q, kNoError, std::span<uint8_t>(out, q.question_end - 1)) == 0);
  CHECK(build_empty_answer(q, kNoError, std::span<uint8_t>(out, q.question_end + 10)) == 0);
  CHECK(build_empty_answer(q, kNoError, std::span<uint8_t>(out, q.question_end + 11)) ==
        q.question_end + 11);
}

// ============================================================================================
// Name helpers
// ============================================================================================

namespace {
Bytes from_text(std::string_view text, size_t cap = kMaxNameLength) {
  Bytes out(cap);
  size_t len = name_from_text(text.data(), text.size(), out.data(), cap);
  out.resize(len);
  return out;
}
}  // namespace

TEST_CASE("name_from_text", "[wire][names]") {
  CHECK(from_text(".") == Bytes{0});
  CHECK(from_text("svc.ns.svc.cluster.local") == wname("svc.ns.svc.cluster.local"));
  CHECK(from_text("svc.ns.svc.cluster.local.") == wname("svc.ns.svc.cluster.local"));
  CHECK(from_text("MiXeD.Case") == wname("MiXeD.Case"));  // no lower-casing

  SECTION("empty labels are rejected") {
    CHECK(from_text("a..b").empty());
    CHECK(from_text(".a").empty());
    CHECK(from_text("a..").empty());
    CHECK(from_text("..").empty());
  }
  SECTION("labels of 63 are fine, 64 are not") {
    std::string l63(63, 'x'), l64(64, 'x');
    CHECK(from_text(l63 + ".local") == wname(l63 + ".local"));
    CHECK(from_text(l64 + ".local").empty());
    CHECK(from_text("local." + l64).empty());
  }
  SECTION("names of 255 are fine, 256 are not") {
    CHECK(from_text(text_of_labels({63, 63, 63, 61})) == name_of_labels({63, 63, 63, 61}));
    CHECK(from_text(text_of_labels({63, 63, 63, 62})).empty());
  }
  SECTION("capacity") {
    CHECK(from_text("svc.cluster.local", 19) == wname("svc.cluster.local"));
    CHECK(from_text("svc.cluster.local", 18).empty());
    CHECK(from_text("svc.cluster.local", 5).empty());
  }
}

TEST_CASE("names_equal ignores case only", "[wire][names]") {
  Bytes a = wname("Svc.CLUSTER.local"), b = wname("svc.cluster.LOCAL");
  CHECK(names_equal(a.data(), a.size(), b.data(), b.size()));
  Bytes c = wname("svd.cluster.local");
  CHECK_FALSE(names_equal(a.data(), a.size(), c.data(), c.size()));
  Bytes d = wname("svc.cluster.local.x");
  CHECK_FALSE(names_equal(b.data(), b.size(), d.data(), d.size()));
  CHECK_FALSE(names_equal(d.data(), d.size(), b.data(), b.size()));
}

TEST_CASE("name_in_zone respects label boundaries", "[wire][names]") {
  auto in = [](std::string_view name, std::string_view zone) {
    Bytes n = wname(name), z = wname(zone);
    return name_in_zone(n.data(), n.size(), z.data(), z.size());
  };
  CHECK(in("cluster.local", "cluster.local"));
  CHECK(in("svc.ns.svc.cluster.local", "cluster.local"));
  CHECK(in("SVC.Cluster.LOCAL", "cluster.local"));
  CHECK(in("svc.cluster.local", "CLUSTER.local"));
  CHECK(in("svc.cluster.local", "local"));
  CHECK(in("svc.cluster.local", "."));
  CHECK(in(".", "."));
  CHECK_FALSE(in("xcluster.local", "cluster.local"));
  CHECK_FALSE(in("a.xcluster.local", "cluster.local"));
  CHECK_FALSE(in("cluster.local", "svc.cluster.local"));
  CHECK_FALSE(in("cluster.locals", "cluster.local"));
  CHECK_FALSE(in("example", "cluster.local"));
  CHECK_FALSE(in(".", "local"));

  SECTION("a label whose bytes spell the zone does not count") {
    Bytes name = {14, 7, 'c', 'l', 'u', 's', 't', 'e', 'r', 5, 'l', 'o', 'c', 'a', 'l', 0};
    CHECK_FALSE(name_in_zone(name.data(), name.size(), kZone.data(), kZone.size()));
  }
}

TEST_CASE("lower_name lower-cases label bytes only", "[wire][names]") {
  Bytes name = wname("SVC.Cluster-1.LOCAL");
  Bytes out(name.size());
  CHECK(lower_name(name.data(), name.size(), out.data()) == name.size());
  CHECK(out == wname("svc.cluster-1.local"));
  lower_name(name.data(), name.size(), name.data());  // in place
  CHECK(name == wname("svc.cluster-1.local"));
}

TEST_CASE("skip_name", "[wire][names]") {
  Bytes m = header(1, 0, 0, 1);
  add(m, wname("svc.cluster.local"));  // 12..31
  size_t second = m.size();
  add(m, {3, 'f', 'o', 'o', 0xc0, 12});
  CHECK(skip_name(m, kHeaderSize) == second);
  CHECK(skip_name(m, second) == second + 6);
  CHECK(skip_name(std::span<const uint8_t>(m.data(), m.size() - 1), second) == 0);  // cut pointer
  CHECK(skip_name(std::span<const uint8_t>(m.data(), second - 1), kHeaderSize) == 0);  // no root

  Bytes bad = header(1, 0, 0, 1);
  add(bad, {0x40, 'x', 0});
  CHECK(skip_name(bad, kHeaderSize) == 0);

  SECTION("length limit") {
    Bytes max = header(1, 0, 0, 1);
    add(max, name_of_labels({63, 63, 63, 61}));
    CHECK(skip_name(max, kHeaderSize) == max.size());
    Bytes over = header(1, 0, 0, 1);
    add(over, name_of_labels({63, 63, 63, 62}));  // 256 bytes
    CHECK(skip_name(over, kHeaderSize) == 0);
  }
}

TEST_CASE("read_name follows compression", "[wire][names]") {
  Bytes m = header(1, 0, 0, 1);
  add(m, wname("SVC.Cluster.local"));  // 12..30
  size_t foo = m.size();               // 31
  add(m, {3, 'F', 'o', 'o', 0xc0, 12});
  size_t bar = m.size();  // 37
  add(m, {3, 'b', 'a', 'r', 0xc0, uint8_t(foo)});
  size_t end = m.size();

  uint8_t out[kMaxNameLength];
  size_t len = 0;
  CHECK(read_name(m, kHeaderSize, out, len) == foo);
  CHECK(Bytes(out, out + len) == wname("svc.cluster.local"));
  CHECK(read_name(m, foo, out, len) == bar);
  CHECK(Bytes(out, out + len) == wname("foo.svc.cluster.local"));
  CHECK(read_name(m, bar, out, len) == end);  // two jumps; returns where the first pointer ends
  CHECK(Bytes(out, out + len) == wname("bar.foo.svc.cluster.local"));
}

TEST_CASE("read_name rejects bad pointers", "[wire][names]") {
  uint8_t out[kMaxNameLength];
  size_t len = 0;
  SECTION("pointer to itself") {
    Bytes m = header(1, 0, 0, 1);
    add(m, {3, 'f', 'o', 'o', 0xc0, 16});
    CHECK(read_name(m, kHeaderSize, out, len) == 0);
  }
  SECTION("forward pointer") {
    Bytes m = header(1, 0, 0, 1);
    add(m, {0xc0, 14, 3, 'f', 'o', 'o', 0});
    CHECK(read_name(m, kHeaderSize, out, len) == 0);
    CHECK(read_name(m, 14, out, len) == 19);  // the target itself is fine
  }
  SECTION("loop through two names") {
    // At 12: "a" then a pointer forward to 16; at 16: a pointer back to 12.
    Bytes m = header(1, 0, 0, 1);
    add(m, {1, 'a', 0xc0, 16, 0xc0, 12});
    CHECK(read_name(m, 16, out, len) == 0);
    CHECK(read_name(m, 12, out, len) == 0);
  }
  SECTION("pointer cut by the end of the message") {
    Bytes m = header(1, 0, 0, 1);
    add(m, {3, 'f', 'o', 'o', 0xc0});
    CHECK(read_name(m, kHeaderSize, out, len) == 0);
  }
  SECTION("label running past the end") {
    Bytes m = header(1, 0, 0, 1);
    add(m, {9, 'f', 'o', 'o'});
    CHECK(read_name(m, kHeaderSize, out, len) == 0);
  }
  SECTION("label over 63") {
    Bytes m = header(1, 0, 0, 1);
    add(m, {0x40, 'x', 0});
    CHECK(read_name(m, kHeaderSize, out, len) == 0);
  }
  SECTION("too long once pointers are followed") {
    Bytes m = header(1, 0, 0, 1);
    size_t a = m.size();
    add(m, name_of_labels({63, 63}));  // 129 bytes
    size_t b = m.size();
    Bytes two = name_of_labels({63, 60});
    two.pop_back();
    add(m, two);
    add(m, {0xc0, uint8_t(a)});  // 64 + 61 + 129 = 254 bytes
    size_t c = m.size();
    add(m, {0xc0, uint8_t(b)});
    size_t d = m.size();
    add(m, {1, 'x', 0xc0, uint8_t(b)});  // 256 bytes
    REQUIRE(read_name(m, b, out, len) == c);
    CHECK(len == 254);
    CHECK(read_name(m, c, out, len) == d);
    CHECK(read_name(m, d, out, len) == 0);
  }
}

// ============================================================================================
// check_reply
// ============================================================================================

namespace {
Bytes reply_for(std::string_view name, uint16_t id = 0x4242, uint16_t qtype = kTypeA,
                uint16_t qclass = kClassIn, uint8_t hi = kFlagQr | kFlagRd) {
  Bytes m = header(id, hi, kFlagRa, 1, 1);
  add(m, wname(name));
  add16(m, qtype);
  add16(m, qclass);
  add_rr(m, {0xc0, 12}, qtype, 30, {10, 0, 0, 1});
  return m;
}
}  // namespace

TEST_CASE("check_reply", "[wire][check_reply]") {
  Bytes qname = wname("svc.ns.svc.cluster.local");
  auto check = [&](const Bytes& reply, bool exact_case = false) {
    return check_reply(reply, 0x4242, qname.data(), qname.size(), kTypeA, kClassIn, exact_case);
  };
  CHECK(check(reply_for("svc.ns.svc.cluster.local")) == ReplyCheck::kAccept);
  CHECK(check(reply_for("svc.ns.svc.cluster.local"), true) == ReplyCheck::kAccept);

  SECTION("wrong ID") {
    CHECK(check(reply_for("svc.ns.svc.cluster.local", 0x4243)) == ReplyCheck::kMismatch);
  }
  SECTION("QR=0") {
    CHECK(check(reply_for("svc.ns.svc.cluster.local", 0x4242, kTypeA, kClassIn, kFlagRd)) ==
          ReplyCheck::kMismatch);
  }
  SECTION("different question") {
    CHECK(check(reply_for("svd.ns.svc.cluster.local")) == ReplyCheck::kMismatch);
    CHECK(check(reply_for("ns.svc.cluster.local")) == ReplyCheck::kMismatch);
    CHECK(check(reply_for("svc.ns.svc.cluster.local.evil")) == ReplyCheck::kMismatch);
    CHECK(check(reply_for("svc.ns.svc.cluster.localx")) == ReplyCheck::kMismatch);
    CHECK(check(reply_for("svc.ns.svc.cluster.local", 0x4242, kTypeAaaa)) == ReplyCheck::kMismatch);
    CHECK(check(reply_for("svc.ns.svc.cluster.local", 0x4242, kTypeA, 3)) == ReplyCheck::kMismatch);
  }
  SECTION("QDCOUNT other than 1") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local");
    put16(&reply[kQdOffset], 0);
    CHECK(check(reply) == ReplyCheck::kMismatch);
  }
  SECTION("opcode other than QUERY") {
    Bytes reply =
        reply_for("svc.ns.svc.cluster.local", 0x4242, kTypeA, kClassIn, kFlagQr | uint8_t(4 << 3));
    CHECK(check(reply) == ReplyCheck::kMismatch);
  }
  SECTION("reply too short for the question") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local");
    reply.resize(kHeaderSize + qname.size() + 3);
    CHECK(check(reply) == ReplyCheck::kMismatch);
    reply.resize(5);
    CHECK(check(reply) == ReplyCheck::kMismatch);
  }
  SECTION("case differences") {
    Bytes reply = reply_for("SVC.ns.Svc.cluster.LOCAL");
    CHECK(check(reply) == ReplyCheck::kAccept);
    CHECK(check(reply, true) == ReplyCheck::kMismatch);
  }
  SECTION("TC=1") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local", 0x4242, kTypeA, kClassIn,
                            kFlagQr | kFlagRd | kFlagTc);
    CHECK(check(reply) == ReplyCheck::kTruncated);
    Bytes other =
        reply_for("other.cluster.local", 0x4242, kTypeA, kClassIn, kFlagQr | kFlagRd | kFlagTc);
    CHECK(check(other) == ReplyCheck::kMismatch);  // TC alone does not make it ours
    reply.pop_back();  // a record cut short: it is asked again over TCP all the same
    CHECK(check(reply) == ReplyCheck::kTruncated);
  }
  SECTION("an OPT record") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local");
    add_opt(reply, 1232);
    CHECK(check(reply) == ReplyCheck::kAccept);
  }
  SECTION("an extended RCODE") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local");
    add_opt(reply, 1232);
    reply[reply.size() - 6] = 1;  // BADVERS (16): NOERROR in the header
    CHECK(check(reply) == ReplyCheck::kBroken);
  }
  SECTION("records that do not walk could hide an extended RCODE") {
    Bytes reply = reply_for("svc.ns.svc.cluster.local");
    reply.pop_back();
    CHECK(check(reply) == ReplyCheck::kBroken);
    reply = reply_for("svc.ns.svc.cluster.local");
    add_opt(reply, 1232);
    add_opt(reply, 1232);
    reply[reply.size() - 6] = 1;  // in a second OPT, after a first without
    CHECK(check(reply) == ReplyCheck::kBroken);
  }
}

// ============================================================================================
// prepare_answer
// ============================================================================================

TEST_CASE("prepare_answer: positive TTL is the clamped minimum", "[wire][prepare]") {
  ReplySpec spec;
  TtlPolicy policy;  // 0..30, negative 5
  PreparedAnswer p;
  auto ttls = [&] {
    std::vector<uint32_t> out;
    for (uint16_t offset : p.ttl_offsets) out.push_back(get32(&p.wire[offset]));
    return out;
  };

  SECTION("within bounds") {
    spec.answer = {"svc.ns.svc.cluster.local. 25 IN A 10.0.0.1",
                   "svc.ns.svc.cluster.local. 20 IN A 10.0.0.2"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 20);
    CHECK_FALSE(p.negative);
    CHECK(p.rcode == kNoError);
    CHECK(ttls() == std::vector<uint32_t>{25, 20});
    // The offsets are exactly the records' TTL fields.
    std::vector<Rec> recs = records_of(p.wire);
    REQUIRE(recs.size() == p.ttl_offsets.size());
    for (size_t i = 0; i < recs.size(); ++i) CHECK(recs[i].ttl_offset == p.ttl_offsets[i]);
  }
  SECTION("above max_ttl") {
    spec.answer = {"svc.ns.svc.cluster.local. 3600 IN A 10.0.0.1",
                   "svc.ns.svc.cluster.local. 120 IN A 10.0.0.2"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 30);
    CHECK(ttls() == std::vector<uint32_t>{30, 30});
  }
  SECTION("below min_ttl") {
    policy.min_ttl = 10;
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                   "svc.ns.svc.cluster.local. 2 IN A 10.0.0.2",
                   "svc.ns.svc.cluster.local. 300 IN A 10.0.0.3"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 10);
    CHECK(ttls() == std::vector<uint32_t>{20, 10, 30});
  }
  SECTION("authority and additional records count too") {
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
    spec.authority = {"cluster.local. 15 IN NS ns.dns.cluster.local."};
    spec.additional = {"ns.dns.cluster.local. 7 IN A 10.96.0.10"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 7);
    CHECK(ttls() == std::vector<uint32_t>{20, 15, 7});
  }
  SECTION("zero TTL") {
    spec.answer = {"svc.ns.svc.cluster.local. 0 IN A 10.0.0.1"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 0);
    CHECK_FALSE(p.negative);
  }
}

TEST_CASE("prepare_answer: a TTL with the top bit set counts as zero", "[wire][prepare]") {
  ReplySpec spec;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                 "svc.ns.svc.cluster.local. 20 IN A 10.0.0.2"};
  Bytes reply = build_reply(spec);
  set_ttl(reply, 1, 0x80000001);
  TtlPolicy policy;
  PreparedAnswer p;
  REQUIRE(prepare_answer(reply, policy, kZone, p));
  CHECK(p.ttl == 0);
  CHECK(get32(&p.wire[p.ttl_offsets[0]]) == 20);
  CHECK(get32(&p.wire[p.ttl_offsets[1]]) == 0);

  policy.min_ttl = 5;
  REQUIRE(prepare_answer(reply, policy, kZone, p));
  CHECK(p.ttl == 5);  // zero, then raised to the floor; not 0x80000001 clamped to 30
}

TEST_CASE("prepare_answer strips OPT", "[wire][prepare][edns]") {
  ReplySpec spec;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
  PreparedAnswer p;
  SECTION("OPT last") {
    spec.edns = true;
    Bytes reply = build_reply(spec);
    REQUIRE(has_opt(reply));
    REQUIRE(prepare_answer(reply, TtlPolicy{}, kZone, p));
    spec.edns = false;
    CHECK(p.wire == build_reply(spec));  // byte for byte the reply without its OPT
    CHECK(get16(&p.wire[kArOffset]) == 0);
    CHECK(p.ttl_offsets.size() == 1);
  }
  SECTION("OPT before another additional record") {
    Bytes reply = build_reply(spec);
    add_opt(reply, 1232, 0, true);
    add_rr(reply, wname("ns.dns.cluster.local"), kTypeA, 10, {10, 96, 0, 10});
    bump(reply, kArOffset);
    REQUIRE(get16(&reply[kArOffset]) == 2);
    REQUIRE(prepare_answer(reply, TtlPolicy{}, kZone, p));
    CHECK(get16(&p.wire[kArOffset]) == 1);
    CHECK_FALSE(has_opt(p.wire));
    CHECK(section_of(p.wire, 0) == std::vector<std::string>{"svc.ns.svc.cluster.local. 1"});
    CHECK(section_of(p.wire, 2) == std::vector<std::string>{"ns.dns.cluster.local. 1"});
    CHECK(p.ttl_offsets.size() == 2);
    CHECK(p.ttl == 10);
    CHECK(ldns_parses(p.wire));
  }
  SECTION("two OPT records leave none behind") {
    Bytes reply = build_reply(spec);
    add_opt(reply, 1232);
    add_opt(reply, 1232);
    if (prepare_answer(reply, TtlPolicy{}, kZone, p)) {
      CHECK_FALSE(has_opt(p.wire));
      CHECK(p.ttl_offsets.size() == 1);
    }
  }
}

TEST_CASE("prepare_answer lower-cases the question", "[wire][prepare]") {
  ReplySpec spec;
  spec.qname = "SVC.Ns.svc.Cluster.LOCAL.";
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
  Bytes lowered = wname("svc.ns.svc.cluster.local");
  PreparedAnswer p;
  SECTION("kept as received") {
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
  }
  SECTION("rebuilt after dropping a record") {
    spec.answer.push_back("evil.example. 20 IN A 6.6.6.6");
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(get16(&p.wire[kAnOffset]) == 1);
  }
  CHECK(Bytes(p.wire.begin() + kHeaderSize, p.wire.begin() + kHeaderSize + lowered.size()) ==
        lowered);
  CHECK(p.ttl == 20);
}

TEST_CASE("prepare_answer keeps the upstream's header", "[wire][prepare]") {
  ReplySpec spec;
  spec.aa = true;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1", "evil.example. 20 IN A 6.6.6.6"};
  Bytes reply = build_reply(spec);
  PreparedAnswer p;
  REQUIRE(prepare_answer(reply, TtlPolicy{}, kZone, p));  // rebuilt through ldns
  CHECK(Bytes(p.wire.begin(), p.wire.begin() + 4) == Bytes(reply.begin(), reply.begin() + 4));
}

TEST_CASE("prepare_answer: negative answers", "[wire][prepare]") {
  ReplySpec spec;
  TtlPolicy policy;
  PreparedAnswer p;
  SECTION("NXDOMAIN with SOA: neg_ttl bounds it") {
    spec.rcode = kNxDomain;
    spec.authority = {kSoa};  // TTL 60, MINIMUM 30
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.rcode == kNxDomain);
    CHECK(p.ttl == 5);
    REQUIRE(p.ttl_offsets.size() == 1);
    CHECK(get32(&p.wire[p.ttl_offsets[0]]) == 5);  // the SOA's TTL follows
  }
  SECTION("NXDOMAIN with SOA: MINIMUM bounds it") {
    spec.rcode = kNxDomain;
    spec.authority = {kSoa};
    policy.neg_ttl = 100;
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 30);
    CHECK(get32(&p.wire[p.ttl_offsets[0]]) == 30);
  }
  SECTION("NXDOMAIN with SOA: the SOA's TTL bounds it") {
    spec.rcode = kNxDomain;
    spec.authority = {
        "cluster.local. 10 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 2 3 4 30"};
    policy.neg_ttl = 100;
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 10);
  }
  SECTION("negative answers ignore min_ttl") {
    spec.rcode = kNxDomain;
    spec.authority = {
        "cluster.local. 2 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 2 3 4 30"};
    policy.min_ttl = 10;
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.ttl == 2);
  }
  SECTION("NODATA with SOA") {
    spec.qtype = LDNS_RR_TYPE_AAAA;
    spec.authority = {kSoa};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.rcode == kNoError);
    CHECK(p.ttl == 5);
  }
  SECTION("NXDOMAIN without SOA is not cached") {
    spec.rcode = kNxDomain;
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.ttl == 0);
  }
  SECTION("NODATA without SOA is not cached") {
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.ttl == 0);
  }
  SECTION("an SOA outside the zone does not count") {
    spec.rcode = kNxDomain;
    spec.authority = {"example. 60 IN SOA ns.example. h.example. 1 2 3 4 30"};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.ttl == 0);
    CHECK(get16(&p.wire[kNsOffset]) == 0);
  }
  SECTION("a CNAME chain ending in NODATA is a denial: neg_ttl bounds the CNAMEs too") {
    spec.qtype = LDNS_RR_TYPE_AAAA;
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN CNAME web.ns.svc.cluster.local."};
    spec.authority = {kSoa};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(p.rcode == kNoError);
    CHECK(p.ttl == 5);
    REQUIRE(p.ttl_offsets.size() == 2);
    CHECK(get32(&p.wire[p.ttl_offsets[0]]) == 5);
    CHECK(get32(&p.wire[p.ttl_offsets[1]]) == 5);
  }
  SECTION("a CNAME chain without the SOA stays a positive answer") {
    spec.qtype = LDNS_RR_TYPE_AAAA;
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN CNAME web.ns.svc.cluster.local."};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK_FALSE(p.negative);
    CHECK(p.ttl == 20);
  }
  SECTION("a chain that reaches the asked type is positive, SOA or not") {
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN CNAME web.ns.svc.cluster.local.",
                   "web.ns.svc.cluster.local. 15 IN A 10.0.0.1"};
    spec.authority = {kSoa};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK_FALSE(p.negative);
    CHECK(p.ttl == 15);
  }
  SECTION("NODATA when every answer record was off the chain") {
    spec.answer = {"evil.example. 20 IN A 6.6.6.6"};
    spec.authority = {kSoa};
    REQUIRE(prepare_answer(build_reply(spec), policy, kZone, p));
    CHECK(p.negative);
    CHECK(get16(&p.wire[kAnOffset]) == 0);
    CHECK(p.ttl == 5);
  }
}

TEST_CASE("prepare_answer: an SOA TTL with the top bit set counts as zero", "[wire][prepare]") {
  ReplySpec spec;
  spec.rcode = kNxDomain;
  spec.authority = {kSoa};
  Bytes reply = build_reply(spec);
  set_ttl(reply, 0, 0x80000000);
  PreparedAnswer p;
  REQUIRE(prepare_answer(reply, TtlPolicy{}, kZone, p));
  CHECK(p.negative);
  CHECK(get32(&p.wire[p.ttl_offsets[0]]) == 0);
  CHECK(p.ttl == 0);  // RFC 2181 8: the SOA lives 0 s, so the denial may not be cached
}

TEST_CASE("prepare_answer: errors are not cached", "[wire][prepare]") {
  ReplySpec spec;
  PreparedAnswer p;
  for (uint8_t rcode : {uint8_t(kServFail), uint8_t(kRefused), uint8_t(kFormErr)}) {
    INFO("rcode " << int(rcode));
    spec.rcode = rcode;
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(p.rcode == rcode);
    CHECK_FALSE(p.negative);
    CHECK(p.ttl == 0);
  }
  SECTION("even with records and an SOA") {
    spec.rcode = kServFail;
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
    spec.authority = {kSoa};
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(p.ttl == 0);
  }
}

TEST_CASE("prepare_answer keeps the CNAME chain", "[wire][prepare]") {
  ReplySpec spec;
  spec.qname = "web.ns.svc.cluster.local.";
  PreparedAnswer p;
  SECTION("in order") {
    spec.answer = {"web.ns.svc.cluster.local. 20 IN CNAME a.ns.svc.cluster.local.",
                   "a.ns.svc.cluster.local. 20 IN CNAME B.ns.svc.cluster.local.",
                   "b.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                   "other.ns.svc.cluster.local. 20 IN A 10.0.0.9"};
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(section_of(p.wire, 0) == std::vector<std::string>{"web.ns.svc.cluster.local. 5",
                                                            "a.ns.svc.cluster.local. 5",
                                                            "b.ns.svc.cluster.local. 1"});
    CHECK(p.ttl_offsets.size() == 3);
  }
  SECTION("out of order") {
    spec.answer = {"b.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                   "a.ns.svc.cluster.local. 20 IN CNAME b.ns.svc.cluster.local.",
                   "web.ns.svc.cluster.local. 20 IN CNAME a.ns.svc.cluster.local."};
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(get16(&p.wire[kAnOffset]) == 3);
    CHECK(section_of(p.wire, 0).size() == 3);
    CHECK(p.ttl == 20);
  }
  SECTION("leaving the zone (ExternalName services)") {
    spec.answer = {"web.ns.svc.cluster.local. 20 IN CNAME cdn.example.",
                   "cdn.example. 20 IN A 192.0.2.1"};
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(section_of(p.wire, 0) ==
          std::vector<std::string>{"web.ns.svc.cluster.local. 5", "cdn.example. 1"});
  }
  SECTION("a CNAME off the chain does not extend it") {
    spec.answer = {"web.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                   "x.ns.svc.cluster.local. 20 IN CNAME evil.example.",
                   "evil.example. 20 IN A 6.6.6.6"};
    REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
    CHECK(section_of(p.wire, 0) == std::vector<std::string>{"web.ns.svc.cluster.local. 1"});
  }
}

TEST_CASE("prepare_answer drops answer records off the chain", "[wire][prepare]") {
  ReplySpec spec;
  spec.qname = "svc.cluster.local.";
  spec.answer = {"svc.cluster.local. 20 IN A 10.0.0.1", "evil.example. 20 IN A 6.6.6.6",
                 "svc.cluster.local. 20 IN A 10.0.0.2"};
  PreparedAnswer p;
  REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
  CHECK(get16(&p.wire[kAnOffset]) == 2);
  CHECK(section_of(p.wire, 0) ==
        std::vector<std::string>{"svc.cluster.local. 1", "svc.cluster.local. 1"});
  CHECK(p.ttl_offsets.size() == 2);
  CHECK(ldns_parses(p.wire));
}

TEST_CASE("prepare_answer drops authority and additional records outside the zone",
          "[wire][prepare]") {
  ReplySpec spec;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
  spec.authority = {"example. 20 IN NS ns.example.",
                    "cluster.local. 20 IN NS ns.dns.cluster.local."};
  spec.additional = {"ns.example. 20 IN A 6.6.6.6", "ns.dns.cluster.local. 20 IN A 10.96.0.10",
                     "xcluster.local. 20 IN A 6.6.6.7"};
  PreparedAnswer p;
  REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
  CHECK(section_of(p.wire, 0) == std::vector<std::string>{"svc.ns.svc.cluster.local. 1"});
  CHECK(section_of(p.wire, 1) == std::vector<std::string>{"cluster.local. 2"});
  CHECK(section_of(p.wire, 2) == std::vector<std::string>{"ns.dns.cluster.local. 1"});
  CHECK(p.ttl_offsets.size() == 3);
}

TEST_CASE("prepare_answer: an OPT outside the additional section cannot shift what is kept",
          "[wire][prepare][edns]") {
  Bytes reply = reply_start(2, 1, 1);
  add(reply, {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});  // OPT in the answer section
  add_rr(reply, {0xc0, 12}, kTypeA, 20, {10, 0, 0, 1});
  add_rr(reply, wname("example"), kTypeNs, 20, wname("ns.example"));
  add_rr(reply, wname("ns.dns.cluster.local"), kTypeA, 20, {10, 96, 0, 10});
  PreparedAnswer p;
  // Rejecting the reply is fine; if it is accepted, no OPT and nothing out of zone may survive.
  if (prepare_answer(reply, TtlPolicy{}, kZone, p)) {
    CHECK_FALSE(has_opt(p.wire));
    CHECK(section_of(p.wire, 0) == std::vector<std::string>{"a.cluster.local. 1"});
    CHECK(section_of(p.wire, 1).empty());
  }
}

TEST_CASE("prepare_answer: a TSIG before other additional records cannot shift what is kept",
          "[wire][prepare]") {
  Bytes reply = reply_start(1, 0, 4);
  add_rr(reply, {0xc0, 12}, kTypeA, 20, {10, 0, 0, 1});
  add_rr(reply, wname("key.cluster.local"), kTypeTsig, 0, {}, kClassAny);
  add_rr(reply, wname("g1.cluster.local"), kTypeA, 20, {10, 0, 0, 2});
  add_rr(reply, wname("evil.example"), kTypeA, 20, {6, 6, 6, 6});
  add_rr(reply, wname("g2.cluster.local"), kTypeA, 20, {10, 0, 0, 3});
  PreparedAnswer p;
  if (prepare_answer(reply, TtlPolicy{}, kZone, p)) {
    for (const Rec& r : records_of(p.wire)) {
      INFO(r.owner);
      CHECK(r.owner != "evil.example.");
      CHECK(r.type != kTypeTsig);
    }
  }
}

TEST_CASE("prepare_answer rejects malformed replies", "[wire][prepare]") {
  ReplySpec spec;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1"};
  spec.authority = {kSoa};
  Bytes good = build_reply(spec);
  PreparedAnswer p;
  REQUIRE(prepare_answer(good, TtlPolicy{}, kZone, p));

  SECTION("short header") {
    CHECK_FALSE(prepare_answer(std::span<const uint8_t>(good.data(), 11), TtlPolicy{}, kZone, p));
  }
  SECTION("no question") {
    Bytes m = header(1, kFlagQr, 0, 0);
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("question cut short") {
    Bytes m = good;
    m.resize(kHeaderSize + wname(spec.qname).size() + 2);
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("truncated rdata") {
    Bytes m = good;
    m.pop_back();
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("record header cut short") {
    std::vector<Rec> recs = records_of(good);
    Bytes m(good.begin(), good.begin() + long(recs[1].ttl_offset));
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("more records announced than present") {
    Bytes m = good;
    bump(m, kArOffset);
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("forward pointer in an owner") {
    Bytes m = header(1, kFlagQr, 0, 1, 1);
    add_question(m, wname("svc.cluster.local"), kTypeA);
    add_rr(m, {0xc0, uint8_t(m.size() + 2)}, kTypeA, 20, {10, 0, 0, 1});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("pointer loop in an owner") {
    Bytes m = header(1, kFlagQr, 0, 1, 1);
    add_question(m, wname("svc.cluster.local"), kTypeA);
    add_rr(m, {0xc0, uint8_t(m.size())}, kTypeA, 20, {10, 0, 0, 1});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("CNAME target with a bad pointer") {
    Bytes m = header(1, kFlagQr, 0, 1, 1);
    add_question(m, wname("svc.cluster.local"), kTypeA);
    add_rr(m, {0xc0, 12}, kTypeCname, 20, {0xc0, 0xff});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("SOA with trailing bytes in its rdata") {
    Bytes m = header(1, kFlagQr, kNxDomain, 1, 0, 1);
    add_question(m, wname("svc.cluster.local"), kTypeA);
    Bytes rdata = wname("ns.cluster.local");
    add(rdata, wname("h.cluster.local"));
    for (int i = 0; i < 5; ++i) add32(rdata, 30);
    add(rdata, {0});
    add_rr(m, wname("cluster.local"), kTypeSoa, 20, rdata);
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
    rdata.pop_back();
    rdata.pop_back();  // now 1 byte short
    Bytes short_soa = header(1, kFlagQr, kNxDomain, 1, 0, 1);
    add_question(short_soa, wname("svc.cluster.local"), kTypeA);
    add_rr(short_soa, wname("cluster.local"), kTypeSoa, 20, rdata);
    CHECK_FALSE(prepare_answer(short_soa, TtlPolicy{}, kZone, p));
  }
}

TEST_CASE("prepare_answer rejects a compressed question", "[wire][prepare]") {
  // The question's name is a pointer into the header (bytes 4-5 = 00 01 read as the root).
  // Nothing legitimate compresses the question; lower-casing it as an uncompressed name would
  // walk 192 bytes past it.
  Bytes m = header(1, kFlagQr, 0, 1, 1);
  add_question(m, {0xc0, 4}, kTypeTxt);
  Bytes txt = {199};
  txt.insert(txt.end(), 199, 'X');
  add_rr(m, {0xc0, 12}, kTypeTxt, 20, txt);
  PreparedAnswer p;
  bool ok = prepare_answer(m, TtlPolicy{}, wname("."), p);
  CHECK_FALSE(ok);
  if (ok) {
    CHECK(std::count(p.wire.begin(), p.wire.end(), 'X') == 199);  // rdata left alone
  }
}

namespace {

// A TTL whose bytes read as a label "b" and a pointer to the question's name: 0x0162c00c.
constexpr uint32_t kTtlNamedB = 0x0162c00c;

}  // namespace

TEST_CASE("prepare_answer refuses a kept record that RDLENGTH and its fields read two ways",
          "[wire][prepare]") {
  // Found by fuzz_reply: an A record whose RDLENGTH covers a whole record after its address.
  // By RDLENGTH the answer holds two a.cluster.local A records and an out-of-zone NS to drop;
  // ldns reads the address, then the hidden record as the second answer. The rebuild mapped
  // keep/drop onto ldns's records by index, so evil.example became a kept answer.
  auto reply_with = [](const Bytes& first_rdata) {
    Bytes m = reply_start(2, 1);
    add_rr(m, {0xc0, 12}, kTypeA, 20, first_rdata);
    add_rr(m, {0xc0, 12}, kTypeA, 20, {10, 0, 0, 2});
    add_rr(m, wname("example"), kTypeNs, 20, wname("ns.example"));
    return m;
  };
  Bytes two_ways = {10, 0, 0, 1};  // the address, then a whole record hidden in the same RDATA
  add_rr(two_ways, wname("evil.example"), kTypeA, 20, {6, 6, 6, 6});
  PreparedAnswer p;
  CHECK_FALSE(prepare_answer(reply_with(two_ways), TtlPolicy{}, kZone, p));
  // The same reply, well formed, is rebuilt without the NS.
  REQUIRE(prepare_answer(reply_with({10, 0, 0, 1}), TtlPolicy{}, kZone, p));
  CHECK(section_of(p.wire, 0) ==
        std::vector<std::string>{"a.cluster.local. 1", "a.cluster.local. 1"});
  CHECK(section_of(p.wire, 1).empty());
}

TEST_CASE("prepare_answer refuses names read through bytes it rewrites", "[wire][prepare]") {
  // Found by fuzz_reply: a compression pointer into a TTL field reads the TTL's bytes as labels.
  // Clamping (and, at every hit, ageing) the TTL then changes a name after it was checked.
  PreparedAnswer p;
  SECTION("an owner through a TTL") {
    // b.a.cluster.local lies in the zone, so the record is kept; once its TTL is clamped to 30
    // the same pointer reads the root, outside the zone.
    Bytes m = reply_start(1, 1);
    add_rr(m, {0xc0, 12}, kTypeA, kTtlNamedB, {10, 0, 0, 1});
    size_t ttl = m.size() - 10;
    add_rr(m, {0xc0, uint8_t(ttl)}, kTypeA, 20, {10, 0, 0, 2});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("a CNAME target through a TTL") {
    Bytes m = reply_start(2);
    size_t ttl = m.size() + 2 + 4;
    add_rr(m, {0xc0, 12}, kTypeCname, kTtlNamedB, {0xc0, uint8_t(ttl)});
    add_rr(m, wname("b.a.cluster.local"), kTypeA, 20, {10, 0, 0, 1});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("an MX exchange through a TTL") {
    Bytes m = reply_start(1);
    size_t ttl = m.size() + 2 + 4;
    add_rr(m, {0xc0, 12}, 15, kTtlNamedB, {0, 10, 0xc0, uint8_t(ttl)});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("an owner through the header") {
    // ARCOUNT's low byte reads as the root until render_answer adds the client's OPT.
    Bytes m = reply_start(0, 1);
    add_rr(m, {0xc0, 11}, kTypeA, 20, {10, 0, 0, 1});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, wname("."), p));
  }
  SECTION("an owner through the question's type") {
    Bytes m = reply_start(0, 1);
    add_rr(m, {0xc0, uint8_t(m.size() - 4)}, kTypeA, 20, {10, 0, 0, 1});
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, wname("."), p));
  }
  SECTION("pointers to names in RDATA are fine") {
    Bytes m = reply_start(1, 1, 1);
    add_rr(m, {0xc0, 12}, kTypeA, 20, {10, 0, 0, 1});
    add_rr(m, {0xc0, 14}, kTypeNs, 20, wname("ns.cluster.local"));
    size_t ns_name = m.size() - wname("ns.cluster.local").size();
    add_rr(m, {0xc0, uint8_t(ns_name)}, kTypeA, 20, {10, 96, 0, 10});
    REQUIRE(prepare_answer(m, TtlPolicy{}, kZone, p));
    CHECK(section_of(p.wire, 2) == std::vector<std::string>{"ns.cluster.local. 1"});
  }
}

TEST_CASE("prepare_answer wants RDATA names to fill their RDATA", "[wire][prepare]") {
  PreparedAnswer p;
  for (uint16_t type : {kTypeCname, kTypeNs, kTypePtr}) {
    INFO("type " << type);
    Bytes m = reply_start(1);
    Bytes rdata = wname("b.cluster.local");
    rdata.push_back(0);
    add_rr(m, {0xc0, 12}, type, 20, rdata);
    CHECK_FALSE(prepare_answer(m, TtlPolicy{}, kZone, p));
  }
  SECTION("MX and SRV: fixed fields, then the name") {
    Bytes mx = reply_start(1);
    add_rr(mx, {0xc0, 12}, 15, 20, {0, 10, 0xc0, 12});
    REQUIRE(prepare_answer(mx, TtlPolicy{}, kZone, p));
    Bytes short_mx = reply_start(1);
    add_rr(short_mx, {0xc0, 12}, 15, 20, {0xc0, 12});
    CHECK_FALSE(prepare_answer(short_mx, TtlPolicy{}, kZone, p));
    Bytes srv = reply_start(1);
    add_rr(srv, {0xc0, 12}, kTypeSrv, 20, {0, 0, 0, 10, 0, 53, 0xc0, 12});
    REQUIRE(prepare_answer(srv, TtlPolicy{}, kZone, p));
    Bytes short_srv = reply_start(1);
    add_rr(short_srv, {0xc0, 12}, kTypeSrv, 20, {0, 0, 0, 53, 0xc0, 12});
    CHECK_FALSE(prepare_answer(short_srv, TtlPolicy{}, kZone, p));
  }
}

// ============================================================================================
// render_answer
// ============================================================================================

namespace {

struct Stored {
  Bytes wire;
  std::vector<uint16_t> offsets;
};

// An upstream answer with AA and AD set and two A records (TTL 20 and 30), prepared.
Stored stored_answer(uint8_t rcode = kNoError) {
  ReplySpec spec;
  spec.aa = true;
  spec.ad = true;
  spec.rcode = rcode;
  if (rcode == kNoError) {
    spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                   "svc.ns.svc.cluster.local. 30 IN A 10.0.0.2"};
  } else {
    spec.authority = {kSoa};
  }
  PreparedAnswer p;
  REQUIRE(prepare_answer(build_reply(spec), TtlPolicy{}, kZone, p));
  REQUIRE(p.wire[2] & kFlagAa);
  REQUIRE(p.wire[3] & kFlagAd);
  return {p.wire, p.ttl_offsets};
}

const char* const kClientName = "SVC.ns.Svc.cluster.LOCAL";

Bytes client_query(bool edns = false, bool do_bit = false, uint8_t hi = kFlagRd,
                   uint8_t lo = kFlagCd) {
  Bytes m = make_query(kClientName, kTypeA, hi, lo, 0x9999);
  if (edns) add_opt(m, 4096, 0, do_bit);
  return m;
}

std::vector<uint32_t> ttls_at(const uint8_t* msg, const std::vector<uint16_t>& offsets) {
  std::vector<uint32_t> out;
  for (uint16_t offset : offsets) out.push_back(get32(msg + offset));
  return out;
}

}  // namespace

TEST_CASE("render_answer patches ID, flags and case", "[wire][render]") {
  Stored s = stored_answer();
  Bytes m = client_query();
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  uint8_t out[4096];
  size_t len = render_answer(s.wire, s.offsets, 0, 0, q, 512, out);
  REQUIRE(len == s.wire.size());
  CHECK(get16(out) == 0x9999);
  CHECK(out[2] == (kFlagQr | kFlagRd));             // AA cleared, RD echoed
  CHECK(out[3] == (kFlagRa | kFlagCd | kNoError));  // AD cleared, CD echoed
  Bytes client = wname(kClientName);
  CHECK(Bytes(out + kHeaderSize, out + kHeaderSize + client.size()) == client);
  // Everything after the question is the stored answer (TTLs unchanged at elapsed 0).
  CHECK(Bytes(out + q.question_end, out + len) ==
        Bytes(s.wire.begin() + long(q.question_end), s.wire.end()));
  CHECK(Bytes(out + 4, out + kHeaderSize) == Bytes(s.wire.begin() + 4, s.wire.begin() + 12));

  SECTION("without RD and CD") {
    Bytes plain = client_query(false, false, 0, 0);
    REQUIRE(parse_query(plain, q) == QueryCheck::kOk);
    REQUIRE(render_answer(s.wire, s.offsets, 0, 0, q, 512, out) == s.wire.size());
    CHECK(out[2] == kFlagQr);
    CHECK(out[3] == kFlagRa);
  }
}

TEST_CASE("render_answer keeps the rcode", "[wire][render]") {
  Stored s = stored_answer(kNxDomain);
  Bytes m = client_query();
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  uint8_t out[4096];
  REQUIRE(render_answer(s.wire, s.offsets, 0, 0, q, 512, out) == s.wire.size());
  CHECK(rcode_of(out) == kNxDomain);
  CHECK(out[3] == (kFlagRa | kFlagCd | kNxDomain));
}

TEST_CASE("render_answer counts TTLs down", "[wire][render]") {
  Stored s = stored_answer();
  REQUIRE(ttls_at(s.wire.data(), s.offsets) == std::vector<uint32_t>{20, 30});
  Bytes m = client_query();
  Query q;
  REQUIRE(parse_query(m, q) == QueryCheck::kOk);
  uint8_t out[4096];
  auto render = [&](uint32_t elapsed, uint32_t fixed_ttl) {
    REQUIRE(render_answer(s.wire, s.offsets, elapsed, fixed_ttl, q, 512, out) == s.wire.size());
    return ttls_at(out, s.offsets);
  };
  CHECK(render(0, 0) == std::vector<uint32_t>{20, 30});
  CHECK(render(5, 0) == std::vector<uint32_t>{15, 25});
  CHECK(render(20, 0) == std::vector<uint32_t>{0, 10});
  CHECK(render(25, 0) == std::vector<uint32_t>{0, 5});
  CHECK(render(1000, 0) == std::vector<uint32_t>{0, 0});
  CHECK(render(0xffffffff, 0) == std::vector<uint32_t>{0, 0});
  SECTION("fixed_ttl overrides") {
    CHECK(render(1000, 7) == std::vector<uint32_t>{7, 7});
    CHECK(render(3, 30) == std::vector<uint32_t>{30, 30});
  }
  CHECK(ttls_at(s.wire.data(), s.offsets) == std::vector<uint32_t>{20, 30});  // stored untouched
}

TEST_CASE("render_answer appends OPT for EDNS clients", "[wire][render][edns]") {
  Stored s = stored_answer();
  uint16_t arcount = get16(&s.wire[kArOffset]);
  uint8_t out[4096];
  Query q;
  for (bool do_bit : {false, true}) {
    INFO("DO " << do_bit);
    Bytes m = client_query(true, do_bit);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    size_t len = render_answer(s.wire, s.offsets, 0, 0, q, 4096, out);
    REQUIRE(len == s.wire.size() + kOptRecordSize);
    CHECK(get16(out + kArOffset) == arcount + 1);
    const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, uint8_t(do_bit ? 0x80 : 0), 0, 0, 0};
    CHECK(Bytes(out + s.wire.size(), out + len) == Bytes(std::begin(opt), std::end(opt)));
    CHECK(ldns_parses(Bytes(out, out + len)));
  }
}

TEST_CASE("render_answer truncates answers over the limit", "[wire][render]") {
  Stored s = stored_answer();
  uint8_t out[4096];
  Query q;
  Bytes client = wname(kClientName);
  size_t empty_len = kHeaderSize + client.size() + 4;
  auto check_tc = [&](size_t len, bool edns) {
    REQUIRE(len == empty_len + (edns ? kOptRecordSize : 0));
    CHECK(get16(out) == 0x9999);
    CHECK(out[2] == (kFlagQr | kFlagTc | kFlagRd));
    CHECK(rcode_of(out) == kNoError);
    CHECK(get16(out + kQdOffset) == 1);
    CHECK(get16(out + kAnOffset) == 0);
    CHECK(get16(out + kNsOffset) == 0);
    CHECK(get16(out + kArOffset) == (edns ? 1 : 0));
    CHECK(Bytes(out + kHeaderSize, out + kHeaderSize + client.size()) == client);
    CHECK(get16(out + kHeaderSize + client.size()) == kTypeA);
  };
  SECTION("no EDNS") {
    Bytes m = client_query();
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    CHECK(render_answer(s.wire, s.offsets, 0, 0, q, s.wire.size(), out) == s.wire.size());
    check_tc(render_answer(s.wire, s.offsets, 0, 0, q, s.wire.size() - 1, out), false);
  }
  SECTION("EDNS: the OPT counts against the limit") {
    Bytes m = client_query(true, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    size_t full = s.wire.size() + kOptRecordSize;
    CHECK(render_answer(s.wire, s.offsets, 0, 0, q, full, out) == full);
    check_tc(render_answer(s.wire, s.offsets, 0, 0, q, full - 1, out), true);
    CHECK(out[empty_len + 7] == 0x80);  // DO echoed in the TC answer's OPT
  }
  SECTION("output buffer smaller than the answer") {
    Bytes m = client_query();
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    check_tc(render_answer(s.wire, s.offsets, 0, 0, q, 65535,
                           std::span<uint8_t>(out, s.wire.size() - 1)),
             false);
  }
}

TEST_CASE("render_answer can keep the leading whole records that fit", "[wire][render]") {
  ReplySpec spec;
  spec.answer = {"svc.ns.svc.cluster.local. 20 IN A 10.0.0.1",
                 "svc.ns.svc.cluster.local. 30 IN A 10.0.0.2"};
  spec.authority = {"cluster.local. 40 IN NS ns.dns.cluster.local."};
  spec.additional = {"ns.dns.cluster.local. 50 IN A 10.0.0.53"};
  Bytes stored = build_reply(spec);
  std::vector<Rec> records = records_of(stored);
  REQUIRE(records.size() == 4);
  std::vector<uint16_t> offsets;
  for (const Rec& r : records) offsets.push_back(uint16_t(r.ttl_offset));
  uint8_t out[4096];
  Query q;
  for (bool edns : {false, true}) {
    Bytes m = client_query(edns, true);
    REQUIRE(parse_query(m, q) == QueryCheck::kOk);
    size_t opt_size = edns ? kOptRecordSize : 0;
    for (size_t limit = q.question_end + opt_size; limit <= stored.size() + opt_size; ++limit) {
      INFO("EDNS " << edns << ", limit " << limit);
      size_t len = render_answer(stored, offsets, 5, 0, q, limit, out, Overflow::kLeadingRecords);
      REQUIRE(len > 0);
      Bytes got(out, out + len);
      CHECK(ldns_parses(got));
      std::vector<Rec> kept = records_of(got);
      if (edns) {
        REQUIRE_FALSE(kept.empty());
        CHECK(kept.back().type == kTypeOpt);
        CHECK(out[len - 4] == 0x80);  // DO echoed
        kept.pop_back();
      }
      // As many records as fit, in order, each in its own section, TTLs counted down.
      size_t fitting = 0;
      for (uint16_t offset : offsets) {
        fitting += offset + 6u + get16(&stored[offset + 4]) + opt_size <= limit;
      }
      REQUIRE(kept.size() == fitting);
      for (size_t i = 0; i < kept.size(); ++i) {
        CHECK(kept[i].owner == records[i].owner);
        CHECK(kept[i].section == records[i].section);
        CHECK(kept[i].ttl == records[i].ttl - 5);
      }
      CHECK(len <= limit);
      CHECK(bool(out[2] & kFlagTc) == (kept.size() < records.size()));
      CHECK(get16(out) == 0x9999);
      CHECK(rcode_of(out) == kNoError);
    }
  }
}

TEST_CASE("prepare_answer drops bytes after the last record", "[wire]") {
  // Header (1 question, 1 answer), question a.cluster.local A IN, one A record, then junk.
  std::vector<uint8_t> reply = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0};
  const uint8_t name[] = {1,   'a', 7,   'c', 'l', 'u', 's', 't', 'e',
                          'r', 5,   'l', 'o', 'c', 'a', 'l', 0};
  reply.insert(reply.end(), name, name + sizeof name);
  reply.insert(reply.end(), {0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1});
  size_t clean = reply.size();
  reply.insert(reply.end(), {0xde, 0xad, 0xbe, 0xef});
  const uint8_t root = 0;
  readyns::wire::PreparedAnswer p;
  REQUIRE(readyns::wire::prepare_answer(reply, readyns::wire::TtlPolicy{}, {&root, 1}, p));
  CHECK(p.wire.size() == clean);
}
