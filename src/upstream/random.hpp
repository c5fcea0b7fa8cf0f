// Unpredictable numbers for what a forger must guess: query IDs, source-port choice, 0x20 bits.
#pragma once

#include <cstdint>

namespace readyns::upstream {

// Uniform 32 bits from the kernel's CSPRNG. The bytes are fetched a block at a time per thread:
// glibc's arc4random() makes one getrandom() system call per number, two or three per miss.
uint32_t random32();
// Uniform in [0, bound); bound > 0.
uint32_t random_below(uint32_t bound);

}  // namespace readyns::upstream
