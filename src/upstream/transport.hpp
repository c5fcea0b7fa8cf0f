// The seam between the forwarder and the network: the Transport.
//
// A Transport sends one query to one server and reports the reply or the failure. The daemon uses
// the libuv one (net/uv_transport.hpp); tests replay whole scenarios through a scripted one, with
// no sockets and no loop.
#pragma once

#include <cstdint>
#include <span>

#include "net/address.hpp"

namespace readyns::upstream {

enum class Protocol : uint8_t { kUdp, kTcp };
enum class Failure : uint8_t { kTimeout, kNetwork };

// One outstanding query, as seen by the transport.
class Exchange {
 public:
  // A reply to the query sent with `id`, from the server it was sent to. Returns true if it
  // answers the query, which ends the exchange; false to keep waiting (e.g. a forged question).
  virtual bool on_reply(uint16_t id, std::span<const uint8_t> reply) = 0;
  // No answer in time, or the connection failed. Ends the exchange.
  virtual void on_failure(Failure failure) = 0;

 protected:
  ~Exchange() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `query` to `server`, first overwriting its ID with a fresh random one. Later calls
  // either exchange->on_failure() once or exchange->on_reply() until it returns true; never
  // from inside send(). Over UDP the reply must come from `server` to the socket it was sent on.
  virtual void send(const net::Address& server, Protocol protocol, std::span<uint8_t> query,
                    uint32_t timeout_ms, Exchange* exchange) = 0;
  // Milliseconds on a monotonic clock.
  virtual uint64_t now_ms() const = 0;
  // Microseconds on the same clock: round trips to an upstream on the node or in the cluster are
  // well under a millisecond, and servers are ranked by them.
  virtual uint64_t now_us() const { return now_ms() * 1000; }
};

}  // namespace readyns::upstream
