// The curl-on-libuv glue, after curl's docs/examples/multi-uv.c.
//
// curl says which sockets to watch and when to time out; libuv says when a socket is ready;
// curl_multi_socket_action joins them.
#include "k8s/curl_uv.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <utility>

namespace readyns::k8s {

CurlUv::CurlUv(uv_loop_t* loop) : loop_(loop), multi_(curl_multi_init()) {
  if (!multi_) {
    spdlog::critical("k8s: curl_multi_init failed");
    std::abort();
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlUv::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlUv::on_timer_change);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

CurlUv::~CurlUv() = default;

void CurlUv::start(CURL* easy, curl_slist* headers, Done done) {
  transfers_.emplace(easy, Transfer{headers, std::move(done)});
  curl_multi_add_handle(multi_, easy);  // its timer callback then schedules the first step
}

void CurlUv::release(CURL* easy, Transfer& transfer) {
  curl_easy_cleanup(easy);
  curl_slist_free_all(transfer.headers);
}

void CurlUv::close(std::function<void()> on_closed) {
  on_closed_ = std::move(on_closed);
  for (auto& [easy, transfer] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    release(easy, transfer);
  }
  transfers_.clear();
  // Cleaning up may still report sockets removed; with multi_ null they just close their polls.
  curl_multi_cleanup(std::exchange(multi_, nullptr));
  while (!polls_.empty()) close_poll(*polls_.begin());
  ++closing_handles_;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
           [](uv_handle_t* handle) { static_cast<CurlUv*>(handle->data)->handle_closed(); });
}

void CurlUv::handle_closed() {
  if (--closing_handles_ == 0 && !multi_ && on_closed_) std::exchange(on_closed_, nullptr)();
}

void CurlUv::close_poll(Poll* poll) {
  polls_.erase(poll);
  uv_poll_stop(&poll->handle);
  ++closing_handles_;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle), [](uv_handle_t* handle) {
    Poll* closed = reinterpret_cast<Poll*>(handle);
    CurlUv* self = closed->owner;
    delete closed;
    self->handle_closed();
  });
}

int CurlUv::on_socket(CURL*, curl_socket_t socket, int what, void* self_ptr, void* poll_ptr) {
  CurlUv* self = static_cast<CurlUv*>(self_ptr);
  Poll* poll = static_cast<Poll*>(poll_ptr);
  if (what == CURL_POLL_REMOVE) {
    if (poll) {
      if (self->multi_) curl_multi_assign(self->multi_, socket, nullptr);
      self->close_poll(poll);
    }
    return 0;
  }
  if (!self->multi_) return 0;  // being cleaned up
  if (!poll) {
    poll = new Poll{.handle = {}, .owner = self, .socket = socket};
    uv_poll_init_socket(self->loop_, &poll->handle, socket);
    self->polls_.insert(poll);
    curl_multi_assign(self->multi_, socket, poll);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&poll->handle, events, &CurlUv::on_poll);
  return 0;
}

int CurlUv::on_timer_change(CURLM*, long timeout_ms, void* self_ptr) {
  CurlUv* self = static_cast<CurlUv*>(self_ptr);
  if (timeout_ms < 0) {
    uv_timer_stop(&self->timer_);
  } else {
    // Even a 0 ms timeout goes through the loop: curl must not be re-entered from this callback.
    uv_timer_start(&self->timer_, &CurlUv::on_timeout, uint64_t(timeout_ms), 0);
  }
  return 0;
}

void CurlUv::on_poll(uv_poll_t* handle, int status, int events) {
  Poll* poll = reinterpret_cast<Poll*>(handle);
  CurlUv* self = poll->owner;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  int running = 0;
  curl_multi_socket_action(self->multi_, poll->socket, flags, &running);
  self->finish_transfers();
}

void CurlUv::on_timeout(uv_timer_t* timer) {
  CurlUv* self = static_cast<CurlUv*>(timer->data);
  int running = 0;
  curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  self->finish_transfers();
}

void CurlUv::finish_transfers() {
  int queued = 0;
  // `done` may close() everything, after which multi_ is null and nothing more is read.
  while (CURLMsg* msg = multi_ ? curl_multi_info_read(multi_, &queued) : nullptr) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    curl_multi_remove_handle(multi_, easy);
    auto it = transfers_.find(easy);
    Transfer transfer = std::move(it->second);
    transfers_.erase(it);
    transfer.done(easy, result);
    release(easy, transfer);
  }
}

}  // namespace readyns::k8s
