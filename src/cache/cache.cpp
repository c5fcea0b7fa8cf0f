// The answer cache: sharded hash with LRU eviction.
#include "cache/cache.hpp"

#include <algorithm>
#include <new>

namespace readyns::cache {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;

// Lower-cases the ASCII letters of 8 bytes at once (SWAR): a byte gets 0x20 added to its bits
// when it lies in 'A'..'Z'. Bytes with the top bit set are left alone.
uint64_t lower8(uint64_t w) {
  uint64_t low7 = w & (0x7f * kOnes);
  uint64_t at_least_a = low7 + (0x80 - 'A') * kOnes;
  uint64_t above_z = low7 + (0x80 - 'Z' - 1) * kOnes;
  uint64_t upper = at_least_a & ~above_z & ~w & (0x80 * kOnes);
  return w | (upper >> 2);
}

uint64_t mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

}  // namespace

Key make_key(const wire::Question& q, bool do_bit, uint8_t* buf) {
  // Eight bytes per step: names are short, so a simple multiply-mix beats byte-wise hashing.
  uint64_t h = 0x6a09e667f3bcc908ull;
  size_t i = 0;
  for (; i + 8 <= q.name_len; i += 8) {
    uint64_t w;
    std::memcpy(&w, q.name + i, 8);
    w = lower8(w);
    std::memcpy(buf + i, &w, 8);
    h = mix(h, w);
  }
  if (i < q.name_len) {
    uint64_t w = 0;
    std::memcpy(&w, q.name + i, q.name_len - i);
    w = lower8(w);
    std::memcpy(buf + i, &w, q.name_len - i);
    h = mix(h, w);
  }
  wire::put16(buf + q.name_len, q.qtype);
  wire::put16(buf + q.name_len + 2, q.qclass);
  h = mix(h, uint64_t(q.qtype) << 17 | uint64_t(q.qclass) << 1 | do_bit);
  h *= 0xbf58476d1ce4e5b9ull;  // the shard index uses the top bits: spread into them
  return {buf, uint16_t(q.name_len + 4), do_bit, h ^ (h >> 31)};
}

Cache::Cache(Settings settings)
    : settings_(settings),
      shards_(std::clamp<size_t>(
          settings.shards, 1,
          std::max<size_t>(
              settings.max_entries / std::max<size_t>(settings.min_entries_per_shard, 1), 1))) {
  // Split max_entries and max_bytes exactly, so the bounds hold however small they are.
  size_t n = shards_.size();
  for (size_t i = 0; i < n; ++i) {
    Shard& s = shards_[i];
    s.capacity = std::max<size_t>(1, settings.max_entries / n + (i < settings.max_entries % n));
    s.byte_capacity = settings.max_bytes / n + (i < settings.max_bytes % n);
    s.lru.lru_next = s.lru.lru_prev = &s.lru;
    s.buckets.assign(16, nullptr);
  }
}

Cache::~Cache() {
  for (Shard& s : shards_) {
    while (s.lru.lru_next != &s.lru) s.unlink_and_free(s.lru.lru_next);
  }
}

Cache::Entry* Cache::Shard::find(const Key& key) {
  Entry* e = buckets[key.hash & (buckets.size() - 1)];
  while (e && !e->matches(key)) e = e->bucket_next;
  return e;
}

Cache::Entry* Cache::Shard::lookup(const Key& key, uint32_t now, uint32_t stale_max, Found& found) {
  Entry* e = find(key);
  if (!e) return nullptr;
  uint32_t age = now - e->stored_at;
  if (age < e->ttl) {
    found = Found::kFresh;
  } else if (age - e->ttl < stale_max) {
    found = Found::kStale;
  } else {
    unlink_and_free(e);
    return nullptr;
  }
  // Move to the front of the LRU.
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
  e->lru_next = lru.lru_next;
  e->lru_prev = &lru;
  lru.lru_next->lru_prev = e;
  lru.lru_next = e;
  return e;
}

void Cache::Shard::link(Entry* e) {
  if (size >= buckets.size()) grow();
  Entry*& head = buckets[e->hash & (buckets.size() - 1)];
  e->bucket_next = head;
  head = e;
  e->lru_next = lru.lru_next;
  e->lru_prev = &lru;
  lru.lru_next->lru_prev = e;
  lru.lru_next = e;
  ++size;
  bytes += e->bytes();
}

void Cache::Shard::unlink_and_free(Entry* e) {
  Entry** slot = &buckets[e->hash & (buckets.size() - 1)];
  while (*slot != e) slot = &(*slot)->bucket_next;
  *slot = e->bucket_next;
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
  --size;
  bytes -= e->bytes();
  ::operator delete(e);
}

void Cache::Shard::grow() {
  std::vector<Entry*> bigger(buckets.size() * 2, nullptr);
  for (Entry* head : buckets) {
    while (head) {
      Entry* next = head->bucket_next;
      Entry*& slot = bigger[head->hash & (bigger.size() - 1)];
      head->bucket_next = slot;
      slot = head;
      head = next;
    }
  }
  buckets.swap(bigger);
}

void Cache::insert(const Key& key, uint32_t now, uint32_t ttl, std::span<const uint8_t> wire,
                   std::span<const uint16_t> ttl_offsets) {
  if (ttl == 0) return;
  const size_t need = Entry::bytes_for(ttl_offsets.size(), wire.size());
  Shard& shard = shard_for(key);
  if (wire.size() > UINT16_MAX || ttl_offsets.size() > UINT16_MAX || need > shard.byte_capacity) {
    erase(key);  // too large to keep, but newer than what the key holds: that goes, or it is served
    return;
  }
  void* memory = ::operator new(need);
  Entry* e = new (memory) Entry{nullptr,
                                nullptr,
                                nullptr,
                                key.hash,
                                now,
                                ttl,
                                uint16_t(wire.size()),
                                key.len,
                                uint16_t(ttl_offsets.size()),
                                key.do_bit};
  // std::copy, not memcpy: an answer may hold no TTL offsets, and memcpy from their null data()
  // is undefined even for 0 bytes.
  std::copy(ttl_offsets.begin(), ttl_offsets.end(), e->offsets());
  std::copy(wire.begin(), wire.end(), e->wire());

  std::lock_guard lock(shard.mutex);
  if (Entry* old = shard.find(key)) shard.unlink_and_free(old);
  while (shard.size >= shard.capacity || shard.bytes + need > shard.byte_capacity) {
    shard.unlink_and_free(shard.lru.lru_prev);
    ++shard.evictions;
  }
  shard.link(e);
}

void Cache::erase(const Key& key) {
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  if (Entry* e = shard.find(key)) shard.unlink_and_free(e);
}

size_t Cache::erase_subtree(std::span<const uint8_t> zone) {
  size_t erased = 0;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    for (Entry* e = s.lru.lru_next; e != &s.lru;) {
      Entry* next = e->lru_next;
      if (wire::name_in_zone(e->wire() + wire::kHeaderSize, e->key_len - 4u, zone.data(),
                             zone.size())) {
        s.unlink_and_free(e);
        ++erased;
      }
      e = next;
    }
  }
  return erased;
}

template <class T>
T Cache::sum(T Shard::*field) const {
  T total = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    total += s.*field;
  }
  return total;
}

size_t Cache::size() const {
  return sum(&Shard::size);
}
size_t Cache::bytes() const {
  return sum(&Shard::bytes);
}
uint64_t Cache::evictions() const {
  return sum(&Shard::evictions);
}

}  // namespace readyns::cache
