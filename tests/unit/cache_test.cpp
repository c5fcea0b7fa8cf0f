// Unit tests for src/cache: keys, TTL expiry, the stale window, LRU eviction and erase_subtree.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.hpp"
#include "wire/message.hpp"

using namespace readyns;
using cache::Cache;
using cache::EntryView;
using cache::Found;
using cache::Key;

namespace {

using Bytes = std::vector<uint8_t>;

// Dotted text to wire, any case kept.
Bytes wname(std::string_view text) {
  Bytes out;
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  while (!text.empty()) {
    size_t dot = text.find('.');
    std::string_view label = text.substr(0, dot);
    out.push_back(uint8_t(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    text.remove_prefix(dot == std::string_view::npos ? text.size() : dot + 1);
  }
  out.push_back(0);
  return out;
}

// A key together with the storage it points into.
struct TestKey {
  Bytes name;
  uint8_t buf[cache::kMaxKeySize];
  Key key;

  TestKey(std::string_view text, uint16_t qtype = wire::kTypeA, bool do_bit = false)
      : name(wname(text)) {
    wire::Question q{name.data(), uint16_t(name.size()), qtype, wire::kClassIn};
    key = cache::make_key(q, do_bit, buf);
  }
  TestKey(const TestKey&) = delete;
};

// A stored answer as prepare_answer would leave it: header, the lower-cased question (the key
// bytes), then one A record whose TTL sits at the returned offset. `tag` marks the answer.
struct Answer {
  Bytes wire;
  std::vector<uint16_t> offsets;
};

Answer answer_for(const Key& key, uint8_t tag, uint32_t ttl = 30) {
  Answer a;
  a.wire = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0};
  a.wire.insert(a.wire.end(), key.question, key.question + key.len);
  a.wire.insert(a.wire.end(), {0xc0, 12, 0, 1, 0, 1});
  a.offsets.push_back(uint16_t(a.wire.size()));
  a.wire.insert(a.wire.end(), {uint8_t(ttl >> 24), uint8_t(ttl >> 16), uint8_t(ttl >> 8),
                               uint8_t(ttl), 0, 4, 10, 0, 0, tag});
  return a;
}

void insert(Cache& c, const Key& key, uint32_t now, uint32_t ttl, uint8_t tag) {
  Answer a = answer_for(key, tag, ttl);
  c.insert(key, now, ttl, a.wire, a.offsets);
}

// What find() reports, plus the tag of the answer served (-1 if serve was not called).
struct Lookup {
  Found found = Found::kMiss;
  int tag = -1;
  uint32_t elapsed = 0, ttl = 0;
};

Lookup lookup(Cache& c, const Key& key, uint32_t now) {
  Lookup out;
  int calls = 0;
  out.found = c.find(key, now, [&](const EntryView& e) {
    ++calls;
    out.tag = e.wire.back();
    out.elapsed = e.elapsed;
    out.ttl = e.ttl;
  });
  CHECK(calls == (out.found == Found::kMiss ? 0 : 1));
  return out;
}

cache::Settings one_shard(size_t max_entries, uint32_t stale_max = 0) {
  return {.max_entries = max_entries, .shards = 1, .stale_max = stale_max};
}

}  // namespace

TEST_CASE("make_key lower-cases and hashes", "[cache][key]") {
  TestKey upper("SVC.Ns.svc.Cluster.LOCAL", wire::kTypeAaaa);
  TestKey lower("svc.ns.svc.cluster.local", wire::kTypeAaaa);
  Bytes expected = wname("svc.ns.svc.cluster.local");
  expected.insert(expected.end(), {0, 28, 0, 1});
  CHECK(upper.key.len == expected.size());
  CHECK(Bytes(upper.key.question, upper.key.question + upper.key.len) == expected);
  CHECK(upper.key.question == upper.buf);
  CHECK_FALSE(upper.key.do_bit);
  CHECK(upper.key.hash == lower.key.hash);
  CHECK(Bytes(lower.key.question, lower.key.question + lower.key.len) == expected);

  TestKey other_type("svc.ns.svc.cluster.local", wire::kTypeA);
  TestKey other_name("svd.ns.svc.cluster.local", wire::kTypeAaaa);
  TestKey with_do("svc.ns.svc.cluster.local", wire::kTypeAaaa, true);
  CHECK(with_do.key.do_bit);
  CHECK(other_type.key.hash != lower.key.hash);
  CHECK(other_name.key.hash != lower.key.hash);
  CHECK(with_do.key.hash != lower.key.hash);
}

TEST_CASE("find: miss, hit, expiry", "[cache]") {
  Cache c(one_shard(100));
  TestKey k("svc.ns.svc.cluster.local");
  CHECK(lookup(c, k.key, 1000).found == Found::kMiss);
  CHECK(c.size() == 0);

  Answer a = answer_for(k.key, 7, 30);
  c.insert(k.key, 1000, 30, a.wire, a.offsets);
  CHECK(c.size() == 1);

  SECTION("the view is what was stored") {
    int calls = 0;
    CHECK(c.find(k.key, 1004, [&](const EntryView& e) {
      ++calls;
      CHECK(Bytes(e.wire.begin(), e.wire.end()) == a.wire);
      CHECK(std::vector<uint16_t>(e.ttl_offsets.begin(), e.ttl_offsets.end()) == a.offsets);
      CHECK(e.elapsed == 4);
      CHECK(e.ttl == 30);
    }) == Found::kFresh);
    CHECK(calls == 1);
  }
  SECTION("fresh until the TTL runs out") {
    CHECK(lookup(c, k.key, 1000).found == Found::kFresh);
    Lookup last = lookup(c, k.key, 1029);
    CHECK(last.found == Found::kFresh);
    CHECK(last.tag == 7);
    CHECK(last.elapsed == 29);
  }
  SECTION("gone at the TTL") {
    CHECK(lookup(c, k.key, 1030).found == Found::kMiss);
    CHECK(c.size() == 0);  // dropped, not just hidden
    CHECK(lookup(c, k.key, 1000).found == Found::kMiss);
  }
  SECTION("gone after the TTL") {
    CHECK(lookup(c, k.key, 5000).found == Found::kMiss);
    CHECK(c.size() == 0);
  }
  SECTION("the key matches any case") {
    TestKey other_case("SVC.NS.svc.cluster.Local");
    CHECK(lookup(c, other_case.key, 1001).tag == 7);
  }
  SECTION("other types and names miss") {
    TestKey aaaa("svc.ns.svc.cluster.local", wire::kTypeAaaa);
    TestKey other("svc.ns.svc.cluster.locals");
    CHECK(lookup(c, aaaa.key, 1001).found == Found::kMiss);
    CHECK(lookup(c, other.key, 1001).found == Found::kMiss);
    CHECK(c.size() == 1);
  }
  CHECK(c.evictions() == 0);
}

TEST_CASE("stale window", "[cache]") {
  Cache c(one_shard(100, 10));
  TestKey k("svc.cluster.local");
  insert(c, k.key, 1000, 5, 1);
  CHECK(lookup(c, k.key, 1004).found == Found::kFresh);
  Lookup stale = lookup(c, k.key, 1005);
  CHECK(stale.found == Found::kStale);
  CHECK(stale.tag == 1);
  CHECK(stale.elapsed == 5);
  CHECK(stale.ttl == 5);
  CHECK(lookup(c, k.key, 1014).found == Found::kStale);
  CHECK(c.size() == 1);
  CHECK(lookup(c, k.key, 1015).found == Found::kMiss);
  CHECK(c.size() == 0);
}

TEST_CASE("no stale window by default", "[cache]") {
  Cache c(one_shard(100));
  TestKey k("svc.cluster.local");
  insert(c, k.key, 1000, 5, 1);
  CHECK(lookup(c, k.key, 1005).found == Found::kMiss);
}

TEST_CASE("LRU eviction", "[cache][lru]") {
  Cache c(one_shard(3));
  TestKey a("a.cluster.local"), b("b.cluster.local"), d("d.cluster.local"), e("e.cluster.local"),
      f("f.cluster.local");
  insert(c, a.key, 100, 60, 'a');
  insert(c, b.key, 101, 60, 'b');
  insert(c, d.key, 102, 60, 'd');
  CHECK(c.size() == 3);
  CHECK(c.evictions() == 0);

  SECTION("the oldest goes first") {
    insert(c, e.key, 103, 60, 'e');
    CHECK(c.size() == 3);
    CHECK(c.evictions() == 1);
    CHECK(lookup(c, a.key, 104).found == Found::kMiss);
    CHECK(lookup(c, b.key, 104).tag == 'b');
    CHECK(lookup(c, d.key, 104).tag == 'd');
    CHECK(lookup(c, e.key, 104).tag == 'e');
  }
  SECTION("a hit moves an entry to the front") {
    CHECK(lookup(c, a.key, 103).found == Found::kFresh);  // order now a, d, b
    insert(c, e.key, 104, 60, 'e');                       // evicts b
    CHECK(lookup(c, b.key, 105).found == Found::kMiss);
    CHECK(lookup(c, a.key, 105).found == Found::kFresh);  // order a, e, d
    insert(c, f.key, 106, 60, 'f');                       // evicts d
    CHECK(lookup(c, d.key, 107).found == Found::kMiss);
    CHECK(lookup(c, a.key, 107).found == Found::kFresh);
    CHECK(lookup(c, e.key, 107).found == Found::kFresh);
    CHECK(lookup(c, f.key, 107).found == Found::kFresh);
    CHECK(c.evictions() == 2);
  }
  SECTION("a stale hit moves it too") {
    Cache s(one_shard(2, 100));
    insert(s, a.key, 100, 5, 'a');
    insert(s, b.key, 100, 60, 'b');
    CHECK(lookup(s, a.key, 110).found == Found::kStale);
    insert(s, d.key, 110, 60, 'd');  // evicts b, not the stale a
    CHECK(lookup(s, b.key, 111).found == Found::kMiss);
    CHECK(lookup(s, a.key, 111).found == Found::kStale);
  }
  SECTION("replacing an entry evicts nothing") {
    insert(c, a.key, 103, 60, 'A');
    CHECK(c.size() == 3);
    CHECK(c.evictions() == 0);
    CHECK(lookup(c, b.key, 104).found == Found::kFresh);
  }
  SECTION("an expired entry frees its slot") {
    CHECK(lookup(c, a.key, 1000).found == Found::kMiss);
    CHECK(c.size() == 2);
    insert(c, e.key, 1000, 60, 'e');
    CHECK(c.evictions() == 0);
    CHECK(c.size() == 3);
  }
}

TEST_CASE("insert replaces an existing key", "[cache]") {
  Cache c(one_shard(1));
  TestKey k("svc.cluster.local");
  insert(c, k.key, 100, 60, 1);
  TestKey other_case("SVC.cluster.local");
  insert(c, other_case.key, 200, 10, 2);
  CHECK(c.size() == 1);
  CHECK(c.evictions() == 0);
  Lookup l = lookup(c, k.key, 205);
  CHECK(l.found == Found::kFresh);
  CHECK(l.tag == 2);
  CHECK(l.elapsed == 5);
  CHECK(l.ttl == 10);
  CHECK(lookup(c, k.key, 210).found == Found::kMiss);  // the new TTL, not the old one
}

TEST_CASE("a TTL of zero is not stored", "[cache]") {
  Cache c(one_shard(10, 100));
  TestKey k("svc.cluster.local");
  insert(c, k.key, 100, 0, 1);
  CHECK(c.size() == 0);
  CHECK(lookup(c, k.key, 100).found == Found::kMiss);

  SECTION("and does not displace an existing entry") {
    insert(c, k.key, 100, 30, 1);
    insert(c, k.key, 101, 0, 2);
    CHECK(lookup(c, k.key, 102).tag == 1);
  }
}

TEST_CASE("an answer without TTL offsets is stored", "[cache]") {
  // Fuzzing (fuzz_cache): insert() memcpy()d from the empty offsets' null data(), which UBSan
  // reports.
  Cache c(one_shard(10));
  TestKey k("svc.cluster.local");
  Answer a = answer_for(k.key, 9);
  c.insert(k.key, 100, 30, a.wire, std::vector<uint16_t>{});
  int calls = 0;
  CHECK(c.find(k.key, 101, [&](const EntryView& e) {
    ++calls;
    CHECK(Bytes(e.wire.begin(), e.wire.end()) == a.wire);
    CHECK(e.ttl_offsets.empty());
  }) == Found::kFresh);
  CHECK(calls == 1);
}

TEST_CASE("the DO bit makes a different key", "[cache]") {
  Cache c({.max_entries = 100});
  TestKey plain("svc.cluster.local", wire::kTypeA, false);
  TestKey dnssec("svc.cluster.local", wire::kTypeA, true);
  insert(c, plain.key, 100, 30, 1);
  CHECK(lookup(c, dnssec.key, 101).found == Found::kMiss);
  insert(c, dnssec.key, 100, 30, 2);
  CHECK(c.size() == 2);
  CHECK(lookup(c, plain.key, 101).tag == 1);
  CHECK(lookup(c, dnssec.key, 101).tag == 2);
}

TEST_CASE("erase_subtree", "[cache][erase]") {
  Cache c({.max_entries = 1000});  // 32 shards: the names spread across them
  std::vector<std::string> names = {
      "svc.cluster.local",  "a.svc.cluster.local", "b.a.svc.CLUSTER.local",   "xsvc.cluster.local",
      "svcx.cluster.local", "other.cluster.local", "svc.cluster.local.other", "cluster.local"};
  std::vector<std::unique_ptr<TestKey>> keys;
  for (const std::string& name : names) {
    keys.push_back(std::make_unique<TestKey>(name));
    insert(c, keys.back()->key, 100, 60, 1);
  }
  TestKey aaaa("svc.cluster.local", wire::kTypeAaaa);
  insert(c, aaaa.key, 100, 60, 1);
  REQUIRE(c.size() == 9);

  Bytes zone = wname("svc.cluster.local");
  CHECK(c.erase_subtree(zone) == 4);
  CHECK(c.size() == 5);
  CHECK(lookup(c, aaaa.key, 101).found == Found::kMiss);
  for (size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    bool erased = i < 3;
    CHECK((lookup(c, keys[i]->key, 101).found == Found::kMiss) == erased);
  }
  CHECK(c.erase_subtree(zone) == 0);
  CHECK(c.erase_subtree(wname("example")) == 0);
  CHECK(c.erase_subtree(wname(".")) == 5);
  CHECK(c.size() == 0);
}

TEST_CASE("many entries: buckets grow, shards add up", "[cache]") {
  for (unsigned shards : {1u, 32u}) {
    INFO("shards " << shards);
    Cache c({.max_entries = 100000, .shards = shards});
    std::vector<std::unique_ptr<TestKey>> keys;
    for (int i = 0; i < 2000; ++i) {
      keys.push_back(std::make_unique<TestKey>("host" + std::to_string(i) + ".cluster.local"));
      insert(c, keys.back()->key, 100, 60, uint8_t(i));
    }
    CHECK(c.size() == 2000);
    CHECK(c.evictions() == 0);
    int found = 0;
    for (int i = 0; i < 2000; ++i) {
      Lookup l = lookup(c, keys[i]->key, 101);
      found += l.found == Found::kFresh && l.tag == uint8_t(i);
    }
    CHECK(found == 2000);
  }
}

TEST_CASE("capacity is split across shards", "[cache]") {
  Cache c({.max_entries = 64, .shards = 4, .min_entries_per_shard = 16});  // 16 per shard
  std::vector<std::unique_ptr<TestKey>> keys;
  for (int i = 0; i < 500; ++i) {
    keys.push_back(std::make_unique<TestKey>("h" + std::to_string(i) + ".cluster.local"));
    insert(c, keys.back()->key, 100, 60, 1);
  }
  CHECK(c.size() == 64);  // 500 keys fill every shard
  CHECK(c.evictions() == 500 - 64);
}

TEST_CASE("a small cache is one shard: exactly LRU, whatever the shard setting", "[cache][lru]") {
  Cache c({.max_entries = 32});  // 32 shards of one entry would evict long before 32 names
  std::vector<std::unique_ptr<TestKey>> keys;
  for (int i = 0; i < 32; ++i) {
    keys.push_back(std::make_unique<TestKey>("h" + std::to_string(i) + ".cluster.local"));
    insert(c, keys.back()->key, 100, 60, uint8_t(i));
  }
  CHECK(c.evictions() == 0);
  CHECK(lookup(c, keys[0]->key, 101).found == Found::kFresh);  // now h1 is the oldest
  TestKey extra("extra.cluster.local");
  insert(c, extra.key, 102, 60, 'x');
  CHECK(lookup(c, keys[1]->key, 103).found == Found::kMiss);
  for (int i : {0, 2, 31}) CHECK(lookup(c, keys[i]->key, 103).found == Found::kFresh);
}

TEST_CASE("the memory budget bounds the cache however few the entries", "[cache][lru]") {
  TestKey a("a.cluster.local"), b("b.cluster.local"), d("d.cluster.local");
  // An answer the size of a large TXT or SRV set: three of them do not fit in 100 KiB.
  auto big = [](const Key& key, uint8_t tag) {
    Answer ans = answer_for(key, tag);
    ans.wire.insert(ans.wire.end() - 1, 40000, 0);  // the tag stays the last byte
    return ans;
  };
  Cache c({.max_entries = 1000, .max_bytes = 100 * 1024, .shards = 1});
  for (auto* k : {&a, &b, &d}) {
    Answer ans = big(k->key, k->key.question[1]);
    c.insert(k->key, 100, 60, ans.wire, ans.offsets);
    CHECK(c.bytes() <= 100 * 1024);
  }
  CHECK(c.size() == 2);
  CHECK(c.evictions() == 1);
  CHECK(lookup(c, a.key, 101).found == Found::kMiss);  // the least recently used went
  CHECK(lookup(c, b.key, 101).tag == 'b');
  CHECK(lookup(c, d.key, 101).tag == 'd');

  SECTION("small answers fill it by count, and the bytes add up") {
    Cache s({.max_entries = 2, .max_bytes = 100 * 1024, .shards = 1});
    insert(s, a.key, 100, 60, 'a');
    size_t one = s.bytes();
    CHECK(one > 0);
    insert(s, b.key, 100, 60, 'b');
    CHECK(s.bytes() == 2 * one);
    insert(s, d.key, 100, 60, 'd');
    CHECK(s.bytes() == 2 * one);
    CHECK(s.evictions() == 1);
    CHECK(lookup(s, d.key, 101).found == Found::kFresh);
  }
  SECTION("an answer larger than the whole budget is not cached") {
    Cache s({.max_entries = 10, .max_bytes = 30000, .shards = 1});
    Answer ans = big(a.key, 'a');
    s.insert(a.key, 100, 60, ans.wire, ans.offsets);
    CHECK(s.size() == 0);
    CHECK(s.bytes() == 0);
  }
  SECTION("nor is the older answer it replaces kept") {
    Cache s({.max_entries = 10, .max_bytes = 30000, .shards = 1});
    insert(s, a.key, 100, 60, 'a');
    Answer ans = big(a.key, 'A');
    s.insert(a.key, 110, 60, ans.wire, ans.offsets);
    CHECK(lookup(s, a.key, 111).found == Found::kMiss);
    CHECK(s.size() == 0);
    CHECK(s.bytes() == 0);
  }
}
