// Client-facing sockets on a libuv loop: a UDP listener and a TCP listener with its sessions.
//
// TCP sessions follow RFC 7766: several pipelined queries per connection, answered as they
// complete, idle timeout. Both hand each query to a QueryHandler with a ReplyTo that says where its
// answer goes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "net/address.hpp"
#include "net/connection_limits.hpp"

namespace readyns::net {

class UdpListener;
class TcpSession;

// A client that takes its answers one at a time and may go away before they come: a TCP session,
// or a caller inside the process. Whoever keeps one past on_query() holds a reference.
class AnswerSink {
 public:
  virtual void send(std::span<const uint8_t> answer) = 0;
  // An answer that will never come (the query was dropped).
  virtual void abandon() = 0;
  virtual void ref() = 0;
  virtual void unref() = 0;
  virtual bool open() const = 0;

 protected:
  ~AnswerSink() = default;
};

// Where an answer goes: a UDP peer through a listener, or a sink.
struct ReplyTo {
  UdpListener* udp = nullptr;
  // The client (a TCP session's too; none for a caller in the process). Valid only during
  // on_query; copy it to keep it.
  const sockaddr* peer = nullptr;
  AnswerSink* sink = nullptr;
};

class QueryHandler {
 public:
  // Listeners hand over the queries of one read (a recvmmsg batch, a TCP read) between these;
  // UDP answers given in between are held until end_batch() has returned, then go out together,
  // so they can be timed together.
  virtual void begin_batch() = 0;
  virtual void end_batch() = 0;
  virtual void on_query(std::span<const uint8_t> msg, const ReplyTo& reply_to) = 0;

 protected:
  ~QueryHandler() = default;
};

// How many connections there may be is the shared ConnectionLimits' business.
struct TcpSettings {
  uint32_t idle_timeout_ms = 10000;  // no answer for this long, none owed: close (RFC 7766 6.2.3)
  unsigned max_pipelined = 100;      // unanswered queries; beyond, stop reading the connection
};

// Binds a socket with SO_REUSEPORT so each worker can own one on the same address.
// Returns the fd or a negative errno.
int bind_socket(const Address& address, int type);

// 0 if nothing else is bound on the address, or a negative errno (-EADDRINUSE): SO_REUSEPORT
// would let a second program on the port quietly take half its queries, so look first, with a
// socket that shares nothing.
int check_address_free(const Address& address, int type);

// Receives a batch with one recvmmsg when the loop says the socket is readable, and answers it
// with one sendmmsg: libuv's own UDP reading costs an extra syscall per wake-up. The handler's
// end_batch() comes before that sendmmsg.
class UdpListener {
 public:
  UdpListener(uv_loop_t* loop, int fd, QueryHandler& handler);
  ~UdpListener();
  // Sends an answer, batched while a received batch is being handled. A full socket buffer
  // drops it, as the network might (the client retries).
  void send(const sockaddr* peer, std::span<const uint8_t> answer);
  // Whether send() would hold an answer of this size for the batch's sendmmsg.
  bool holds(size_t answer_size) const { return batching_ && answer_size <= kBatchedAnswerMax; }
  void close();

 private:
  struct Batch;
  void on_readable();
  void flush();

  static constexpr size_t kBatchedAnswerMax = 4096;  // larger answers go out on their own

  uv_poll_t* poll_;
  int fd_;
  QueryHandler& handler_;
  std::unique_ptr<Batch> batch_;
  bool closed_ = false;
  bool batching_ = false;  // inside a received batch: answers wait for flush()
};

class TcpListener {
 public:
  TcpListener(uv_loop_t* loop, int fd, QueryHandler& handler, TcpSettings settings,
              ConnectionLimits& limits);
  void close();  // stops accepting and closes every session
  size_t sessions() const { return sessions_.size(); }

 private:
  friend class TcpSession;
  static void on_connection(uv_stream_t* server, int status);
  uv_loop_t* loop_;
  uv_tcp_t* handle_;
  QueryHandler& handler_;
  TcpSettings settings_;
  ConnectionLimits& limits_;
  std::vector<TcpSession*> sessions_;
};

class TcpSession final : public AnswerSink {
 public:
  // Queues a length-prefixed answer; ignored once the connection is gone.
  void send(std::span<const uint8_t> answer) override;
  // Frees the pipelining slot of a query that gets no answer.
  void abandon() override;
  void ref() override { ++refs_; }
  void unref() override;
  bool open() const override { return !closing_; }

 private:
  friend class TcpListener;
  TcpSession(TcpListener& listener, uv_loop_t* loop);
  void start();
  void close();
  void answered();
  void restart_idle_timer();
  static void on_read(uv_stream_t* h, ssize_t n, const uv_buf_t* buf);

  TcpListener* listener_;
  sockaddr_storage peer_{};
  uv_tcp_t stream_;
  uv_timer_t idle_;
  std::vector<uint8_t> inbox_;
  ClientAddress client_;
  bool counted_ = false;      // admitted by the listener's ConnectionLimits
  unsigned outstanding_ = 0;  // queries read but not yet answered
  unsigned refs_ = 1;         // the connection itself, plus every waiting answer
  int open_handles_ = 2;
  bool closing_ = false;
  bool reading_ = false;
};

}  // namespace readyns::net
