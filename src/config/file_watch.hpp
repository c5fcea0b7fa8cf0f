// Noticing that the config file changed (--watch-config), on a libuv loop.
//
// The file's directory is watched, not the file: editors save by writing a new file and renaming
// it over the old one, and Kubernetes updates a ConfigMap volume by swapping its `..data` symlink,
// and either leaves a watch on the file itself looking at the old inode. When a burst of events
// in the directory settles, the file's content is compared with what it was, so touching it or
// rewriting it unchanged reloads nothing. When the path is a symlink, the directory of the file
// it resolves to is watched too, for changes made in place there.
//
//   config::FileWatch watch(loop, "/etc/readyns/readyns.yaml", [&] { server.request_reload(); });
//   watch.start();  // throws std::runtime_error if the directory cannot be watched
//   ...
//   watch.close();  // on the loop's thread; the loop then finishes closing its handles
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace readyns::config {

class FileWatch {
 public:
  // `on_change` runs on the loop's thread each time the content differs from the last seen.
  FileWatch(uv_loop_t* loop, std::string path, std::function<void()> on_change);
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // Reads the content the daemon started with and starts watching.
  void start();
  // Stops watching. May be destroyed at once; the loop must still run to free the handles.
  void close();

 private:
  struct Directory;
  void on_event();
  void check();
  // Watches the directory the path resolves to as well, when it is not the path's own.
  void watch_target_directory();

  uv_loop_t* loop_;
  const std::string path_;
  std::function<void()> on_change_;
  Directory* own_dir_ = nullptr;     // the directory of path_ as given
  Directory* target_dir_ = nullptr;  // of the file it resolves to, if elsewhere
  uv_timer_t* settle_timer_ = nullptr;
  uint64_t first_event_ms_ = 0;         // of the burst being waited out
  std::optional<std::string> content_;  // as last read; nullopt: unreadable
};

}  // namespace readyns::config
