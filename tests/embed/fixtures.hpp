// Test helpers for the embedding API: the caller's loop, knotd and the fake Kubernetes API server.
//
// The loop is the caller's own libuv loop; knotd serves the sample zones
// (tests/integration/harness.py); the fake API server is tests/k8s/fake_apiserver.py.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fake_apiserver.hpp"
#include "readyns/options.hpp"

namespace readyns::testing {

// The caller's loop: the test runs it, one turn at a time, until something holds.
class Loop {
 public:
  Loop() { uv_loop_init(&loop_); }
  ~Loop() {
    uv_run(&loop_, UV_RUN_DEFAULT);  // whatever is still closing
    uv_loop_close(&loop_);
  }
  uv_loop_t* get() { return &loop_; }
  // Runs the loop until `done()`, waking at least every 10 ms to ask; false after `limit`.
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
    uv_timer_t tick;
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 10, 10);
    auto deadline = std::chrono::steady_clock::now() + limit;
    bool ok = true;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ok = false;
        break;
      }
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // lets the tick's close finish before it leaves scope
    return ok;
  }
  // Runs the loop for `ms` whatever happens.
  void run_for(int ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    run_until([&] { return std::chrono::steady_clock::now() >= until; });
  }
  // Runs the loop until nothing is left on it (the resolver has closed); false if something is.
  bool drain() {
    for (int i = 0; i < 500; ++i) {
      if (uv_run(&loop_, UV_RUN_NOWAIT) == 0 && !uv_loop_alive(&loop_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

 private:
  uv_loop_t loop_;
};

// Only `upstream` is asked, so that a test's answers (and their timing) come from its own server.
inline Options forwarding_options(const std::string& upstream) {
  Options o;
  o.listen = {};
  o.upstreams = {upstream};
  o.kube = "off";
  o.log_level = "warn";
  return o;
}

// A port free for UDP and TCP on 127.0.0.1 (a DNS server needs both), as harness.free_port().
inline int free_port() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(u, reinterpret_cast<sockaddr*>(&a), &len);
    bool ok = bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int port = ntohs(a.sin_port);
    close(u);
    close(t);
    if (ok) return port;
  }
  FAIL("no free port");
  return 0;
}

// Runs argv, waits for it and returns its standard output; -1 status if it could not run.
inline std::string run_capture(std::vector<std::string> args, int& status) {
  pid_t pid;
  int out;
  int spawned = spawn_piped(std::move(args), pid, out);
  std::string text;
  char buf[256];
  ssize_t n;
  while ((n = read(out, buf, sizeof buf)) > 0) text.append(buf, size_t(n));
  close(out);
  status = -1;
  if (spawned == 0) waitpid(pid, &status, 0);
  return text;
}

// knotd serving the integration tests' sample zones (cluster.local, example.org).
class Knot {
 public:
  Knot() : port_(free_port()) {
    int status;
    std::string out = run_capture(
        {env_or("PYTHON", "/usr/bin/python3"), env_or("HARNESS", "tests/integration/harness.py"),
         "knot", dir_.path.string(), std::to_string(port_)},
        status);
    pid_ = std::atoi(out.c_str());
    if (status != 0 || pid_ <= 0) FAIL("knotd did not start: " << out);
  }
  ~Knot() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && kill(pid_, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// One endpoint of a slice: its address, conditions and optional hostname and zone.
struct SliceEndpoint {
  std::string address;
  bool ready = true;
  bool terminating = false;
  std::string hostname{};
  std::string zone{};
};

inline nlohmann::json slice(const std::string& name, const std::string& ns,
                            const std::string& service, const std::vector<SliceEndpoint>& endpoints,
                            bool headless = false,
                            nlohmann::json ports = nlohmann::json::array(
                                {{{"name", "http"}, {"protocol", "TCP"}, {"port", 8080}}})) {
  nlohmann::json list = nlohmann::json::array();
  for (const SliceEndpoint& e : endpoints) {
    nlohmann::json item = {{"addresses", {e.address}},
                           {"conditions",
                            {{"ready", e.ready},
                             {"serving", e.ready || e.terminating},
                             {"terminating", e.terminating}}}};
    if (!e.hostname.empty()) item["hostname"] = e.hostname;
    if (!e.zone.empty()) item["zone"] = e.zone;
    list.push_back(item);
  }
  nlohmann::json labels = {{"kubernetes.io/service-name", service}};
  if (headless) labels["service.kubernetes.io/headless"] = "";
  return {{"kind", "EndpointSlice"},
          {"apiVersion", "discovery.k8s.io/v1"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"addressType", "IPv4"},
          {"endpoints", list},
          {"ports", ports}};
}

}  // namespace readyns::testing
