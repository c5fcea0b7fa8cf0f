// Test helper: a tiny authoritative UDP DNS server on 127.0.0.1 in a thread of its own.
//
// Its names answer, answer late, or never answer, and it keeps a count of the queries it got.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace readyns::testing {

class Responder {
 public:
  // Every name ends in ".test": "slow*" answers after `delay_ms`, "drop*" never, "nx*" is
  // NXDOMAIN, anything else gets A 192.0.2.1 (TTL 300) plus the A records set by add().
  explicit Responder(int delay_ms = 300) : delay_ms_(delay_ms) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_.load(); }
  // Extra A records for a lower-case name without the final dot.
  void add(const std::string& name, const std::string& ip) {
    std::lock_guard lock(mutex_);
    extra_[name].push_back(ip);
  }

 private:
  struct Pending {
    std::chrono::steady_clock::time_point at;
    sockaddr_in peer;
    std::vector<uint8_t> reply;
  };

  void serve() {
    std::vector<Pending> later;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10) > 0) {
        uint8_t buf[512];
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
        if (n > 12) handle({buf, buf + n}, peer, later);
      }
      auto now = std::chrono::steady_clock::now();
      for (size_t i = 0; i < later.size();) {
        if (later[i].at <= now) {
          send(later[i].reply, later[i].peer);
          later.erase(later.begin() + long(i));
        } else {
          ++i;
        }
      }
    }
  }

  void send(const std::vector<uint8_t>& reply, const sockaddr_in& peer) {
    sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&peer),
           sizeof peer);
  }

  void handle(const std::vector<uint8_t>& q, const sockaddr_in& peer, std::vector<Pending>& later) {
    ++queries_;
    size_t pos = 12;
    std::string name;
    while (pos < q.size() && q[pos] != 0) {
      if (!name.empty()) name += '.';
      for (size_t i = 1; i <= q[pos] && pos + i < q.size(); ++i) name += char(tolower(q[pos + i]));
      pos += 1 + q[pos];
    }
    size_t question_end = pos + 5;
    if (question_end > q.size()) return;
    uint16_t qtype = uint16_t(q[pos + 1] << 8 | q[pos + 2]);
    std::string first = name.substr(0, name.find('.'));
    if (first.starts_with("drop")) return;

    std::vector<uint8_t> r(q.begin(), q.begin() + long(question_end));
    r[2] = 0x84 | (q[2] & 0x01);  // QR, AA, RD echoed
    r[3] = 0x80;                  // RA
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
    if (first.starts_with("nx")) {
      r[3] |= 3;
    } else if (qtype == 1) {
      std::vector<std::string> ips = {"192.0.2.1"};
      {
        std::lock_guard lock(mutex_);
        if (auto it = extra_.find(name); it != extra_.end()) ips = it->second;
      }
      for (const std::string& ip : ips) {
        uint8_t rr[16] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4};
        inet_pton(AF_INET, ip.c_str(), rr + 12);
        r.insert(r.end(), rr, rr + sizeof rr);
      }
      r[7] = uint8_t(ips.size());
    }
    if (first.starts_with("slow")) {
      later.push_back({std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_),
                       peer, std::move(r)});
    } else {
      send(r, peer);
    }
  }

  int delay_ms_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> extra_;
  std::thread thread_;
};

}  // namespace readyns::testing
