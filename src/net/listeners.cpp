// Client-facing UDP and TCP sockets on a libuv loop.
#include "net/listeners.hpp"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "wire/message.hpp"

namespace readyns::net {
namespace {

constexpr size_t kUdpBatch = 32;                  // datagrams per recvmmsg and sendmmsg
constexpr size_t kMaxUdpQuery = 4096;             // larger datagrams are not queries: dropped
constexpr size_t kMaxQueuedWriteBytes = 1 << 20;  // a client that stops reading is cut off

struct WriteRequest {
  uv_write_t req;
  std::vector<uint8_t> bytes;
};

// Reads land in one buffer per thread: on_read copies what it keeps before returning.
void alloc_read_buffer(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
  static thread_local std::vector<char> scratch(64 * 1024);
  *buf = uv_buf_init(scratch.data(), unsigned(std::min(suggested, scratch.size())));
}

}  // namespace

int bind_socket(const Address& address, int type) {
  int fd = ::socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (::bind(fd, address.sa(), address.len()) != 0) {
    int err = -errno;
    ::close(fd);
    return err;
  }
  return fd;
}

int check_address_free(const Address& address, int type) {
  int fd = ::socket(address.family(), type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1;
  // Not for UDP: there SO_REUSEADDR would share the port with the very sockets looked for.
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  int result = ::bind(fd, address.sa(), address.len()) == 0 ? 0 : -errno;
  ::close(fd);
  return result;
}

// One received batch and the answers to it.
struct UdpListener::Batch {
  mmsghdr in[kUdpBatch];
  iovec in_vectors[kUdpBatch];
  sockaddr_storage in_peers[kUdpBatch];
  uint8_t queries[kUdpBatch][kMaxUdpQuery];

  size_t answers = 0;
  mmsghdr out[kUdpBatch];
  iovec out_vectors[kUdpBatch];
  sockaddr_storage out_peers[kUdpBatch];
  uint8_t bytes[kUdpBatch][UdpListener::kBatchedAnswerMax];
};

UdpListener::UdpListener(uv_loop_t* loop, int fd, QueryHandler& handler)
    : poll_(new uv_poll_t), fd_(fd), handler_(handler), batch_(std::make_unique<Batch>()) {
  Batch& b = *batch_;
  for (size_t i = 0; i < kUdpBatch; ++i) {
    b.in_vectors[i] = {b.queries[i], kMaxUdpQuery};
    b.in[i].msg_hdr = {};
    b.in[i].msg_hdr.msg_name = &b.in_peers[i];
    b.in[i].msg_hdr.msg_namelen = sizeof b.in_peers[i];
    b.in[i].msg_hdr.msg_iov = &b.in_vectors[i];
    b.in[i].msg_hdr.msg_iovlen = 1;
  }
  uv_poll_init(loop, poll_, fd);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* p, int status, int) {
    if (status == 0 && p->data) static_cast<UdpListener*>(p->data)->on_readable();
  });
}

UdpListener::~UdpListener() = default;

void UdpListener::on_readable() {
  Batch& b = *batch_;
  // A full batch may mean more is waiting: take a few more before yielding to the loop.
  for (int round = 0; round < 4 && !closed_; ++round) {
    int n = ::recvmmsg(fd_, b.in, kUdpBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    handler_.begin_batch();
    batching_ = true;
    for (int i = 0; i < n && !closed_; ++i) {
      if (b.in[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // no query is this big: drop it
      ReplyTo reply_to{.udp = this, .peer = reinterpret_cast<const sockaddr*>(&b.in_peers[i])};
      handler_.on_query({b.queries[i], b.in[i].msg_len}, reply_to);
    }
    for (int i = 0; i < n; ++i) b.in[i].msg_hdr.msg_namelen = sizeof b.in_peers[i];  // reused
    batching_ = false;
    handler_.end_batch();
    flush();
    if (size_t(n) < kUdpBatch) return;
  }
}

void UdpListener::send(const sockaddr* peer, std::span<const uint8_t> answer) {
  if (closed_) return;
  socklen_t peer_len = peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (!batching_ || answer.size() > kBatchedAnswerMax) {
    ::sendto(fd_, answer.data(), answer.size(), MSG_DONTWAIT, peer, peer_len);
    return;
  }
  Batch& b = *batch_;
  if (b.answers == kUdpBatch) flush();
  size_t i = b.answers++;
  std::memcpy(b.bytes[i], answer.data(), answer.size());
  std::memcpy(&b.out_peers[i], peer, peer_len);
  b.out_vectors[i] = {b.bytes[i], answer.size()};
  b.out[i].msg_hdr = {};
  b.out[i].msg_hdr.msg_name = &b.out_peers[i];
  b.out[i].msg_hdr.msg_namelen = peer_len;
  b.out[i].msg_hdr.msg_iov = &b.out_vectors[i];
  b.out[i].msg_hdr.msg_iovlen = 1;
}

void UdpListener::flush() {
  Batch& b = *batch_;
  for (size_t sent = 0; sent < b.answers;) {
    int n = ::sendmmsg(fd_, b.out + sent, unsigned(b.answers - sent), MSG_DONTWAIT);
    if (n <= 0) break;  // a full buffer drops the rest, as the network might
    sent += size_t(n);
  }
  b.answers = 0;
}

void UdpListener::close() {
  closed_ = true;
  poll_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  ::close(fd_);  // uv_poll_t does not own the socket
}

TcpListener::TcpListener(uv_loop_t* loop, int fd, QueryHandler& handler, TcpSettings settings,
                         ConnectionLimits& limits)
    : loop_(loop), handle_(new uv_tcp_t), handler_(handler), settings_(settings), limits_(limits) {
  uv_tcp_init(loop, handle_);
  handle_->data = this;
  uv_tcp_open(handle_, fd);
  uv_listen(reinterpret_cast<uv_stream_t*>(handle_), 1024, on_connection);
}

void TcpListener::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<TcpListener*>(server->data);
  if (status < 0 || !self) return;
  auto* session = new TcpSession(*self, self->loop_);
  int peer_len = sizeof session->peer_;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&session->stream_)) != 0 ||
      uv_tcp_getpeername(&session->stream_, reinterpret_cast<sockaddr*>(&session->peer_),
                         &peer_len) != 0) {
    return session->close();
  }
  session->client_ = ClientAddress::of(reinterpret_cast<const sockaddr*>(&session->peer_));
  if (self->limits_.admit(session->client_) != ConnectionLimits::Admit::kOk) {
    return session->close();  // over a limit: new connections are refused, existing ones served
  }
  session->counted_ = true;
  self->sessions_.push_back(session);
  session->start();
}

void TcpListener::close() {
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  for (TcpSession* s : std::vector<TcpSession*>(sessions_)) s->close();
}

TcpSession::TcpSession(TcpListener& listener, uv_loop_t* loop) : listener_(&listener) {
  uv_tcp_init(loop, &stream_);
  uv_timer_init(loop, &idle_);
  stream_.data = idle_.data = this;
}

void TcpSession::start() {  // peer_ is set: the listener asked for it to count the client
  uv_tcp_nodelay(&stream_, 1);
  reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&stream_), alloc_read_buffer, on_read);
  restart_idle_timer();
}

void TcpSession::restart_idle_timer() {
  uv_timer_start(
      &idle_,
      [](uv_timer_t* t) {
        auto* self = static_cast<TcpSession*>(t->data);
        // Answers still owed: the resolve deadline bounds them, so wait for those first.
        if (self->outstanding_ == 0) return self->close();
        self->restart_idle_timer();
      },
      listener_->settings_.idle_timeout_ms, 0);
}

void TcpSession::on_read(uv_stream_t* h, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<TcpSession*>(h->data);
  if (n < 0) return self->close();
  self->inbox_.insert(self->inbox_.end(), buf->base, buf->base + n);
  size_t used = 0;
  self->ref();  // a handler may answer at once, and an answer may close us: stay alive
  QueryHandler& handler = self->listener_->handler_;
  handler.begin_batch();
  while (self->inbox_.size() - used >= 2 && !self->closing_) {
    size_t len = wire::get16(&self->inbox_[used]);
    if (self->inbox_.size() - used - 2 < len) break;
    ++self->outstanding_;
    ReplyTo reply_to{
        .peer = self->peer_.ss_family ? reinterpret_cast<const sockaddr*>(&self->peer_) : nullptr,
        .sink = self};
    handler.on_query({&self->inbox_[used + 2], len}, reply_to);
    used += 2 + len;
    if (self->outstanding_ >= self->listener_->settings_.max_pipelined && self->reading_) {
      uv_read_stop(h);  // backpressure: resume when answers go out
      self->reading_ = false;
    }
  }
  handler.end_batch();
  self->inbox_.erase(self->inbox_.begin(), self->inbox_.begin() + used);
  self->unref();
}

void TcpSession::send(std::span<const uint8_t> answer) {
  if (closing_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&stream_);
  if (uv_stream_get_write_queue_size(stream) > kMaxQueuedWriteBytes) return close();
  auto* w = new WriteRequest{.req = {}, .bytes = std::vector<uint8_t>(2 + answer.size())};
  wire::put16(w->bytes.data(), uint16_t(answer.size()));
  std::memcpy(w->bytes.data() + 2, answer.data(), answer.size());
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), unsigned(w->bytes.size()));
  if (uv_write(&w->req, stream, &b, 1,
               [](uv_write_t* r, int) { delete reinterpret_cast<WriteRequest*>(r); }) != 0) {
    delete w;
    return close();
  }
  // Only an answer resets the idle timer: neither trickled bytes (slowloris) nor frames that get
  // none (too short to be a query) hold a connection open.
  restart_idle_timer();
  answered();
}

void TcpSession::abandon() {
  if (!closing_) answered();
}

void TcpSession::answered() {
  if (outstanding_ > 0) --outstanding_;
  if (!reading_ && outstanding_ < listener_->settings_.max_pipelined) {
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&stream_), alloc_read_buffer, on_read);
  }
}

void TcpSession::close() {
  if (closing_) return;
  closing_ = true;
  if (counted_) listener_->limits_.release(client_);
  auto& sessions = listener_->sessions_;
  sessions.erase(std::remove(sessions.begin(), sessions.end(), this), sessions.end());
  auto on_closed = [](uv_handle_t* h) {
    auto* self = static_cast<TcpSession*>(h->data);
    if (--self->open_handles_ == 0) self->unref();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&stream_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), on_closed);
}

void TcpSession::unref() {
  if (--refs_ == 0) delete this;
}

}  // namespace readyns::net
