// The admin server's HTTP/1.1 protocol without sockets: parsing, routing and rendering.
//
// Requests are parsed by http-parser, routed, and responses rendered to bytes. Bytes in, bytes out,
// so a fuzzer can drive it without a loop.
//
//   admin::Router router;
//   router.add("/health", [](const admin::Request&) { return admin::Response{.body = "ok\n"}; });
//   admin::Session session(router);
//   std::string out;
//   bool keep_open = session.on_bytes("GET /health HTTP/1.1\r\n\r\n", out);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace readyns::admin {

struct Limits {
  size_t max_header_bytes = 8192;  // the target and header lines; beyond: 431 and close
  size_t max_headers = 64;         // header fields; beyond: 431 and close
  size_t max_body_bytes = 4096;    // GET and HEAD carry none; beyond: 413 and close
};

struct Request {
  std::string method;  // "GET", "HEAD", ...
  std::string target;  // the request-target as sent
  std::string path;    // its path, "/" when the target has none (absolute-form without a path)
  std::string query;   // after '?', without it
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  unsigned http_major = 1;
  unsigned http_minor = 1;
  bool keep_alive = false;  // the connection may carry another request after this one

  // The first header of that name (ASCII case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers = {};  // extra headers
};

// Parses one request at a time from a byte stream, so pipelined requests are answered in order.
class RequestParser {
 public:
  enum class State { kNeedMore, kRequest, kError };
  struct Step {
    State state = State::kNeedMore;
    size_t consumed = 0;   // bytes of the input used; feed the rest again after a request
    int error_status = 0;  // with kError: 400, 413 or 431
  };

  explicit RequestParser(Limits limits = {});
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses up to the end of the next request. After kRequest, request() holds it until the next
  // feed. After kError the stream is unusable: every later feed fails too.
  Step feed(std::string_view bytes);
  const Request& request() const { return request_; }

 private:
  struct Callbacks;
  struct Parser;
  std::unique_ptr<Parser> parser_;  // http_parser, kept out of this header
  Limits limits_;
  Request request_;
  size_t header_bytes_ = 0;
  size_t body_bytes_ = 0;
  bool in_value_ = false;  // the last header callback was a value: a field starts a new header
  bool complete_ = false;
  int error_status_ = 0;  // a callback's own verdict (431, 413) before http_parser's
  bool failed_ = false;
};

// Everything a byte string parses to: complete requests, then the error that stopped parsing.
struct ParseOutcome {
  std::vector<Request> requests;
  int error_status = 0;  // 0: no error (the rest, if any, is an incomplete request)
  size_t consumed = 0;
};
ParseOutcome parse_requests(std::string_view bytes, const Limits& limits = {});

// Handlers by exact path. GET and HEAD only; HEAD gets GET's headers without the body.
class Router {
 public:
  using Handler = std::function<Response(const Request&)>;
  void add(std::string path, Handler handler);
  // 404 for an unknown path, 405 for another method, 500 if the handler throws.
  Response dispatch(const Request& request) const;

 private:
  std::unordered_map<std::string, Handler> routes_;
};

struct RenderOptions {
  bool head = false;        // Content-Length of the body, but no body
  bool keep_alive = false;  // false: "Connection: close"
  bool http10 = false;      // an HTTP/1.0 client keeps the connection only if told so
};
// Appends the response's status line, headers and body to `out`.
void render(const Response& response, const RenderOptions& options, std::string& out);

// One connection's protocol: parses what arrives, answers each request in order, says when to
// close.
class Session {
 public:
  explicit Session(const Router& router, Limits limits = {});

  // Feeds received bytes and appends the responses to `out`. Returns false once the connection
  // must close after `out` is written: a request without keep-alive, an error (answered with
  // 400/413/431), or `out` grown past `max_out` (a client pipelining without reading).
  bool on_bytes(std::string_view bytes, std::string& out, size_t max_out = SIZE_MAX);
  // Complete requests seen so far.
  uint64_t requests() const { return requests_; }

 private:
  const Router& router_;
  RequestParser parser_;
  uint64_t requests_ = 0;
  bool done_ = false;
};

}  // namespace readyns::admin
