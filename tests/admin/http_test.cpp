// The HTTP protocol without sockets: parsing, limits, routing, rendering, sessions, and garbage.
//
// Parsing whole, byte by byte, and pipelined.
#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>
#include <string>

#include "admin/http.hpp"
#include "exercise.hpp"

namespace readyns::admin {
namespace {

Router test_router() {
  Router r;
  r.add("/health", [](const Request&) { return Response{.body = "ok\n"}; });
  r.add("/echo", [](const Request& q) { return Response{.body = q.path + "?" + q.query}; });
  r.add("/boom", [](const Request&) -> Response { throw std::runtime_error("boom"); });
  return r;
}

TEST_CASE("a GET request parses into method, path, query and headers") {
  ParseOutcome o = parse_requests(
      "GET /metrics?name[]=x&y=1 HTTP/1.1\r\nHost: localhost:9153\r\nAccept: text/plain\r\n"
      "X-Empty:\r\nUser-Agent: Prometheus/2.45\r\n\r\n");
  REQUIRE(o.error_status == 0);
  REQUIRE(o.requests.size() == 1);
  const Request& r = o.requests[0];
  CHECK(r.method == "GET");
  CHECK(r.target == "/metrics?name[]=x&y=1");
  CHECK(r.path == "/metrics");
  CHECK(r.query == "name[]=x&y=1");
  CHECK(r.http_major == 1);
  CHECK(r.http_minor == 1);
  CHECK(r.keep_alive);
  REQUIRE(r.headers.size() == 4);
  CHECK(r.headers[2].first == "X-Empty");  // an empty value does not swallow the next header
  CHECK(r.headers[2].second.empty());
  REQUIRE(r.header("user-agent"));
  CHECK(*r.header("USER-AGENT") == "Prometheus/2.45");
  CHECK(r.header("cookie") == nullptr);
}

TEST_CASE("keep-alive follows the HTTP version and the Connection header") {
  auto keep = [](const char* text) {
    ParseOutcome o = parse_requests(text);
    REQUIRE(o.requests.size() == 1);
    return o.requests[0].keep_alive;
  };
  CHECK(keep("GET / HTTP/1.1\r\n\r\n"));
  CHECK_FALSE(keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
  CHECK_FALSE(keep("GET / HTTP/1.0\r\n\r\n"));
  CHECK(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  // An upgrade leaves HTTP: answered, then the connection closes.
  CHECK_FALSE(keep("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
}

TEST_CASE("an absolute-form target gives its path") {
  ParseOutcome o = parse_requests(
      "GET http://10.0.0.1:9153/ready HTTP/1.1\r\n\r\nGET http://10.0.0.1:9153 HTTP/1.1\r\n\r\n");
  REQUIRE(o.requests.size() == 2);
  CHECK(o.requests[0].path == "/ready");
  CHECK(o.requests[1].path == "/");
}

TEST_CASE("pipelined requests come out one at a time, in order") {
  std::string bytes =
      "GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
      "xyzGET /d HTTP/1.1\r\n\r\n";
  ParseOutcome o = parse_requests(bytes);
  REQUIRE(o.error_status == 0);
  REQUIRE(o.requests.size() == 4);
  CHECK(o.requests[0].path == "/a");
  CHECK(o.requests[1].method == "HEAD");
  CHECK(o.requests[2].path == "/c");
  CHECK(o.requests[3].path == "/d");
  CHECK(o.consumed == bytes.size());
}

TEST_CASE("a request fed byte by byte parses as it does whole") {
  std::string bytes =
      "GET /echo?q=1 HTTP/1.1\r\nHost: x\r\nX-Long-Header-Name: a value with spaces\r\n\r\n";
  RequestParser parser;
  size_t requests = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    RequestParser::Step step = parser.feed(std::string_view(bytes).substr(i, 1));
    REQUIRE(step.state != RequestParser::State::kError);
    REQUIRE(step.consumed == 1);
    if (step.state == RequestParser::State::kRequest) {
      ++requests;
      CHECK(i == bytes.size() - 1);
      CHECK(parser.request().path == "/echo");
      CHECK(parser.request().query == "q=1");
      REQUIRE(parser.request().headers.size() == 2);
      CHECK(parser.request().headers[1].first == "X-Long-Header-Name");
      CHECK(parser.request().headers[1].second == "a value with spaces");
    }
  }
  CHECK(requests == 1);
}

TEST_CASE("limits: header bytes and count give 431, a body gives 413") {
  Limits limits{.max_header_bytes = 256, .max_headers = 4, .max_body_bytes = 8};
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  CHECK(parse_requests(big, limits).error_status == 431);
  std::string long_url = "GET /" + std::string(300, 'u') + " HTTP/1.1\r\n\r\n";
  CHECK(parse_requests(long_url, limits).error_status == 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) many += "H" + std::to_string(i) + ": v\r\n";
  CHECK(parse_requests(many + "\r\n", limits).error_status == 431);
  CHECK(
      parse_requests("GET / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", limits).error_status ==
      413);
  CHECK(
      parse_requests("GET / HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678", limits).error_status ==
      0);
  // Chunked bodies count too.
  CHECK(parse_requests("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n"
                       "0123456789abcdef\r\n0\r\n\r\n",
                       limits)
            .error_status == 413);
  // http_parser's own limit (80 KiB) backs ours up when ours is set higher.
  Limits loose{.max_header_bytes = 1 << 20, .max_headers = 100000, .max_body_bytes = 0};
  std::string huge = "GET / HTTP/1.1\r\nX: " + std::string(100 * 1024, 'a') + "\r\n\r\n";
  CHECK(parse_requests(huge, loose).error_status == 431);
}

TEST_CASE("malformed requests give 400") {
  for (const char* bad :
       {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "BREW /pot HTTP/1.1\r\n\r\n",
        "GET / HTTP/9.x\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "GET /\x01 HTTP/1.1\r\n\r\n",
        "\r\n\r\nget / HTTP/1.1\r\n\r\n"}) {
    INFO(bad);
    ParseOutcome o = parse_requests(bad);
    CHECK(o.requests.empty());
    CHECK(o.error_status == 400);
  }
  // A good request, then garbage: the first is kept, then the error.
  ParseOutcome o = parse_requests("GET /a HTTP/1.1\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
  REQUIRE(o.requests.size() == 1);
  CHECK(o.error_status == 400);
}

TEST_CASE("after an error the parser stays failed") {
  RequestParser parser;
  CHECK(parser.feed("XYZZY\r\n").state == RequestParser::State::kError);
  CHECK(parser.feed("GET / HTTP/1.1\r\n\r\n").state == RequestParser::State::kError);
}

TEST_CASE("the router answers 200, 404, 405, HEAD and 500") {
  Router router = test_router();
  auto get = [&](const char* method, const char* path) {
    Request q;
    q.method = method;
    q.path = path;
    return router.dispatch(q);
  };
  CHECK(get("GET", "/health").status == 200);
  CHECK(get("GET", "/health").body == "ok\n");
  CHECK(get("HEAD", "/health").status == 200);
  CHECK(get("GET", "/nope").status == 404);
  Response post = get("POST", "/health");
  CHECK(post.status == 405);
  REQUIRE(post.headers.size() == 1);
  CHECK(post.headers[0] == std::pair<std::string, std::string>("Allow", "GET, HEAD"));
  CHECK(get("GET", "/boom").status == 500);
}

TEST_CASE("responses render exactly") {
  std::string out;
  render(Response{.body = "ok\n"}, {.keep_alive = true}, out);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\n"
        "ok\n");
  out.clear();
  render(
      Response{.status = 503, .body = "listeners not bound\n", .headers = {{"Retry-After", "1"}}},
      {.head = true, .keep_alive = false}, out);
  CHECK(out ==
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\n");
  out.clear();
  render(Response{.status = 431, .body = ""}, {.keep_alive = true, .http10 = true}, out);
  CHECK(out ==
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
        "charset=utf-8\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("a session answers pipelined requests in order and stops at Connection: close") {
  Router router = test_router();
  Session session(router);
  std::string out;
  CHECK(session.on_bytes("GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nHEAD /health HT",
                         out));
  CHECK(session.requests() == 2);
  CHECK(testing::count_responses(out) == 2);
  CHECK(out.find("200 OK") < out.find("404 Not Found"));
  out.clear();
  CHECK_FALSE(
      session.on_bytes("TP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n", out));
  CHECK(session.requests() == 3);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\n");
  out.clear();
  CHECK_FALSE(session.on_bytes("GET /health HTTP/1.1\r\n\r\n", out));  // closed: nothing more
  CHECK(out.empty());
}

TEST_CASE("a session answers an error with its status and closes") {
  Router router = test_router();
  Session session(router, Limits{.max_header_bytes = 64});
  std::string out;
  CHECK_FALSE(session.on_bytes(
      "GET /health HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: " + std::string(100, 'x') + "\r\n\r\n",
      out));
  CHECK(testing::count_responses(out) == 2);
  CHECK(out.find("HTTP/1.1 431 Request Header Fields Too Large\r\n") != std::string::npos);
  CHECK(out.ends_with("Connection: close\r\n\r\nRequest Header Fields Too Large\n"));
}

TEST_CASE("a session closes once its output passes the limit") {
  Router router = test_router();
  Session session(router);
  std::string out;
  std::string many;
  for (int i = 0; i < 100; ++i) many += "GET /health HTTP/1.1\r\n\r\n";
  CHECK_FALSE(session.on_bytes(many, out, 500));
  CHECK(session.requests() < 100);
  CHECK(out.size() < 500 + 200);
}

TEST_CASE("garbage and mutated requests never break the protocol's invariants") {
  std::mt19937 rng(20240611);
  const std::string seeds[] = {
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
      "HEAD /metrics?a=b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
      "POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "GET /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /x HTTP/1.1\r\n\r\n",
  };
  for (int round = 0; round < 20000; ++round) {
    std::string bytes;
    if (round % 4 == 0) {
      size_t n = rng() % 200;
      for (size_t i = 0; i < n; ++i) bytes.push_back(char(rng()));
    } else {
      bytes = seeds[rng() % std::size(seeds)];
      int mutations = 1 + int(rng() % 4);
      for (int m = 0; m < mutations && !bytes.empty(); ++m) {
        size_t at = rng() % bytes.size();
        switch (rng() % 4) {
          case 0:
            bytes[at] = char(rng());
            break;
          case 1:
            bytes.erase(at, 1 + rng() % 8);
            break;
          case 2:
            bytes.insert(at, 1, "\r\n: \0\t?/"[rng() % 8]);
            break;
          default:
            bytes.insert(at, bytes.substr(rng() % bytes.size(), rng() % 16));
            break;
        }
      }
    }
    testing::exercise(bytes);  // aborts on a broken invariant
  }
  SUCCEED();
}

}  // namespace
}  // namespace readyns::admin
