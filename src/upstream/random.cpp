// Unpredictable numbers drawn from the kernel's CSPRNG a block at a time.
#include "upstream/random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace readyns::upstream {
namespace {

struct Block {
  uint32_t words[256];
  size_t next = sizeof words / sizeof words[0];  // empty: filled on first use
};

void refill(Block& b) {
  auto* bytes = reinterpret_cast<uint8_t*>(b.words);
  for (size_t got = 0; got < sizeof b.words;) {
    ssize_t n = getrandom(bytes + got, sizeof b.words - got, 0);
    if (n < 0 && errno != EINTR) std::abort();  // no source of secrets: never guess with less
    if (n > 0) got += size_t(n);
  }
  b.next = 0;
}

}  // namespace

uint32_t random32() {
  thread_local Block block;
  if (block.next == sizeof block.words / sizeof block.words[0]) refill(block);
  uint32_t word = block.words[block.next];
  block.words[block.next++] = 0;  // used once: nothing left in memory to predict the next from
  return word;
}

uint32_t random_below(uint32_t bound) {
  // Rejecting the top remainder keeps every value equally likely.
  const uint32_t threshold = uint32_t(-bound) % bound;
  for (;;) {
    uint32_t r = random32();
    if (r >= threshold) return r % bound;
  }
}

}  // namespace readyns::upstream
