// Test helper: asks an EndpointTable a question as a client would and reads the answer with ldns.
#pragma once

// Without it, ldns/common.h defines true and false as the macros 1 and 0, and JSON built after
// this header would hold numbers where booleans were written.
#include <stdbool.h>

#include <ldns/ldns.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "k8s/endpoint_table.hpp"
#include "wire/message.hpp"

namespace readyns::k8s::testing {

struct Reply {
  bool answered = false;  // false: the table said "not mine"
  size_t size = 0;        // bytes on the wire
  int rcode = -1;
  bool tc = false;
  bool aa = false;
  bool has_opt = false;
  uint16_t id = 0;
  std::string question;                                    // the name as echoed, case kept
  std::vector<std::string> answer, authority, additional;  // "owner ttl TYPE rdata"
};

inline std::string rr_text(const ldns_rr* rr) {
  auto text = [](const ldns_rdf* rdf) {
    char* s = ldns_rdf2str(rdf);
    std::string out = s ? s : "";
    free(s);
    return out;
  };
  char* type = ldns_rr_type2str(ldns_rr_get_type(rr));
  std::string line = text(ldns_rr_owner(rr)) + " " + std::to_string(ldns_rr_ttl(rr)) + " " + type;
  free(type);
  for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i) line += " " + text(ldns_rr_rdf(rr, i));
  return line;
}

inline std::vector<std::string> section(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    out.push_back(rr_text(ldns_rr_list_rr(list, i)));
  }
  return out;
}

inline Reply ask(const EndpointTable& table, const std::string& name, uint16_t qtype,
                 size_t limit = wire::kMaxMessageSize, bool edns = false,
                 uint16_t qclass = wire::kClassIn) {
  std::vector<uint8_t> query(wire::kHeaderSize + wire::kMaxNameLength + 4 + wire::kOptRecordSize);
  wire::put16(&query[0], 0xbeef);
  query[2] = wire::kFlagRd;
  wire::put16(&query[4], 1);
  wire::put16(&query[10], edns ? 1 : 0);
  size_t len = wire::kHeaderSize;
  len += wire::name_from_text(name.data(), name.size(), &query[len], wire::kMaxNameLength);
  wire::put16(&query[len], qtype);
  wire::put16(&query[len + 2], qclass);
  len += 4;
  if (edns) {
    query[len] = 0;
    wire::put16(&query[len + 1], wire::kTypeOpt);
    wire::put16(&query[len + 3], 4096);
    len += wire::kOptRecordSize;
  }
  query.resize(len);
  wire::Query q;
  if (wire::parse_query(query, q) != wire::QueryCheck::kOk) return {};

  std::vector<uint8_t> out(wire::kMaxMessageSize);
  size_t n = table.answer(q, out, limit);
  Reply reply;
  if (n == 0) return reply;
  reply.answered = true;
  reply.size = n;
  ldns_pkt* parsed = nullptr;
  if (ldns_wire2pkt(&parsed, out.data(), n) != LDNS_STATUS_OK) return reply;
  std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)> pkt(parsed, ldns_pkt_free);
  reply.rcode = ldns_pkt_get_rcode(pkt.get());
  reply.tc = ldns_pkt_tc(pkt.get());
  reply.aa = ldns_pkt_aa(pkt.get());
  reply.has_opt = ldns_pkt_edns(pkt.get());
  reply.id = ldns_pkt_id(pkt.get());
  char* question = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0)));
  reply.question = question;
  free(question);
  reply.answer = section(ldns_pkt_answer(pkt.get()));
  reply.authority = section(ldns_pkt_authority(pkt.get()));
  reply.additional = section(ldns_pkt_additional(pkt.get()));
  return reply;
}

}  // namespace readyns::k8s::testing
