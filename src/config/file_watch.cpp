// The config file watch: directory events, settled, then a content comparison.
#include "config/file_watch.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace readyns::config {
namespace {

// A save or a ConfigMap swap is several events in a few milliseconds: check once they are over.
constexpr uint64_t kSettleMs = 100;
// A directory that never quiets down still gets the file checked this often.
constexpr uint64_t kMaxWaitMs = 1000;

std::optional<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return std::move(text).str();
}

std::string canonical_or_empty(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path resolved = std::filesystem::canonical(path, ec);
  return ec ? std::string() : resolved.string();
}

}  // namespace

struct FileWatch::Directory {
  uv_fs_event_t handle;
  std::string path;
  FileWatch* owner;

  // Starts watching `path`; returns null and sets `error` (a libuv code) if it cannot.
  static Directory* open(FileWatch* owner, uv_loop_t* loop, std::string path, int& error) {
    auto* d = new Directory{.handle = {}, .path = std::move(path), .owner = owner};
    uv_fs_event_init(loop, &d->handle);
    d->handle.data = d;
    error = uv_fs_event_start(
        &d->handle,
        [](uv_fs_event_t* h, const char*, int, int) {
          static_cast<Directory*>(h->data)->owner->on_event();
        },
        d->path.c_str(), 0);
    if (error == 0) return d;
    d->close();
    return nullptr;
  }

  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&handle),
             [](uv_handle_t* h) { delete static_cast<Directory*>(h->data); });
  }
};

FileWatch::FileWatch(uv_loop_t* loop, std::string path, std::function<void()> on_change)
    : loop_(loop), path_(std::move(path)), on_change_(std::move(on_change)) {}

FileWatch::~FileWatch() {
  close();
}

void FileWatch::start() {
  content_ = read_whole(path_);
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  int error = 0;
  own_dir_ = Directory::open(this, loop_, dir.empty() ? "." : dir.string(), error);
  if (!own_dir_) {
    throw std::runtime_error("--watch-config: cannot watch the directory of " + path_ + ": " +
                             uv_strerror(error));
  }
  settle_timer_ = new uv_timer_t;
  uv_timer_init(loop_, settle_timer_);
  settle_timer_->data = this;
  watch_target_directory();
  spdlog::info("watching {} for changes", path_);
}

void FileWatch::close() {
  for (Directory** d : {&own_dir_, &target_dir_}) {
    if (*d) std::exchange(*d, nullptr)->close();
  }
  if (settle_timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(settle_timer_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

void FileWatch::on_event() {
  if (!settle_timer_) return;
  uint64_t now = uv_now(loop_);
  bool waiting = uv_is_active(reinterpret_cast<uv_handle_t*>(settle_timer_));
  if (!waiting) first_event_ms_ = now;
  if (waiting && now - first_event_ms_ >= kMaxWaitMs) return;  // let the timer run out
  uv_timer_start(
      settle_timer_, [](uv_timer_t* t) { static_cast<FileWatch*>(t->data)->check(); }, kSettleMs,
      0);
}

void FileWatch::check() {
  watch_target_directory();
  std::optional<std::string> now = read_whole(path_);
  if (!now) {
    if (content_) spdlog::warn("config file {} cannot be read; still watching it", path_);
    content_ = std::nullopt;
    return;
  }
  if (now == content_) return;  // touched, or written again unchanged
  content_ = std::move(now);
  spdlog::info("config file {} changed: reloading", path_);
  on_change_();
}

void FileWatch::watch_target_directory() {
  std::string target = canonical_or_empty(path_);
  std::string dir = target.empty() ? "" : std::filesystem::path(target).parent_path().string();
  if (dir == canonical_or_empty(own_dir_->path)) dir.clear();
  if (target_dir_ && target_dir_->path == dir) return;
  if (target_dir_) std::exchange(target_dir_, nullptr)->close();
  if (dir.empty()) return;
  int error = 0;
  target_dir_ = Directory::open(this, loop_, dir, error);
  if (!target_dir_)
    spdlog::warn("cannot watch {} (where {} points): {}", dir, path_, uv_strerror(error));
}

}  // namespace readyns::config
