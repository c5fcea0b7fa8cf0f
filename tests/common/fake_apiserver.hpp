// Test helper: tests/k8s/fake_apiserver.py over HTTPS, for the k8s watcher and embedding tests.
//
// It has a CA, a certificate for 127.0.0.1 and a token file of its own.
#pragma once

#include <curl/curl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace readyns::testing {

inline std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char pattern[] = "/tmp/readyns-test-XXXXXX";
    REQUIRE(mkdtemp(pattern));
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const char* name) const { return (path / name).string(); }
};

inline void write_file(const std::string& path, const std::string& text) {
  std::string temp = path + ".new";
  std::ofstream(temp) << text;
  std::filesystem::rename(temp, path);  // whole or not at all, as the kubelet swaps tokens
}

// Starts argv with its standard output on a pipe, whose read end goes to `out`; posix_spawn's
// result, so that each caller decides whether a program that cannot start fails the test.
inline int spawn_piped(std::vector<std::string> args, pid_t& pid, int& out) {
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);  // else the reader never sees end of file
  out = pipe_fds[0];
  return spawned;
}

inline size_t append_to_string(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// The fake API server, accepting "token-1" (also what token_file() holds at first), and its
// control port for the test to change what it serves.
class FakeApi {
 public:
  FakeApi() {
    std::string d = dir_.path.string(), openssl = env_or("OPENSSL", "openssl");
    std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd '" + d + "'; " + openssl + " req -x509" + key +
        " -keyout ca.key -out ca.crt -days 1 -subj /CN=readyns-test-ca; " + openssl + " req" + key +
        " -keyout server.key -out server.csr -subj /CN=127.0.0.1; " +
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.cnf; " + openssl +
        " x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt"
        " -days 1 -extfile san.cnf";
    std::string command = "(" + script + ") >'" + d + "/openssl.log' 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    write_file(token_file(), "token-1\n");

    int out;
    int spawned = spawn_piped(
        {env_or("PYTHON", "/usr/bin/python3"),
         env_or("FAKE_APISERVER", "tests/k8s/fake_apiserver.py"), "--cert", dir_.file("server.crt"),
         "--key", dir_.file("server.key"), "--token", "token-1"},
        pid_, out);
    REQUIRE(spawned == 0);
    FILE* lines = fdopen(out, "r");
    char line[128] = {};
    bool ready = fgets(line, sizeof line, lines) != nullptr &&
                 std::sscanf(line, "READY %d %d", &api_port_, &control_port_) == 2;
    fclose(lines);
    if (!ready) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      FAIL("the fake API server did not start: " << line);
    }
  }
  ~FakeApi() {
    call("POST", "/shutdown");
    waitpid(pid_, nullptr, 0);
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(api_port_); }
  std::string ca_file() const { return dir_.file("ca.crt"); }
  std::string token_file() const { return dir_.file("token"); }

  nlohmann::json call(const char* method, const std::string& path,
                      const nlohmann::json& body = nlohmann::json::object()) {
    CURL* easy = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(control_port_) + path;
    std::string sent = body.dump(), received;
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    if (std::string(method) == "POST") curl_easy_setopt(easy, CURLOPT_POSTFIELDS, sent.c_str());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &append_to_string);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode result = curl_easy_perform(easy);
    curl_easy_cleanup(easy);
    if (result != CURLE_OK) return nlohmann::json::object();
    return nlohmann::json::parse(received, nullptr, false);
  }
  nlohmann::json state() { return call("GET", "/state"); }
  int counter(const char* name) { return state().value(name, -1); }
  // A silent event changes what a list returns without watchers seeing it: one they missed.
  int push(const std::string& type, const nlohmann::json& object, bool silent = false) {
    return call("POST", "/event", {{"type", type}, {"object", object}, {"silent", silent}})
        .value("version", -1);
  }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int api_port_ = 0, control_port_ = 0;
};

}  // namespace readyns::testing
