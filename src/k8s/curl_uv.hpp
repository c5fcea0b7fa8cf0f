// libcurl's multi interface on a libuv loop, so HTTPS transfers run on the loop's thread.
//
// curl's sockets become uv_poll_t handles and its timeout a uv_timer_t, so the transfers need no
// thread of their own.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <functional>
#include <map>
#include <set>

namespace readyns::k8s {

class CurlUv {
 public:
  using Done = std::function<void(CURL* easy, CURLcode result)>;

  explicit CurlUv(uv_loop_t* loop);
  // close() must have completed (its callback run) before destruction.
  ~CurlUv();
  CurlUv(const CurlUv&) = delete;
  CurlUv& operator=(const CurlUv&) = delete;

  // Runs a transfer, taking ownership of `easy` and `headers` (freed after `done` returns). `done`
  // runs on the loop once it ends, never from inside a curl callback, so it may start others.
  void start(CURL* easy, curl_slist* headers, Done done);
  // Abandons every transfer without calling their `done`, and releases the loop's handles;
  // `on_closed` runs once libuv has let go of them all.
  void close(std::function<void()> on_closed);

 private:
  struct Poll {
    uv_poll_t handle;
    CurlUv* owner;
    curl_socket_t socket;
  };
  struct Transfer {
    curl_slist* headers;
    Done done;
  };

  static int on_socket(CURL* easy, curl_socket_t socket, int what, void* self, void* poll);
  static int on_timer_change(CURLM* multi, long timeout_ms, void* self);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_timeout(uv_timer_t* timer);
  void handle_closed();
  void close_poll(Poll* poll);
  void finish_transfers();
  void release(CURL* easy, Transfer& transfer);

  uv_loop_t* loop_;
  CURLM* multi_;
  uv_timer_t timer_;
  std::map<CURL*, Transfer> transfers_;
  std::set<Poll*> polls_;
  size_t closing_handles_ = 0;
  std::function<void()> on_closed_;
};

}  // namespace readyns::k8s
