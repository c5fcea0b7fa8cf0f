// The readyns daemon: flags and config file, logging, signals, and the Server.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "config/cli.hpp"
#include "config/file.hpp"
#include "core/parts.hpp"
#include "net/address.hpp"
#include "readyns/server.hpp"

namespace {

readyns::Server* g_server = nullptr;

// Server::stop() only does uv_async_send, which libuv documents as async-signal-safe.
void on_signal(int) {
  if (g_server) g_server->stop();
}

// request_reload() is a uv_async_send too; the re-reading happens on the server's loop.
void on_hangup(int) {
  if (g_server) g_server->request_reload();
}

}  // namespace

int main(int argc, char** argv) {
  readyns::config::CommandLine cl;
  readyns::Options options;
  try {
    cl = readyns::config::parse_command_line(argc, argv);
    if (cl.help) {
      std::fputs(readyns::config::usage().c_str(), stdout);
      return 0;
    }
    options = readyns::config::effective_options(cl);
  } catch (const readyns::config::UsageError& e) {
    std::fprintf(stderr, "readyns: %s (see --help)\n", e.what());
    return 2;
  } catch (const readyns::config::ConfigError& e) {
    std::fprintf(stderr, "readyns: %s\n", e.what());
    return 2;
  }
  if (cl.check_config) {
    std::puts("config OK");
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("readyns");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(options.log_level));

  std::signal(SIGPIPE, SIG_IGN);
  // Held back while the server starts: its sockets are bound (and visible to whoever sends
  // the signal) before the handlers exist. Worker threads inherit the mask, so the signals
  // reach this thread once it is lifted.
  sigset_t control_signals;
  sigemptyset(&control_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&control_signals, sig);
  pthread_sigmask(SIG_BLOCK, &control_signals, nullptr);
  bool started = false;
  try {
    readyns::Server server(options);
    started = true;
    g_server = &server;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    // SIGHUP: read the config file again and apply it; a bad one is refused, the old kept.
    server.on_reload_request([&server, &cl] {
      try {
        server.reload(readyns::config::effective_options(cl));
        spdlog::info("reloaded settings{}",
                     cl.config_path.empty() ? "" : " from " + cl.config_path);
      } catch (const std::exception& e) {
        spdlog::error("reload refused, keeping the running settings: {}", e.what());
      }
    });
    struct sigaction hup {};
    hup.sa_handler = on_hangup;
    sigaction(SIGHUP, &hup, nullptr);
    if (options.watch_config) server.reload_on_change(cl.config_path);
    pthread_sigmask(SIG_UNBLOCK, &control_signals, nullptr);
    if (!cl.config_path.empty()) spdlog::info("settings from {}", cl.config_path);
    std::string listening;  // with the ports that were left out, so the log says what is bound
    for (const std::string& text : options.listen) {
      listening +=
          (listening.empty() ? "" : ", ") + readyns::net::parse_address(text, 53)->to_string();
    }
    spdlog::info("readyns serving on {} with {} thread(s)", listening,
                 readyns::core::worker_count(options));
    server.run();
    g_server = nullptr;
    spdlog::info("readyns stopped");
  } catch (const std::exception& e) {
    // What stops it starting (an address it cannot listen on, no API server under --kube=on) is
    // the settings' fault: exit 2 as for a bad flag. Later failures are the run's.
    if (!started) {
      std::fprintf(stderr, "readyns: %s\n", e.what());
      return 2;
    }
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
