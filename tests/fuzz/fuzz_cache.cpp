// fuzz_cache: cache::Cache driven by an operation stream, checked step by step against a model.
//
// The operations (insert, find, erase_subtree, time passing) run over a small key space with a
// small capacity; the model keeps each shard's LRU order exactly as the cache documents it.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <string>
#include <vector>

#include "cache/cache.hpp"
#include "fuzz_common.hpp"
#include "wire/message.hpp"

using namespace readyns;

namespace {

// One entry as the model sees it.
struct ModelEntry {
  std::string key;  // lower-cased question bytes
  bool do_bit;
  uint64_t hash;
  uint32_t stored_at, ttl;
  std::vector<uint8_t> wire;
  std::vector<uint16_t> offsets;
};

struct ModelShard {
  std::list<ModelEntry> lru;  // front: most recently used
  size_t capacity = 0;
};

class Model {
 public:
  Model(const cache::Settings& s) : stale_max_(s.stale_max) {
    size_t n = std::clamp<size_t>(
        s.shards, 1,
        std::max<size_t>(s.max_entries / std::max<size_t>(s.min_entries_per_shard, 1), 1));
    shards_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      shards_[i].capacity = std::max<size_t>(1, s.max_entries / n + (i < s.max_entries % n));
    }
  }

  ModelShard& shard(uint64_t hash) { return shards_[(hash >> 48) % shards_.size()]; }

  std::list<ModelEntry>::iterator lookup(ModelShard& s, const std::string& key, bool do_bit) {
    return std::find_if(s.lru.begin(), s.lru.end(),
                        [&](const ModelEntry& e) { return e.key == key && e.do_bit == do_bit; });
  }

  // What find() must report, with the model updated as the cache updates itself.
  cache::Found find(const std::string& key, bool do_bit, uint64_t hash, uint32_t now,
                    ModelEntry* copy) {
    ModelShard& s = shard(hash);
    auto it = lookup(s, key, do_bit);
    if (it == s.lru.end()) return cache::Found::kMiss;
    uint32_t age = now - it->stored_at;
    cache::Found found;
    if (age < it->ttl) {
      found = cache::Found::kFresh;
    } else if (age - it->ttl < stale_max_) {
      found = cache::Found::kStale;
    } else {
      s.lru.erase(it);
      return cache::Found::kMiss;
    }
    s.lru.splice(s.lru.begin(), s.lru, it);
    *copy = *it;
    return found;
  }

  void insert(ModelEntry e) {
    if (e.ttl == 0) return;
    ModelShard& s = shard(e.hash);
    auto it = lookup(s, e.key, e.do_bit);
    if (it != s.lru.end()) {
      s.lru.erase(it);
    } else if (s.lru.size() >= s.capacity) {
      s.lru.pop_back();
      ++evictions_;
    }
    s.lru.push_front(std::move(e));
  }

  size_t erase_subtree(std::span<const uint8_t> zone) {
    size_t erased = 0;
    for (ModelShard& s : shards_) {
      for (auto it = s.lru.begin(); it != s.lru.end();) {
        std::vector<uint8_t> name(it->key.begin(), it->key.end() - 4);
        if (fuzz::oracle_in_zone(name, zone)) {
          it = s.lru.erase(it);
          ++erased;
        } else {
          ++it;
        }
      }
    }
    return erased;
  }

  size_t size() const {
    size_t n = 0;
    for (const ModelShard& s : shards_) n += s.lru.size();
    return n;
  }
  uint64_t evictions() const { return evictions_; }

 private:
  uint32_t stale_max_;
  std::vector<ModelShard> shards_;
  uint64_t evictions_ = 0;
};

constexpr char kAlphabet[] = {'a', 'B', 'c', '-', 'A', 'b'};

// A name from a small space, so keys repeat and case variants meet.
std::vector<uint8_t> random_name(FuzzedDataProvider& in) {
  std::vector<uint8_t> name;
  unsigned labels = in.ConsumeIntegralInRange<unsigned>(0, 3);
  for (unsigned i = 0; i < labels; ++i) {
    unsigned len = in.ConsumeIntegralInRange<unsigned>(1, 2);
    name.push_back(uint8_t(len));
    for (unsigned j = 0; j < len; ++j) {
      name.push_back(
          uint8_t(kAlphabet[in.ConsumeIntegralInRange<size_t>(0, sizeof kAlphabet - 1)]));
    }
  }
  if (in.ConsumeBool()) {  // now and then a long name, up to the 255-byte limit
    while (name.size() + 64 + 1 <= wire::kMaxNameLength) {
      name.push_back(63);
      name.insert(name.end(), 63, 'z');
    }
  }
  name.push_back(0);
  return name;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  cache::Settings settings{.max_entries = in.ConsumeIntegralInRange<size_t>(0, 40),
                           .shards = in.ConsumeIntegralInRange<unsigned>(0, 6),
                           // Small, so that a small capacity still has several shards.
                           .min_entries_per_shard = in.ConsumeIntegralInRange<size_t>(0, 4),
                           .stale_max = in.ConsumeIntegralInRange<uint32_t>(0, 20)};
  // Keys whose hashes collide: the same shard and bucket for many of them.
  uint64_t hash_mask = in.ConsumeBool() ? ~0ull : 0xc000000000000003ull;
  uint32_t now = in.ConsumeBool() ? in.ConsumeIntegral<uint32_t>() : 1000;  // may wrap around
  cache::Cache cache(settings);
  Model model(settings);
  size_t bound = std::max<size_t>(settings.max_entries, 1);

  unsigned steps = 0;
  while (in.remaining_bytes() > 0 && ++steps < 2000) {
    std::vector<uint8_t> name = random_name(in);
    wire::Question question{name.data(), uint16_t(name.size()),
                            in.ConsumeBool() ? wire::kTypeA : wire::kTypeAaaa, wire::kClassIn};
    bool do_bit = in.ConsumeBool();
    uint8_t key_bytes[cache::kMaxKeySize];
    cache::Key key = cache::make_key(question, do_bit, key_bytes);
    key.hash &= hash_mask;
    std::string key_text(reinterpret_cast<const char*>(key_bytes), key.len);

    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0:
      case 1: {  // insert: an answer whose question is the key, some payload, TTL offsets in it
        uint32_t ttl = in.ConsumeIntegralInRange<uint32_t>(0, 30);
        std::vector<uint8_t> wire(12, 0);
        wire::put16(&wire[4], 1);
        wire.insert(wire.end(), key_bytes, key_bytes + key.len);
        std::vector<uint8_t> payload = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange(0, 64));
        wire.insert(wire.end(), payload.begin(), payload.end());
        std::vector<uint16_t> offsets;
        for (size_t i = 0, n = in.ConsumeIntegralInRange(0, 4); i < n && wire.size() >= 4; ++i) {
          offsets.push_back(in.ConsumeIntegralInRange<uint16_t>(0, uint16_t(wire.size() - 4)));
        }
        cache.insert(key, now, ttl, wire, offsets);
        model.insert({key_text, do_bit, key.hash, now, ttl, wire, offsets});
        break;
      }
      case 2: {  // find
        ModelEntry want;
        cache::Found expected = model.find(key_text, do_bit, key.hash, now, &want);
        bool served = false;
        cache::Found found = cache.find(key, now, [&](const cache::EntryView& e) {
          served = true;
          // The entry found is the key's: its question is the key, byte for byte.
          FUZZ_CHECK(e.wire.size() >= 12 + key.len);
          FUZZ_CHECK(std::memcmp(e.wire.data() + 12, key_bytes, key.len) == 0);
          FUZZ_CHECK(e.wire.size() == want.wire.size() &&
                     std::equal(e.wire.begin(), e.wire.end(), want.wire.begin()));
          FUZZ_CHECK(e.ttl_offsets.size() == want.offsets.size() &&
                     std::equal(e.ttl_offsets.begin(), e.ttl_offsets.end(), want.offsets.begin()));
          FUZZ_CHECK(e.ttl == want.ttl && e.elapsed == now - want.stored_at);
        });
        FUZZ_CHECK(found == expected);
        FUZZ_CHECK(served == (found != cache::Found::kMiss));
        break;
      }
      case 3: {  // erase_subtree of a name or of one of its ancestors
        std::vector<uint8_t> zone = fuzz::lowered(name);
        for (unsigned drop = in.ConsumeIntegralInRange(0, 3); drop > 0 && zone[0] != 0; --drop) {
          zone.erase(zone.begin(), zone.begin() + 1 + zone[0]);
        }
        size_t want = model.erase_subtree(zone);
        FUZZ_CHECK(cache.erase_subtree(zone) == want);
        break;
      }
      case 4:  // time passes
        now += in.ConsumeIntegralInRange<uint32_t>(0, in.ConsumeBool() ? 3 : 40);
        break;
    }
    FUZZ_CHECK(cache.size() == model.size());
    FUZZ_CHECK(cache.size() <= bound);
    FUZZ_CHECK(cache.evictions() == model.evictions());
  }
  return 0;
}
