// The libuv Transport: UDP socket pool with random ports, pipelined TCP connections, timeouts.
#include "net/uv_transport.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "upstream/random.hpp"
#include "wire/message.hpp"

namespace readyns::net {
namespace {

// The queries out on one socket or connection, by ID, and their slots: an open-addressing table
// (linear probing, deletion by backward shift) that only allocates when it grows, so a query in
// steady state costs it nothing. IDs are random: their low bits make a good hash.
class PendingQueries {
 public:
  // The slot of the query with this ID, or null.
  const uint32_t* find(uint16_t id) const {
    if (entries_.empty()) return nullptr;
    for (size_t i = id & mask();; i = (i + 1) & mask()) {
      const Entry& e = entries_[i];
      if (e.slot == kFree) return nullptr;
      if (e.id == id) return &e.slot;
    }
  }
  bool contains(uint16_t id) const { return find(id) != nullptr; }
  // `id` must not be in the table.
  void insert(uint16_t id, uint32_t slot) {
    if (2 * (size_ + 1) > entries_.size()) grow();
    size_t i = id & mask();
    while (entries_[i].slot != kFree) i = (i + 1) & mask();
    entries_[i] = {slot, id};
    ++size_;
  }
  void erase(uint16_t id) {
    if (entries_.empty()) return;
    size_t hole = id & mask();
    while (entries_[hole].slot != kFree && entries_[hole].id != id) hole = (hole + 1) & mask();
    if (entries_[hole].slot == kFree) return;
    // Moves back each later entry of the run that may sit in the hole (its home is not between
    // the hole and it), so that lookups never meet a gap before their entry.
    for (size_t i = (hole + 1) & mask(); entries_[i].slot != kFree; i = (i + 1) & mask()) {
      size_t home = entries_[i].id & mask();
      if (((i - home) & mask()) >= ((i - hole) & mask())) {
        entries_[hole] = entries_[i];
        hole = i;
      }
    }
    entries_[hole].slot = kFree;
    --size_;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    for (Entry& e : entries_) e.slot = kFree;
    size_ = 0;
  }
  template <class Visit>
  void for_each_slot(Visit visit) const {
    for (const Entry& e : entries_) {
      if (e.slot != kFree) visit(e.slot);
    }
  }

 private:
  static constexpr uint32_t kFree = UINT32_MAX;
  struct Entry {
    uint32_t slot = kFree;
    uint16_t id = 0;
  };
  size_t mask() const { return entries_.size() - 1; }
  void grow() {
    std::vector<Entry> old(std::max<size_t>(16, 2 * entries_.size()));
    old.swap(entries_);
    size_ = 0;
    for (const Entry& e : old) {
      if (e.slot != kFree) insert(e.id, e.slot);
    }
  }

  std::vector<Entry> entries_;  // a power of two of them, at most half used
  size_t size_ = 0;
};

}  // namespace

// A raw socket under a uv_poll_t rather than a uv_udp_t: libuv's UDP reads until EAGAIN, one
// wasted system call per reply when replies arrive one at a time, as misses make them.
struct UvTransport::UdpSocket {
  uv_poll_t poll{};
  int fd = -1;
  UvTransport* owner = nullptr;
  PendingQueries pending;
  unsigned uses = 0;
  bool retiring = false;
};

struct UvTransport::TcpConnection {
  uv_tcp_t handle{};
  uv_timer_t idle{};
  uv_connect_t connect{};
  UvTransport* owner = nullptr;
  Address server;
  bool connected = false;
  bool closing = false;
  int open_handles = 2;
  std::vector<uint8_t> inbox;
  std::vector<std::vector<uint8_t>> unsent;  // framed queries waiting for the connect
  PendingQueries pending;
};

namespace {

struct WriteRequest {
  uv_write_t req;
  std::vector<uint8_t> bytes;
};

template <class T>
void delete_when_closed(uv_handle_t* h) {
  delete static_cast<T*>(h->data);
}

// Picks an ID not already used by `pending`: unpredictable to an off-path forger.
uint16_t fresh_id(const PendingQueries& pending) {
  uint16_t id;
  do id = uint16_t(upstream::random32());
  while (pending.contains(id));
  return id;
}

}  // namespace

UvTransport::UvTransport(uv_loop_t* loop, UvTransportSettings settings)
    : loop_(loop),
      settings_(settings),
      timer_(new uv_timer_t),
      recv_buffer_(new uint8_t[wire::kMaxMessageSize]) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

UvTransport::~UvTransport() {
  close();
}

void UvTransport::close() {
  if (closed_) return;
  closed_ = true;
  timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  for (Slot& slot : slots_) slot = Slot{};
  for (UdpSocket* s : std::vector<UdpSocket*>(udp_all_)) close_udp(s);
  udp_pools_.clear();
  for (TcpConnection* c : std::vector<TcpConnection*>(tcp_)) {
    c->pending.clear();
    close_tcp(c, false);
  }
}

void UvTransport::close_udp(UdpSocket* s) {
  udp_all_.erase(std::remove(udp_all_.begin(), udp_all_.end(), s), udp_all_.end());
  if (s->fd < 0) {  // never polled
    delete s;
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), delete_when_closed<UdpSocket>);
  ::close(s->fd);  // uv_poll_t does not own the socket; uv_close() has stopped polling it
}

uint32_t UvTransport::acquire_slot(upstream::Exchange* exchange, uint32_t timeout_ms) {
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  slot.exchange = exchange;
  uint64_t at = uv_now(loop_) + timeout_ms;
  bool earliest = deadlines_.empty() || at < deadlines_.front().at;
  deadlines_.push_back({at, index, slot.generation});
  std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
  if (earliest) arm_timer();
  return index;
}

void UvTransport::release_slot(uint32_t index) {
  Slot& slot = slots_[index];
  if (slot.udp) {
    UdpSocket* s = slot.udp;
    s->pending.erase(slot.id);
    if (s->retiring && s->pending.empty()) close_udp(s);
  }
  if (slot.tcp) {
    TcpConnection* c = slot.tcp;
    c->pending.erase(slot.id);
    if (c->pending.empty() && !c->closing) {
      uv_timer_start(
          &c->idle,
          [](uv_timer_t* t) {
            auto* conn = static_cast<TcpConnection*>(t->data);
            conn->owner->close_tcp(conn, false);
          },
          settings_.tcp_idle_timeout_ms, 0);
    }
  }
  uint32_t generation = slot.generation + 1;
  slot = Slot{};
  slot.generation = generation;
  free_slots_.push_back(index);
}

void UvTransport::arm_timer() {
  if (closed_ || deadlines_.empty()) return;
  uint64_t now = uv_now(loop_);
  uint64_t at = deadlines_.front().at;
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<UvTransport*>(t->data)->on_timer(); },
      at > now ? at - now : 0, 0);
}

void UvTransport::on_timer() {
  uint64_t now = uv_now(loop_);
  while (!deadlines_.empty() && deadlines_.front().at <= now && !closed_) {
    Deadline d = deadlines_.front();
    std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
    deadlines_.pop_back();
    if (slots_[d.slot].generation == d.generation && slots_[d.slot].exchange) {
      fail(d.slot, upstream::Failure::kTimeout);
    }
  }
  arm_timer();
}

void UvTransport::fail(uint32_t index, upstream::Failure failure) {
  upstream::Exchange* exchange = slots_[index].exchange;
  release_slot(index);
  exchange->on_failure(failure);
}

void UvTransport::deliver(uint32_t index, std::span<const uint8_t> reply) {
  Slot& slot = slots_[index];
  uint32_t generation = slot.generation;
  // The exchange may send again from inside on_reply, growing slots_: hold the index only.
  if (slot.exchange->on_reply(slot.id, reply) && slots_[index].generation == generation) {
    release_slot(index);
  }
}

void UvTransport::send(const Address& server, upstream::Protocol protocol, std::span<uint8_t> query,
                       uint32_t timeout_ms, upstream::Exchange* exchange) {
  uint32_t slot = acquire_slot(exchange, timeout_ms);
  slots_[slot].server = server;
  if (protocol == upstream::Protocol::kUdp) {
    send_udp(server, query, slot);
  } else {
    send_tcp(server, query, slot);
  }
}

UvTransport::UdpSocket* UvTransport::pick_udp_socket(const Address& server) {
  auto at = std::find_if(udp_pools_.begin(), udp_pools_.end(),
                         [&](const auto& p) { return p.first == server; });
  if (at == udp_pools_.end()) at = udp_pools_.insert(at, {server, {}});
  auto& pool = at->second;
  size_t i = pool.size() < settings_.udp_sockets ? pool.size()
                                                 : upstream::random_below(uint32_t(pool.size()));
  if (i < pool.size() && pool[i]->uses < settings_.udp_queries_per_socket) return pool[i];
  if (i < pool.size()) retire(pool[i]);

  // connect() binds a random ephemeral port (Linux randomises UDP port choice).
  // Connected to the one server: the kernel then drops datagrams from any other source before
  // they reach us, and keeps the route instead of looking it up on every send.
  auto* s = new UdpSocket;
  s->owner = this;
  s->poll.data = s;
  udp_all_.push_back(s);
  int fd = ::socket(server.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, server.sa(), server.len()) != 0 ||
      uv_poll_init(loop_, &s->poll, fd) != 0) {
    if (fd >= 0) ::close(fd);
    close_udp(s);
    return nullptr;
  }
  s->fd = fd;
  uv_poll_start(&s->poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
    if (status == 0) on_udp_readable(static_cast<UdpSocket*>(p->data));
  });
  if (i < pool.size()) {
    pool[i] = s;
  } else {
    pool.push_back(s);
  }
  return s;
}

void UvTransport::retire(UdpSocket* s) {
  s->retiring = true;
  if (s->pending.empty()) close_udp(s);
}

void UvTransport::send_udp(const Address& server, std::span<uint8_t> query, uint32_t index) {
  UdpSocket* s = pick_udp_socket(server);
  if (!s) return;  // left to time out: the resolution moves on as for a lost packet
  Slot& slot = slots_[index];
  slot.udp = s;
  slot.id = fresh_id(s->pending);
  s->pending.insert(slot.id, index);
  ++s->uses;
  wire::put16(query.data(), slot.id);
  ::send(s->fd, query.data(), query.size(), MSG_DONTWAIT);  // a failed send is a lost packet
}

void UvTransport::on_udp_readable(UdpSocket* s) {
  UvTransport* self = s->owner;
  sockaddr_storage from;
  socklen_t from_len = sizeof from;
  // One datagram per wake-up: epoll is level-triggered and reports the socket again if more wait.
  ssize_t n = ::recvfrom(s->fd, self->recv_buffer_.get(), wire::kMaxMessageSize, MSG_DONTWAIT,
                         reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n < ssize_t(wire::kHeaderSize) || self->closed_) return;
  const uint8_t* bytes = self->recv_buffer_.get();
  const uint32_t* slot = s->pending.find(wire::get16(bytes));
  if (!slot) {
    self->unknown_id_.fetch_add(1, std::memory_order_relaxed);  // late, or a guess at our ID
    return;
  }
  uint32_t index = *slot;
  if (!same_endpoint(self->slots_[index].server, reinterpret_cast<const sockaddr*>(&from))) {
    self->wrong_source_.fetch_add(1, std::memory_order_relaxed);  // a spoofing attempt
    return;
  }
  self->deliver(index, {bytes, size_t(n)});
}

void UvTransport::send_tcp(const Address& server, std::span<uint8_t> query, uint32_t index) {
  auto it = std::find_if(tcp_.begin(), tcp_.end(), [&](TcpConnection* c) {
    return c->server == server && c->pending.size() < 1000;
  });
  TcpConnection* c;
  if (it != tcp_.end()) {
    c = *it;
  } else {
    c = new TcpConnection;
    c->owner = this;
    c->server = server;
    uv_tcp_init(loop_, &c->handle);
    uv_timer_init(loop_, &c->idle);
    c->handle.data = c->idle.data = c;
    tcp_.push_back(c);
    int rc =
        uv_tcp_connect(&c->connect, &c->handle, server.sa(), [](uv_connect_t* req, int status) {
          auto* conn = static_cast<TcpConnection*>(req->handle->data);
          if (conn->closing) return;
          if (status < 0) return conn->owner->close_tcp(conn, true);
          conn->connected = true;
          uv_read_start(
              reinterpret_cast<uv_stream_t*>(&conn->handle),
              [](uv_handle_t* h, size_t, uv_buf_t* buf) {
                auto* self = static_cast<TcpConnection*>(h->data)->owner;
                *buf = uv_buf_init(reinterpret_cast<char*>(self->recv_buffer_.get()),
                                   wire::kMaxMessageSize);
              },
              on_tcp_read);
          for (auto& framed : conn->unsent) {
            auto* w = new WriteRequest{.req = {}, .bytes = std::move(framed)};
            uv_buf_t b =
                uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), unsigned(w->bytes.size()));
            uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&conn->handle), &b, 1,
                     [](uv_write_t* r, int) { delete reinterpret_cast<WriteRequest*>(r); });
          }
          conn->unsent.clear();
        });
    if (rc != 0) {
      close_tcp(c, false);
      return;  // the slot times out
    }
  }
  uv_timer_stop(&c->idle);
  Slot& slot = slots_[index];
  slot.tcp = c;
  slot.id = fresh_id(c->pending);
  c->pending.insert(slot.id, index);
  wire::put16(query.data(), slot.id);
  std::vector<uint8_t> framed(2 + query.size());
  wire::put16(framed.data(), uint16_t(query.size()));
  std::memcpy(framed.data() + 2, query.data(), query.size());
  if (!c->connected) {
    c->unsent.push_back(std::move(framed));
    return;
  }
  auto* w = new WriteRequest{.req = {}, .bytes = std::move(framed)};
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()), unsigned(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1,
               [](uv_write_t* r, int) { delete reinterpret_cast<WriteRequest*>(r); }) != 0) {
    delete w;  // the slot times out and the resolution moves on
  }
}

void UvTransport::on_tcp_read(uv_stream_t* h, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<TcpConnection*>(h->data);
  UvTransport* self = c->owner;
  if (n < 0) return self->close_tcp(c, true);
  c->inbox.insert(c->inbox.end(), buf->base, buf->base + n);
  size_t used = 0;
  while (c->inbox.size() - used >= 2 && !c->closing) {
    size_t len = wire::get16(&c->inbox[used]);
    if (c->inbox.size() - used - 2 < len) break;
    std::vector<uint8_t> msg(c->inbox.begin() + used + 2, c->inbox.begin() + used + 2 + len);
    used += 2 + len;
    if (len < wire::kHeaderSize) continue;
    if (const uint32_t* slot = c->pending.find(wire::get16(msg.data()))) {
      self->deliver(*slot, msg);
    }
  }
  if (!c->closing) c->inbox.erase(c->inbox.begin(), c->inbox.begin() + used);
}

void UvTransport::close_tcp(TcpConnection* c, bool failed) {
  if (c->closing) return;
  c->closing = true;
  tcp_.erase(std::remove(tcp_.begin(), tcp_.end(), c), tcp_.end());
  std::vector<uint32_t> pending;
  c->pending.for_each_slot([&](uint32_t index) { pending.push_back(index); });
  c->pending.clear();
  for (uint32_t index : pending) {
    slots_[index].tcp = nullptr;
    if (failed) fail(index, upstream::Failure::kNetwork);
  }
  auto on_closed = [](uv_handle_t* h) {
    auto* conn = static_cast<TcpConnection*>(h->data);
    if (--conn->open_handles == 0) delete conn;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->idle), on_closed);
}

}  // namespace readyns::net
