// The answer cache: a sharded hash with LRU eviction.
//
// It holds prepared wire answers by (lower-cased name, type, class, DO). It knows no event loop;
// the caller passes the time.
//
//   cache::Cache cache({.max_entries = 100000});
//   uint8_t buf[cache::kMaxKeySize];
//   cache::Key key = cache::make_key(q.question, q.edns.do_bit, buf);
//   if (cache.find(key, now, [&](const cache::EntryView& e) { n = render(e); }) ==
//       cache::Found::kMiss) { ... forward, then cache.insert(key, now, ttl, wire, offsets); }
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "wire/message.hpp"

namespace readyns::cache {

constexpr size_t kMaxKeySize = wire::kMaxNameLength + 4;

// A cache key: the question with its name lower-cased, as it is stored at offset 12 of an answer.
struct Key {
  const uint8_t* question = nullptr;  // name, type, class
  uint16_t len = 0;
  bool do_bit = false;
  uint64_t hash = 0;
};

// Lower-cases the question into `buf` (kMaxKeySize bytes) and hashes it in the same pass.
Key make_key(const wire::Question& q, bool do_bit, uint8_t* buf);

struct EntryView {
  std::span<const uint8_t> wire;
  std::span<const uint16_t> ttl_offsets;
  uint32_t elapsed = 0;  // seconds since it was stored
  uint32_t ttl = 0;      // how long it was stored for
};

enum class Found : uint8_t { kMiss, kFresh, kStale };

struct Settings {
  size_t max_entries = 100000;
  // Bytes the entries may take (their headers, TTL offsets and answers), so that large answers
  // cannot grow the cache past its memory budget however few they are.
  size_t max_bytes = size_t(128) << 20;
  // At most; fewer when the cache is small. Each shard evicts its own least recently used entry:
  // with min_entries_per_shard or more in each that is the cache's LRU within hashing noise, and
  // a smaller cache gets fewer shards, down to one, exactly LRU (32 shards of 1 entry would evict
  // a name for its hash with the cache near empty).
  unsigned shards = 32;
  size_t min_entries_per_shard = 1024;
  uint32_t stale_max = 0;  // seconds an expired entry may still be served (RFC 8767); 0: never
};

class Cache {
 public:
  explicit Cache(Settings settings);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // Calls `serve(const EntryView&)` under the entry's shard lock if the key is present and fresh
  // (or stale but within stale_max). A hit refreshes the entry's place in the LRU.
  template <class Serve>
  Found find(const Key& key, uint32_t now, Serve&& serve) {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    Found found = Found::kMiss;
    Entry* e = shard.lookup(key, now, settings_.stale_max, found);
    if (e) serve(e->view(now));
    return found;
  }

  void insert(const Key& key, uint32_t now, uint32_t ttl, std::span<const uint8_t> wire,
              std::span<const uint16_t> ttl_offsets);

  // Drops the entry of `key`, fresh or stale, if there is one.
  void erase(const Key& key);

  // Drops every entry whose name is `zone` or lies beneath it (lower-cased wire name).
  size_t erase_subtree(std::span<const uint8_t> zone);

  size_t size() const;
  size_t bytes() const;
  uint64_t evictions() const;

 private:
  // One allocation per entry: this header, the TTL offsets, then the answer's wire bytes.
  struct Entry {
    Entry* lru_prev;
    Entry* lru_next;
    Entry* bucket_next;
    uint64_t hash;
    uint32_t stored_at;
    uint32_t ttl;
    uint16_t wire_len;
    uint16_t key_len;
    uint16_t ttl_count;
    bool do_bit;

    uint16_t* offsets() { return reinterpret_cast<uint16_t*>(this + 1); }
    uint8_t* wire() { return reinterpret_cast<uint8_t*>(offsets() + ttl_count); }
    bool matches(const Key& k) {
      return hash == k.hash && key_len == k.len && do_bit == k.do_bit &&
             std::memcmp(wire() + wire::kHeaderSize, k.question, k.len) == 0;
    }
    EntryView view(uint32_t now) {
      return {{wire(), wire_len}, {offsets(), ttl_count}, now - stored_at, ttl};
    }
    size_t bytes() const { return bytes_for(ttl_count, wire_len); }
    static size_t bytes_for(size_t ttl_count, size_t wire_len) {
      return sizeof(Entry) + ttl_count * sizeof(uint16_t) + wire_len;
    }
  };

  struct Shard {
    mutable std::mutex mutex;
    std::vector<Entry*> buckets;
    Entry lru{};  // sentinel: lru.lru_next is the most recently used
    size_t size = 0;
    size_t capacity = 0;
    size_t bytes = 0;
    size_t byte_capacity = 0;
    uint64_t evictions = 0;

    Entry* find(const Key& key);  // fresh or not, without touching the LRU
    Entry* lookup(const Key& key, uint32_t now, uint32_t stale_max, Found& found);
    void link(Entry* e);
    void unlink_and_free(Entry* e);
    void grow();
  };

  Shard& shard_for(const Key& key) { return shards_[(key.hash >> 48) % shards_.size()]; }
  template <class T>
  T sum(T Shard::*field) const;  // over every shard, each under its lock

  Settings settings_;
  std::vector<Shard> shards_;
};

}  // namespace readyns::cache
