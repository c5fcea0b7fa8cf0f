// The C ABI (readyns/readyns.h) over readyns::Resolver.
//
// Opaque handles, status codes, results as plain structs pointing into C++ strings for the length
// of a callback; no exception gets out.
#include "readyns/readyns.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "embed/dns.hpp"
#include "readyns/resolver.hpp"

struct readyns_options {
  readyns::Options options;
};
struct readyns_resolver {
  std::unique_ptr<readyns::Resolver> resolver;
};
struct readyns_query {
  readyns::Query query;
};
struct readyns_subscription {
  readyns::Subscription subscription;
};

namespace {

thread_local std::string last_error;

int fail(int status, std::string message) {
  last_error = std::move(message);
  return status;
}

int succeed() {
  last_error.clear();
  return READYNS_OK;
}

// What C callers get when they pass no options, and what readyns_options_new() starts from:
// the daemon's defaults, less its listen address (an embedder serves no DNS unless asked).
readyns::Options embedded_defaults() {
  readyns::Options o;
  o.listen.clear();
  return o;
}

std::vector<readyns_record> c_records(const std::vector<readyns::Record>& records) {
  std::vector<readyns_record> out;
  out.reserve(records.size());
  for (const readyns::Record& r : records) {
    out.push_back({.name = r.name.c_str(), .type = r.type, .ttl = r.ttl, .data = r.data.c_str()});
  }
  return out;
}

std::vector<readyns_endpoint> c_endpoints(const readyns::Endpoints& endpoints) {
  std::vector<readyns_endpoint> out;
  out.reserve(endpoints.size());
  for (const readyns::Endpoint& e : endpoints) {
    out.push_back({.address = e.address.c_str(),
                   .port = e.port,
                   .hostname = e.hostname.c_str(),
                   .zone = e.zone.c_str()});
  }
  return out;
}

readyns::Resolver::EndpointsCallback endpoints_callback(readyns_endpoints_cb callback, void* user) {
  return [callback, user](readyns::Result<readyns::Endpoints> result) {
    if (!result) {
      callback(user, int(result.error().code), result.error().message.c_str(), nullptr, 0);
      return;
    }
    std::vector<readyns_endpoint> items = c_endpoints(*result);
    callback(user, READYNS_OK, "", items.data(), items.size());
  };
}

std::string text_or_empty(const char* text) {
  return text ? text : "";
}

// The checks shared by the endpoint calls; READYNS_OK when the arguments may go on.
int check_endpoint_args(const readyns_resolver* resolver, const char* service,
                        const char* namespace_name) {
  if (!resolver || !resolver->resolver) return fail(READYNS_EINVAL, "no resolver given");
  if (!service || !readyns::embed::is_kube_name(service)) {
    return fail(READYNS_EINVAL, "bad Service name '" + text_or_empty(service) + "'");
  }
  if (!namespace_name || !readyns::embed::is_kube_name(namespace_name)) {
    return fail(READYNS_EINVAL, "bad namespace '" + text_or_empty(namespace_name) + "'");
  }
  return READYNS_OK;
}

// Starts a query for a C caller, who may keep it (to cancel it) or want only its callback; no
// exception may cross the C ABI, so one (out of memory, say) becomes READYNS_ESYSTEM.
template <class Start>
int start_query(readyns_query** out, Start start) {
  try {
    readyns::Query query = start();
    if (out) {
      *out = new readyns_query{std::move(query)};
    } else {
      query.detach();
    }
  } catch (const std::exception& e) {
    return fail(READYNS_ESYSTEM, e.what());
  }
  return succeed();
}

}  // namespace

extern "C" {

const char* readyns_strerror(int status) {
  if (status == READYNS_ESYSTEM) return "system error";
  if (status < READYNS_OK || status > READYNS_ECLOSED) return "unknown error";
  return readyns::describe(readyns::Errc(status));
}

const char* readyns_last_error(void) {
  return last_error.c_str();
}

const char* readyns_version(void) {
  return READYNS_VERSION;
}

readyns_options* readyns_options_new(void) {
  try {
    return new readyns_options{embedded_defaults()};
  } catch (const std::exception& e) {
    fail(READYNS_ESYSTEM, e.what());
    return nullptr;
  }
}

void readyns_options_free(readyns_options* options) {
  delete options;
}

int readyns_options_set(readyns_options* options, const char* key, const char* value) {
  if (!options || !key || !value) return fail(READYNS_EINVAL, "options, key and value are needed");
  const readyns::config::Setting* setting = readyns::config::setting_by_key(key);
  if (!setting) return fail(READYNS_EINVAL, std::string("unknown option '") + key + "'");
  try {
    setting->set(options->options, value);
  } catch (const std::exception& e) {
    return fail(READYNS_EINVAL, std::string(key) + ": " + e.what());
  }
  return succeed();
}

int readyns_options_clear(readyns_options* options, const char* key) {
  if (!options || !key) return fail(READYNS_EINVAL, "options and key are needed");
  const readyns::config::Setting* setting = readyns::config::setting_by_key(key);
  if (!setting) return fail(READYNS_EINVAL, std::string("unknown option '") + key + "'");
  if (!setting->clear) return fail(READYNS_EINVAL, std::string(key) + ": not a list");
  setting->clear(options->options);
  return succeed();
}

int readyns_resolver_new(const readyns_options* options, struct uv_loop_s* loop,
                         readyns_resolver** out) {
  if (!out) return fail(READYNS_EINVAL, "no place for the resolver given");
  *out = nullptr;
  try {
    readyns::Options o = options ? options->options : embedded_defaults();
    auto resolver = loop ? std::make_unique<readyns::Resolver>(loop, o)
                         : std::make_unique<readyns::Resolver>(o);
    *out = new readyns_resolver{std::move(resolver)};
  } catch (const std::invalid_argument& e) {
    return fail(READYNS_EINVAL, e.what());
  } catch (const std::exception& e) {
    return fail(READYNS_ESYSTEM, e.what());
  }
  return succeed();
}

void readyns_resolver_free(readyns_resolver* resolver) {
  delete resolver;
}

int readyns_watching_kubernetes(const readyns_resolver* resolver) {
  return resolver && resolver->resolver && resolver->resolver->watching_kubernetes() ? 1 : 0;
}

int readyns_resolve(readyns_resolver* resolver, const char* name, uint16_t type,
                    readyns_resolve_cb callback, void* user, readyns_query** out) {
  if (out) *out = nullptr;
  if (!resolver || !resolver->resolver || !callback) {
    return fail(READYNS_EINVAL, "a resolver and a callback are needed");
  }
  if (!name || readyns::embed::build_query(name, type).empty()) {
    return fail(READYNS_EINVAL, "bad domain name '" + text_or_empty(name) + "'");
  }
  return start_query(out, [&] {
    return resolver->resolver->resolve(
        name, type, [callback, user](readyns::Result<readyns::Answer> result) {
          if (!result) {
            callback(user, int(result.error().code), result.error().message.c_str(), nullptr);
            return;
          }
          std::vector<readyns_record> records = c_records(result->records);
          std::vector<readyns_record> additional = c_records(result->additional);
          readyns_answer answer{.rcode = result->rcode,
                                .record_count = records.size(),
                                .records = records.data(),
                                .additional_count = additional.size(),
                                .additional = additional.data()};
          callback(user, READYNS_OK, "", &answer);
        });
  });
}

int readyns_endpoints(readyns_resolver* resolver, const char* service, const char* namespace_name,
                      const char* port_name, readyns_endpoints_cb callback, void* user,
                      readyns_query** out) {
  if (out) *out = nullptr;
  if (int status = check_endpoint_args(resolver, service, namespace_name)) return status;
  if (!callback) return fail(READYNS_EINVAL, "no callback given");
  return start_query(out, [&] {
    return resolver->resolver->endpoints(service, namespace_name, text_or_empty(port_name),
                                         endpoints_callback(callback, user));
  });
}

int readyns_endpoints_now(readyns_resolver* resolver, const char* service,
                          const char* namespace_name, const char* port_name,
                          readyns_endpoint_list** out) {
  if (!out) return fail(READYNS_EINVAL, "no place for the list given");
  *out = nullptr;
  if (int status = check_endpoint_args(resolver, service, namespace_name)) return status;
  try {
    readyns::Result<readyns::Endpoints> result =
        resolver->resolver->endpoints(service, namespace_name, text_or_empty(port_name));
    if (!result) return fail(int(result.error().code), result.error().message);
    // Plain malloc'd C memory, so that the list outlives any C++ object.
    auto* list = static_cast<readyns_endpoint_list*>(std::calloc(1, sizeof(readyns_endpoint_list)));
    if (!list) throw std::bad_alloc();
    *out = list;
    if (!result->empty()) {
      list->items =
          static_cast<readyns_endpoint*>(std::calloc(result->size(), sizeof(readyns_endpoint)));
      if (!list->items) throw std::bad_alloc();
    }
    for (const readyns::Endpoint& e : *result) {
      readyns_endpoint& item = list->items[list->count++];
      item.port = e.port;
      item.address = strdup(e.address.c_str());
      item.hostname = strdup(e.hostname.c_str());
      item.zone = strdup(e.zone.c_str());
      if (!item.address || !item.hostname || !item.zone) throw std::bad_alloc();
    }
  } catch (const std::exception& e) {
    readyns_endpoints_free(*out);
    *out = nullptr;
    return fail(READYNS_ESYSTEM, e.what());
  }
  return succeed();
}

void readyns_endpoints_free(readyns_endpoint_list* list) {
  if (!list) return;
  for (size_t i = 0; i < list->count; ++i) {
    std::free(const_cast<char*>(list->items[i].address));
    std::free(const_cast<char*>(list->items[i].hostname));
    std::free(const_cast<char*>(list->items[i].zone));
  }
  std::free(list->items);
  std::free(list);
}

int readyns_watch_endpoints(readyns_resolver* resolver, const char* service,
                            const char* namespace_name, const char* port_name,
                            readyns_endpoints_cb callback, void* user, readyns_subscription** out) {
  if (!out) return fail(READYNS_EINVAL, "no place for the subscription given");
  *out = nullptr;
  if (int status = check_endpoint_args(resolver, service, namespace_name)) return status;
  if (!callback) return fail(READYNS_EINVAL, "no callback given");
  try {
    *out = new readyns_subscription{resolver->resolver->watch_endpoints(
        service, namespace_name, text_or_empty(port_name), endpoints_callback(callback, user))};
  } catch (const std::exception& e) {
    return fail(READYNS_ESYSTEM, e.what());
  }
  return succeed();
}

void readyns_query_cancel(readyns_query* query) {
  if (query) query->query.cancel();
}

void readyns_query_free(readyns_query* query) {
  delete query;
}

void readyns_subscription_free(readyns_subscription* subscription) {
  delete subscription;
}

}  // extern "C"
