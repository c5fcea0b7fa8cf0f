// Building queries on raw wire bytes, and reading answers with ldns into records as text.
#include "embed/dns.hpp"

// Without it, ldns/common.h defines true and false as macros.
#include <stdbool.h>

#include <ldns/ldns.h>

#include <memory>

#include "wire/message.hpp"

namespace readyns::embed {
namespace {

std::string rdf_text(const ldns_rdf* rdf) {
  char* text = rdf ? ldns_rdf2str(rdf) : nullptr;
  std::string out = text ? text : "";
  free(text);
  return out;
}

std::vector<Record> records_of(const ldns_rr_list* list) {
  std::vector<Record> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    Record record{.name = rdf_text(ldns_rr_owner(rr)),
                  .type = uint16_t(ldns_rr_get_type(rr)),
                  .ttl = ldns_rr_ttl(rr),
                  .data = {}};
    for (size_t j = 0; j < ldns_rr_rd_count(rr); ++j) {
      if (j) record.data.push_back(' ');
      record.data += rdf_text(ldns_rr_rdf(rr, j));
    }
    out.push_back(std::move(record));
  }
  return out;
}

}  // namespace

std::vector<uint8_t> build_query(std::string_view name, uint16_t type) {
  uint8_t qname[wire::kMaxNameLength];
  size_t len =
      name.empty() ? 0 : wire::name_from_text(name.data(), name.size(), qname, sizeof qname);
  if (len == 0) return {};
  std::vector<uint8_t> query(wire::kHeaderSize + len + 4);
  query[2] = wire::kFlagRd;
  wire::put16(&query[4], 1);
  std::copy(qname, qname + len, query.begin() + wire::kHeaderSize);
  wire::put16(&query[wire::kHeaderSize + len], type);
  wire::put16(&query[wire::kHeaderSize + len + 2], wire::kClassIn);
  return query;
}

Result<Answer> parse_answer(std::span<const uint8_t> wire) {
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, wire.data(), wire.size()) != LDNS_STATUS_OK) {
    return Error{Errc::kBadAnswer,
                 "an answer ldns cannot read (" + std::to_string(wire.size()) + " bytes)"};
  }
  std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)> pkt(raw, &ldns_pkt_free);
  return Answer{.rcode = int(ldns_pkt_get_rcode(pkt.get())),
                .records = records_of(ldns_pkt_answer(pkt.get())),
                .additional = records_of(ldns_pkt_additional(pkt.get()))};
}

bool is_kube_name(std::string_view text) {
  if (text.empty() || text.size() > 63 || text.front() == '-' || text.back() == '-') return false;
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c | 0x20);
  }
  return out;
}

}  // namespace readyns::embed
