// DNS messages as the embedding API sees them: queries built and answers read.
//
// A query is built from a name and type, and an answer read into readyns::Answer (records as text).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "readyns/resolver.hpp"

namespace readyns::embed {

// A recursive query (ID 0, RD, class IN, no EDNS) for `name` and `type`; empty if `name` is not
// a valid domain name.
std::vector<uint8_t> build_query(std::string_view name, uint16_t type);

// Reads an answer the worker rendered; kBadAnswer if it cannot.
Result<Answer> parse_answer(std::span<const uint8_t> wire);

// True for what Kubernetes allows as a Service or namespace name (an RFC 1123 label, any case).
bool is_kube_name(std::string_view text);

// Lower-cased ASCII.
std::string lowered(std::string_view text);

}  // namespace readyns::embed
