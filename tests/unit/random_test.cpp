// Tests of the unpredictable numbers behind query IDs, source ports and 0x20 bits.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <set>
#include <thread>

#include "upstream/random.hpp"

using readyns::upstream::random32;
using readyns::upstream::random_below;

TEST_CASE("random_below stays below its bound and reaches every value about equally") {
  CHECK(random_below(1) == 0);
  std::array<int, 6> seen{};
  for (int i = 0; i < 60000; ++i) {
    uint32_t r = random_below(6);
    REQUIRE(r < 6);
    ++seen[r];
  }
  for (int count : seen) CHECK((count > 9000 && count < 11000));  // 10000 expected; >10 sigma
}

TEST_CASE("random32 does not repeat across block refills, and threads draw different numbers") {
  std::set<uint32_t> drawn;
  for (int i = 0; i < 5000; ++i) drawn.insert(random32());  // crosses several 256-word refills
  CHECK(drawn.size() > 4990);  // a 32-bit collision among 5000 is rare (p ~ 0.003 for one)
  uint32_t other[4];
  std::thread([&] {
    for (uint32_t& v : other) v = random32();
  }).join();
  uint32_t mine[4];
  for (uint32_t& v : mine) v = random32();
  CHECK(std::memcmp(mine, other, sizeof mine) != 0);
}
