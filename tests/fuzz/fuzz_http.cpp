// fuzz_http: the admin server's HTTP/1.1 protocol (src/admin/http.hpp) on arbitrary bytes.
//
// An admin::Session fed the whole stream at once and fed it in pieces must answer the same bytes;
// what admin::parse_requests() finds must respect the limits; every response must be well formed
// (status line, Content-Length matching the body, nothing after a closing response).
//
// Input: [limits byte][chunking seed byte][bytes from the client...]
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "admin/http.hpp"
#include "fuzz_common.hpp"

using namespace readyns;

namespace {

admin::Router make_router() {
  admin::Router router;
  router.add("/health", [](const admin::Request&) { return admin::Response{.body = "ok\n"}; });
  router.add("/ready", [](const admin::Request& r) {
    return admin::Response{.status = r.query.empty() ? 200 : 503, .body = "ready\n"};
  });
  router.add("/metrics", [](const admin::Request&) {
    return admin::Response{.body = std::string(3000, '#') + "\n",
                           .content_type = "text/plain; version=0.0.4",
                           .headers = {{"Cache-Control", "no-store"}}};
  });
  router.add("/throw", [](const admin::Request&) -> admin::Response {
    throw std::runtime_error("handler failed");
  });
  return router;
}

struct Parsed {
  int status = 0;
  bool close = false;
  size_t length = 0;
};

// Reads responses off `out` until it ends; every one must be complete and well formed.
std::vector<Parsed> read_responses(std::string_view out, const std::vector<bool>& heads) {
  std::vector<Parsed> all;
  while (!out.empty()) {
    FUZZ_CHECK(out.starts_with("HTTP/1.1 "));
    size_t end = out.find("\r\n\r\n");
    FUZZ_CHECK(end != std::string_view::npos);
    std::string_view head = out.substr(0, end + 2);
    Parsed p;
    auto [ptr, ec] = std::from_chars(head.data() + 9, head.data() + 12, p.status);
    FUZZ_CHECK(ec == std::errc() && ptr == head.data() + 12 && p.status >= 200 && p.status < 600);
    bool has_length = false;
    for (size_t line = head.find("\r\n") + 2; line < head.size();) {
      size_t eol = head.find("\r\n", line);
      std::string_view field = head.substr(line, eol - line);
      FUZZ_CHECK(field.find(": ") != std::string_view::npos);
      if (field.starts_with("Content-Length: ")) {
        FUZZ_CHECK(!has_length);
        has_length = true;
        auto r = std::from_chars(field.data() + 16, field.data() + field.size(), p.length);
        FUZZ_CHECK(r.ec == std::errc() && r.ptr == field.data() + field.size());
      }
      if (field == "Connection: close") p.close = true;
      line = eol + 2;
    }
    FUZZ_CHECK(has_length);
    out.remove_prefix(end + 4);
    bool head_request = all.size() < heads.size() && heads[all.size()];
    size_t body = head_request ? 0 : p.length;
    FUZZ_CHECK(out.size() >= body);
    out.remove_prefix(body);
    all.push_back(p);
    if (p.close) FUZZ_CHECK(out.empty());  // nothing after a response that closes
  }
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const admin::Router router = make_router();
  uint8_t limits_byte = data[0], seed = data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  admin::Limits limits;
  if (limits_byte & 1) limits.max_header_bytes = 64 + (limits_byte >> 2) * 8;
  if (limits_byte & 2) limits.max_headers = 1 + (limits_byte >> 4);
  if (limits_byte & 0x80) limits.max_body_bytes = 16;
  size_t max_out = (seed & 0x80) ? 4096 : SIZE_MAX;

  // What the requests are, parsed alone.
  admin::ParseOutcome parsed = admin::parse_requests(stream, limits);
  FUZZ_CHECK(parsed.consumed <= stream.size());
  FUZZ_CHECK(parsed.error_status == 0 || parsed.error_status == 400 || parsed.error_status == 413 ||
             parsed.error_status == 431);
  std::vector<bool> heads;
  for (size_t i = 0; i < parsed.requests.size(); ++i) {
    const admin::Request& r = parsed.requests[i];
    heads.push_back(r.method == "HEAD");
    FUZZ_CHECK(r.headers.size() <= limits.max_headers);
    size_t header_bytes = r.target.size();
    for (const auto& [name, value] : r.headers) header_bytes += name.size() + value.size() + 4;
    FUZZ_CHECK(header_bytes <= limits.max_header_bytes);
    FUZZ_CHECK(!r.path.empty());
    if (i + 1 < parsed.requests.size()) FUZZ_CHECK(r.keep_alive);  // nothing follows a close
  }

  // The whole stream at once.
  admin::Session whole(router, limits);
  std::string out_whole;
  bool open_whole = whole.on_bytes(stream, out_whole, max_out);

  // The same stream in pieces, as the socket might deliver it.
  admin::Session pieces(router, limits);
  std::string out_pieces;
  bool open_pieces = true;
  uint32_t state = seed | 1u;
  for (std::string_view rest = stream; open_pieces && !rest.empty();) {
    state = state * 1103515245u + 12345u;
    size_t n = std::min<size_t>(rest.size(), 1 + (state >> 16) % 97);
    open_pieces = pieces.on_bytes(rest.substr(0, n), out_pieces, max_out);
    rest.remove_prefix(n);
  }
  if (out_whole != out_pieces) {
    // Only the status of a final refusal may depend on where the pieces were cut: a request
    // line that is both too long and malformed is 431 if a piece ends before the bad byte
    // (http-parser hands over the target so far), else 400.
    size_t last_whole = out_whole.rfind("HTTP/1.1 "), last_pieces = out_pieces.rfind("HTTP/1.1 ");
    FUZZ_CHECK(last_whole == last_pieces && last_whole != std::string::npos);
    FUZZ_CHECK(out_whole.compare(0, last_whole, out_pieces, 0, last_pieces) == 0);
    for (const std::string* out : {&out_whole, &out_pieces}) {
      std::string_view status = std::string_view(*out).substr(last_whole + 9, 3);
      FUZZ_CHECK(status == "400" || status == "413" || status == "431");
    }
  }
  FUZZ_CHECK(open_whole == open_pieces);
  FUZZ_CHECK(whole.requests() == pieces.requests());

  std::vector<Parsed> responses = read_responses(out_whole, heads);
  // One response per request, and one more for the error that ended the stream, if any.
  if (max_out == SIZE_MAX) {
    FUZZ_CHECK(whole.requests() == parsed.requests.size());
    FUZZ_CHECK(responses.size() == parsed.requests.size() + (parsed.error_status ? 1 : 0));
    if (parsed.error_status) FUZZ_CHECK(responses.back().status == parsed.error_status);
  }
  if (!responses.empty() && responses.back().close) FUZZ_CHECK(!open_whole);
  return 0;
}
