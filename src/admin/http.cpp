// HTTP/1.1 requests through http-parser (Debian's libhttp-parser), routing and rendering.
#include "admin/http.hpp"

#include <http_parser.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <exception>

namespace readyns::admin {
namespace {

// Each header line's ": " and CRLF, which the callbacks do not see.
constexpr size_t kHeaderLineOverhead = 4;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view reason_phrase(int status) {
  std::string_view text = http_status_str(static_cast<http_status>(status));
  return text == "<unknown>" ? "Unknown" : text;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (iequals(field, name)) return &value;
  }
  return nullptr;
}

struct RequestParser::Parser {
  http_parser parser;
};

// http_parser's C callbacks, with the RequestParser in parser->data.
struct RequestParser::Callbacks {
  static RequestParser& self(http_parser* p) { return *static_cast<RequestParser*>(p->data); }

  // Counts request-line and header bytes; past the limit the request is refused with 431.
  static bool charge_header(RequestParser& s, size_t n) {
    s.header_bytes_ += n;
    if (s.header_bytes_ <= s.limits_.max_header_bytes) return true;
    s.error_status_ = 431;
    return false;
  }

  static int on_message_begin(http_parser* p) {
    RequestParser& s = self(p);
    s.request_ = Request{};
    s.header_bytes_ = s.body_bytes_ = 0;
    s.in_value_ = false;
    return 0;
  }

  static int on_url(http_parser* p, const char* at, size_t n) {
    RequestParser& s = self(p);
    if (!charge_header(s, n)) return -1;
    s.request_.target.append(at, n);
    return 0;
  }

  static int on_header_field(http_parser* p, const char* at, size_t n) {
    RequestParser& s = self(p);
    if (s.request_.headers.empty() || s.in_value_) {
      if (s.request_.headers.size() == s.limits_.max_headers) {
        s.error_status_ = 431;
        return -1;
      }
      if (!charge_header(s, kHeaderLineOverhead)) return -1;
      s.request_.headers.emplace_back();
      s.in_value_ = false;
    }
    if (!charge_header(s, n)) return -1;
    s.request_.headers.back().first.append(at, n);
    return 0;
  }

  static int on_header_value(http_parser* p, const char* at, size_t n) {
    RequestParser& s = self(p);
    if (!charge_header(s, n)) return -1;
    s.in_value_ = true;
    s.request_.headers.back().second.append(at, n);
    return 0;
  }

  static int on_headers_complete(http_parser* p) {
    RequestParser& s = self(p);
    Request& r = s.request_;
    r.method = http_method_str(static_cast<http_method>(p->method));
    r.http_major = p->http_major;
    r.http_minor = p->http_minor;
    http_parser_url url;
    http_parser_url_init(&url);
    if (http_parser_parse_url(r.target.data(), r.target.size(), p->method == HTTP_CONNECT, &url) !=
        0) {
      s.error_status_ = 400;
      return -1;
    }
    auto field = [&](int f) {
      return (url.field_set & (1u << f))
                 ? r.target.substr(url.field_data[f].off, url.field_data[f].len)
                 : std::string();
    };
    r.path = field(UF_PATH);
    if (r.path.empty()) r.path = "/";
    r.query = field(UF_QUERY);
    return 0;
  }

  static int on_body(http_parser* p, const char*, size_t n) {
    RequestParser& s = self(p);
    s.body_bytes_ += n;  // the body is read past, never kept: no route takes one
    if (s.body_bytes_ <= s.limits_.max_body_bytes) return 0;
    s.error_status_ = 413;
    return -1;
  }

  static int on_message_complete(http_parser* p) {
    RequestParser& s = self(p);
    // An upgrade (or CONNECT) leaves HTTP behind: answer this request, then close.
    s.request_.keep_alive = http_should_keep_alive(p) != 0 && !p->upgrade;
    s.complete_ = true;
    http_parser_pause(p, 1);  // one request per feed: the caller answers before reading on
    return 0;
  }

  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings x;
      http_parser_settings_init(&x);
      x.on_message_begin = on_message_begin;
      x.on_url = on_url;
      x.on_header_field = on_header_field;
      x.on_header_value = on_header_value;
      x.on_headers_complete = on_headers_complete;
      x.on_body = on_body;
      x.on_message_complete = on_message_complete;
      return x;
    }();
    return s;
  }
};

RequestParser::RequestParser(Limits limits) : parser_(std::make_unique<Parser>()), limits_(limits) {
  http_parser_init(&parser_->parser, HTTP_REQUEST);
  parser_->parser.data = this;
}

RequestParser::~RequestParser() = default;

RequestParser::Step RequestParser::feed(std::string_view bytes) {
  if (failed_) return {.state = State::kError, .consumed = 0, .error_status = 400};
  if (bytes.empty()) return {};  // a zero-length execute would mean end of stream to http_parser
  http_parser* p = &parser_->parser;
  complete_ = false;
  size_t used = http_parser_execute(p, &Callbacks::settings(), bytes.data(), bytes.size());
  http_errno err = HTTP_PARSER_ERRNO(p);
  if (err == HPE_PAUSED && complete_) {
    http_parser_pause(p, 0);
    return {.state = State::kRequest, .consumed = used, .error_status = 0};
  }
  if (err == HPE_OK && used == bytes.size()) {
    return {.state = State::kNeedMore, .consumed = used, .error_status = 0};
  }
  failed_ = true;
  int status = error_status_ ? error_status_ : err == HPE_HEADER_OVERFLOW ? 431 : 400;
  error_status_ = status;
  return {.state = State::kError, .consumed = used, .error_status = status};
}

ParseOutcome parse_requests(std::string_view bytes, const Limits& limits) {
  ParseOutcome outcome;
  RequestParser parser(limits);
  while (!bytes.empty()) {
    RequestParser::Step step = parser.feed(bytes);
    outcome.consumed += step.consumed;
    bytes.remove_prefix(step.consumed);
    if (step.state == RequestParser::State::kNeedMore) break;
    if (step.state == RequestParser::State::kError) {
      outcome.error_status = step.error_status;
      break;
    }
    outcome.requests.push_back(parser.request());
    if (!parser.request().keep_alive) break;  // nothing may follow it on this connection
  }
  return outcome;
}

void Router::add(std::string path, Handler handler) {
  routes_[std::move(path)] = std::move(handler);
}

Response Router::dispatch(const Request& request) const {
  auto route = routes_.find(request.path);
  if (route == routes_.end()) return Response{.status = 404, .body = "not found\n"};
  if (request.method != "GET" && request.method != "HEAD") {
    return Response{
        .status = 405, .body = "method not allowed\n", .headers = {{"Allow", "GET, HEAD"}}};
  }
  try {
    return route->second(request);
  } catch (const std::exception& e) {
    spdlog::error("admin: handler for {} failed: {}", request.path, e.what());
  } catch (...) {
    spdlog::error("admin: handler for {} failed", request.path);
  }
  return Response{.status = 500, .body = "internal error\n"};
}

void render(const Response& response, const RenderOptions& options, std::string& out) {
  char number[24];
  auto append_number = [&](uint64_t n) {
    auto [end, ec] = std::to_chars(number, number + sizeof number, n);
    out.append(number, end);
  };
  out.append("HTTP/1.1 ");
  append_number(uint64_t(response.status));
  out.append(" ").append(reason_phrase(response.status)).append("\r\n");
  out.append("Content-Type: ").append(response.content_type).append("\r\n");
  out.append("Content-Length: ");
  append_number(response.body.size());
  out.append("\r\n");
  for (const auto& [name, value] : response.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!options.keep_alive) {
    out.append("Connection: close\r\n");
  } else if (options.http10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  if (!options.head) out.append(response.body);
}

Session::Session(const Router& router, Limits limits) : router_(router), parser_(limits) {}

bool Session::on_bytes(std::string_view bytes, std::string& out, size_t max_out) {
  while (!done_ && !bytes.empty()) {
    RequestParser::Step step = parser_.feed(bytes);
    bytes.remove_prefix(step.consumed);
    if (step.state == RequestParser::State::kNeedMore) break;
    if (step.state == RequestParser::State::kError) {
      Response error{.status = step.error_status,
                     .body = std::string(reason_phrase(step.error_status)) + "\n"};
      render(error, {.keep_alive = false}, out);
      done_ = true;
      break;
    }
    ++requests_;
    const Request& request = parser_.request();
    render(router_.dispatch(request),
           {.head = request.method == "HEAD",
            .keep_alive = request.keep_alive,
            .http10 = request.http_major == 1 && request.http_minor == 0},
           out);
    done_ = !request.keep_alive || out.size() > max_out;
  }
  return !done_;
}

}  // namespace readyns::admin
