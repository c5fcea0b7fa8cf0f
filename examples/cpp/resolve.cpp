// readyns on your own libuv loop in a few lines: resolve a name and list a Service's endpoints.
//
// Then close and let uv_run() return.  Usage: resolve UPSTREAM NAME [SERVICE NAMESPACE PORT]
#include <uv.h>

#include <cstdio>
#include <memory>

#include "readyns/resolver.hpp"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 6) {
    std::fprintf(stderr, "usage: %s UPSTREAM NAME [SERVICE NAMESPACE PORT]\n", argv[0]);
    return 2;
  }
  uv_loop_t* loop = uv_default_loop();
  auto resolver = std::make_unique<readyns::Resolver>(
      loop, readyns::Options{.listen = {}, .upstreams = {argv[1]}, .kube = "off"});
  int pending = argc == 6 ? 2 : 1, failures = 0;
  auto done = [&] {
    if (--pending == 0) resolver.reset();  // closes; uv_run() returns once it has
  };

  readyns::Query q = resolver->resolve(argv[2], readyns::kTypeA, [&](auto result) {
    if (!result) {
      ++failures;
      std::fprintf(stderr, "%s\n", result.error().message.c_str());
    } else {
      for (const readyns::Record& r : result->records)
        std::printf("%s %s\n", r.name.c_str(), r.data.c_str());
    }
    done();
  });
  readyns::Query e;
  if (argc == 6) {
    e = resolver->endpoints(argv[3], argv[4], argv[5], [&](auto result) {
      if (!result) {
        ++failures;
        std::fprintf(stderr, "%s\n", result.error().message.c_str());
      } else {
        for (const readyns::Endpoint& ep : *result)
          std::printf("%s:%u\n", ep.address.c_str(), ep.port);
      }
      done();
    });
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return failures ? 1 : 0;
}
