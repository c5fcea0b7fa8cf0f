// Where the Kubernetes API server is and how to authenticate to it.
//
// Either from the explicit settings, or from a pod's environment and service account.
#pragma once

#include <optional>
#include <string>

#include "k8s/settings.hpp"

namespace readyns::k8s {

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ApiAccess {
  std::string base_url;    // "https://host:port", no trailing slash
  std::string token_file;  // empty: send no bearer token
  std::string ca_file;     // empty: verify against the system's CAs
};

// The API server under `settings.mode`: api_url if set, else in a pod KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT with the service account's token and CA (token_file and ca_file override
// them). nullopt with kOff, or when none is found; with kOn that is an error, said in `error`.
std::optional<ApiAccess> locate_api(const WatcherSettings& settings, std::string& error);

// The bearer token in `path`, surrounding whitespace trimmed; empty if it cannot be read. Read
// anew before every request, as the kubelet rotates projected tokens.
std::string read_token(const std::string& path);

}  // namespace readyns::k8s
