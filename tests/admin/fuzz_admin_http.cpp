// libFuzzer target for the admin server's HTTP protocol: bytes in, bytes out, no loop.
//
// It covers http-parser setup, limits, routing, rendering and pipelining. Registered in
// tests/fuzz/meson.build as fuzz_admin_http; seeds in tests/fuzz/corpus/fuzz_admin_http.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exercise.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  readyns::admin::testing::exercise({reinterpret_cast<const char*>(data), size});
  return 0;
}
