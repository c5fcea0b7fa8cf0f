// Locating the API server and reading its bearer token.
#include "k8s/api_access.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace readyns::k8s {

std::optional<ApiAccess> locate_api(const WatcherSettings& settings, std::string& error) {
  error.clear();
  if (settings.mode == Mode::kOff) return std::nullopt;
  ApiAccess access{
      .base_url = settings.api_url, .token_file = settings.token_file, .ca_file = settings.ca_file};
  if (access.base_url.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port) {
      if (settings.mode == Mode::kOn) {
        error =
            "kubernetes mode is on, but no api_url is set and KUBERNETES_SERVICE_HOST/PORT "
            "are not (not in a pod?)";
      }
      return std::nullopt;
    }
    std::string h = host;
    if (h.find(':') != std::string::npos) h = "[" + h + "]";  // an IPv6 address
    access.base_url = "https://" + h + ":" + port;
    std::string dir = kServiceAccountDir;
    if (access.token_file.empty()) access.token_file = dir + "/token";
    if (access.ca_file.empty()) access.ca_file = dir + "/ca.crt";
  }
  while (!access.base_url.empty() && access.base_url.back() == '/') access.base_url.pop_back();
  return access;
}

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  size_t begin = token.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  size_t end = token.find_last_not_of(" \t\r\n");
  return token.substr(begin, end - begin + 1);
}

}  // namespace readyns::k8s
