// Drives the HTTP protocol with arbitrary bytes and checks what must hold for any input.
//
// It is the body of the libFuzzer target and of the garbage test. A broken invariant aborts (a
// fuzzer finding).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/http.hpp"

// A broken invariant: say which, then abort (libFuzzer saves the input; Catch2 fails loudly).
#define ADMIN_HTTP_CHECK(cond)                                                            \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "invariant failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace readyns::admin::testing {

inline const Router& exercise_router() {
  static const Router router = [] {
    Router r;
    r.add("/health", [](const Request&) { return Response{.body = "ok\n"}; });
    r.add("/metrics", [](const Request& q) { return Response{.body = q.query + "\n"}; });
    return r;
  }();
  return router;
}

inline size_t count_responses(std::string_view out) {
  size_t n = 0;
  for (size_t at = out.find("HTTP/1.1 "); at != std::string_view::npos;
       at = out.find("HTTP/1.1 ", at + 1)) {
    ++n;
  }
  return n;
}

inline void exercise(std::string_view bytes) {
  ParseOutcome parsed = parse_requests(bytes);
  ADMIN_HTTP_CHECK(parsed.consumed <= bytes.size());

  // The same bytes whole and in two pieces must give the same answers: parsing is incremental.
  Session whole(exercise_router());
  std::string out_whole;
  bool open_whole = whole.on_bytes(bytes, out_whole);
  size_t cut = bytes.empty() ? 0 : static_cast<unsigned char>(bytes[0]) % bytes.size();
  Session split(exercise_router());
  std::string out_split;
  bool open_split = split.on_bytes(bytes.substr(0, cut), out_split);
  if (open_split) open_split = split.on_bytes(bytes.substr(cut), out_split);
  ADMIN_HTTP_CHECK(out_whole == out_split);
  ADMIN_HTTP_CHECK(open_whole == open_split);

  // One response per request, plus one for an error; every response is well formed.
  ADMIN_HTTP_CHECK(whole.requests() == parsed.requests.size());
  size_t expected = parsed.requests.size() + (parsed.error_status != 0 ? 1 : 0);
  ADMIN_HTTP_CHECK(count_responses(out_whole) >= expected);
  ADMIN_HTTP_CHECK(out_whole.empty() || out_whole.starts_with("HTTP/1.1 "));
  ADMIN_HTTP_CHECK(parsed.error_status == 0 || !open_whole);
}

}  // namespace readyns::admin::testing
