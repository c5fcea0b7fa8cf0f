// Unit tests of config::FileWatch on a real loop and a scratch directory.
//
// The ways a config file gets replaced (in place, renamed over, a ConfigMap's symlink swap) each
// report one change, and rewriting the same content reports none.
#include <uv.h>
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "config/file_watch.hpp"

namespace fs = std::filesystem;
using readyns::config::FileWatch;

namespace {

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// A loop, a scratch directory, and a watch of `file` in it counting the changes it reports.
struct Watched {
  uv_loop_t loop;
  fs::path dir;
  fs::path file;
  int changes = 0;
  std::unique_ptr<FileWatch> watch;

  Watched() {
    uv_loop_init(&loop);
    char name[] = "/tmp/readyns-watch-XXXXXX";
    dir = mkdtemp(name);
    file = dir / "readyns.yaml";
  }
  ~Watched() {
    if (watch) watch->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    watch.reset();
    uv_loop_close(&loop);
    fs::remove_all(dir);
  }
  void start(const fs::path& path) {
    watch = std::make_unique<FileWatch>(&loop, path.string(), [this] { ++changes; });
    watch->start();
  }
  // Runs the loop until `changes` reaches `n` or `ms` have passed; returns whether it did.
  bool wait_for(int n, uint64_t ms = 5000) {
    uv_timer_t tick;  // wakes the loop up, so the count is looked at even when nothing happens
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 10, 10);
    uint64_t deadline = uv_now(&loop) + ms;
    while (changes < n && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return changes >= n;
  }
};

}  // namespace

TEST_CASE("a file written in place or renamed over is a change") {
  Watched w;
  write(w.file, "threads: 1\n");
  w.start(w.file);
  write(w.file, "threads: 2\n");
  CHECK(w.wait_for(1));
  write(w.dir / "new.tmp", "threads: 3\n");  // as editors save
  fs::rename(w.dir / "new.tmp", w.file);
  CHECK(w.wait_for(2));
  CHECK(w.changes == 2);
}

TEST_CASE("the same content written again, or another file changing, is no change") {
  Watched w;
  write(w.file, "threads: 1\n");
  w.start(w.file);
  write(w.file, "threads: 1\n");
  write(w.dir / "other.yaml", "unrelated\n");
  // Nothing to wait for but time: long past the watch's settling delay.
  CHECK_FALSE(w.wait_for(1, 500));
  write(w.file, "threads: 4\n");
  CHECK(w.wait_for(1));
}

TEST_CASE("a ConfigMap volume's ..data symlink swap is a change") {
  // What the kubelet does: each version in a directory of its own, `..data` pointing at the
  // current one, the file a symlink through `..data`; an update renames a new `..data` over.
  Watched w;
  auto publish = [&](const std::string& version, const std::string& text) {
    fs::create_directory(w.dir / version);
    write(w.dir / version / "readyns.yaml", text);
    fs::create_directory_symlink(version, w.dir / "..data_tmp");
    fs::rename(w.dir / "..data_tmp", w.dir / "..data");
  };
  publish("..v1", "threads: 1\n");
  fs::create_symlink("..data/readyns.yaml", w.file);
  w.start(w.file);

  publish("..v2", "threads: 2\n");
  fs::remove_all(w.dir / "..v1");
  CHECK(w.wait_for(1));
  // The next swap is seen as well (the watch on the old version's directory is gone with it).
  publish("..v3", "threads: 3\n");
  fs::remove_all(w.dir / "..v2");
  CHECK(w.wait_for(2));
}

TEST_CASE("a symlinked file changed in place where it points is a change") {
  Watched w;
  fs::create_directory(w.dir / "elsewhere");
  write(w.dir / "elsewhere" / "real.yaml", "threads: 1\n");
  fs::create_symlink(w.dir / "elsewhere" / "real.yaml", w.file);
  w.start(w.file);
  write(w.dir / "elsewhere" / "real.yaml", "threads: 2\n");
  CHECK(w.wait_for(1));
}

TEST_CASE("a directory that cannot be watched is refused") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  FileWatch watch(&loop, "/nonexistent-readyns-dir/readyns.yaml", [] {});
  CHECK_THROWS_AS(watch.start(), std::runtime_error);
  watch.close();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}
