// The libuv Transport: upstream queries over UDP and over reused, pipelined TCP connections.
//
// UDP goes out from a pool of randomly bound sockets (retired after a while so ports keep
// changing); the TCP connections follow RFC 7766.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "upstream/transport.hpp"

namespace readyns::net {

struct UvTransportSettings {
  unsigned udp_sockets = 16;              // per upstream server
  unsigned udp_queries_per_socket = 256;  // then the socket is replaced by one on a new port
  uint32_t tcp_idle_timeout_ms = 10000;
};

class UvTransport final : public upstream::Transport {
 public:
  UvTransport(uv_loop_t* loop, UvTransportSettings settings);
  ~UvTransport() override;

  void send(const Address& server, upstream::Protocol protocol, std::span<uint8_t> query,
            uint32_t timeout_ms, upstream::Exchange* exchange) override;
  uint64_t now_ms() const override { return uv_now(loop_); }
  uint64_t now_us() const override { return uv_hrtime() / 1000; }

  // Closes every socket and drops every exchange without calling it back. The loop must run
  // afterwards for the handles to finish closing.
  void close();

  // UDP replies refused: no query out with that ID on the socket they reached (late, or a
  // guess), or the right ID from the wrong address or port (spoofing; the sockets are connected,
  // so the kernel drops those first, and this is a second check). Read from any thread.
  uint64_t replies_with_unknown_id() const { return unknown_id_.load(std::memory_order_relaxed); }
  uint64_t replies_from_wrong_source() const {
    return wrong_source_.load(std::memory_order_relaxed);
  }

 private:
  struct UdpSocket;
  struct TcpConnection;
  struct Slot {
    upstream::Exchange* exchange = nullptr;  // null: free
    uint32_t generation = 0;
    uint16_t id = 0;
    Address server;
    UdpSocket* udp = nullptr;
    TcpConnection* tcp = nullptr;
  };
  struct Deadline {
    uint64_t at;
    uint32_t slot;
    uint32_t generation;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };

  uint32_t acquire_slot(upstream::Exchange* exchange, uint32_t timeout_ms);
  void release_slot(uint32_t index);
  void arm_timer();
  void on_timer();
  void fail(uint32_t index, upstream::Failure failure);
  // Delivers a reply to the slot's exchange; frees the slot if the exchange is done with it.
  void deliver(uint32_t index, std::span<const uint8_t> reply);

  UdpSocket* pick_udp_socket(const Address& server);
  void retire(UdpSocket* s);
  void close_udp(UdpSocket* s);
  void send_udp(const Address& server, std::span<uint8_t> query, uint32_t slot);
  void send_tcp(const Address& server, std::span<uint8_t> query, uint32_t slot);
  void close_tcp(TcpConnection* c, bool failed);
  static void on_udp_readable(UdpSocket* s);
  static void on_tcp_read(uv_stream_t* h, ssize_t n, const uv_buf_t* buf);

  uv_loop_t* loop_;
  UvTransportSettings settings_;
  uv_timer_t* timer_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Deadline> deadlines_;  // min-heap; stale entries are skipped by generation
  // Per upstream server, the connected sockets new queries go out on (few servers: a list).
  std::vector<std::pair<Address, std::vector<UdpSocket*>>> udp_pools_;
  std::vector<UdpSocket*> udp_all_;  // also those retiring until their replies are in
  std::vector<TcpConnection*> tcp_;
  std::unique_ptr<uint8_t[]> recv_buffer_;
  std::atomic<uint64_t> unknown_id_{0}, wrong_source_{0};
  bool closed_ = false;
};

}  // namespace readyns::net
