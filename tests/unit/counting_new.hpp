// A global operator new that counts its calls, for tests that bound a path's heap allocations.
// Link counting_new.cpp into the binary to replace the standard one.
#pragma once

#include <cstdint>

namespace readyns::test {

// Calls to operator new so far, in every thread.
uint64_t allocations();

}  // namespace readyns::test
