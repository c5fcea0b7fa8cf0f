/* readyns's stable C ABI: the embedded resolver for C, Go (cgo), Rust and Python (ctypes/cffi).
 *
 *   readyns_options* o = readyns_options_new();          // no listen address: in-process only
 *   readyns_options_set(o, "upstreams", "10.96.0.10:53");
 *   readyns_resolver* r;
 *   if (readyns_resolver_new(o, NULL, &r) != READYNS_OK)  // NULL: on a thread of its own
 *     fprintf(stderr, "%s\n", readyns_last_error());
 *   readyns_options_free(o);
 *   readyns_resolve(r, "example.org", 1, on_answer, ctx, NULL);  // NULL: no handle wanted
 *   ...
 *   readyns_resolver_free(r);
 *
 * Threads and callbacks are as for readyns::Resolver (readyns/resolver.hpp): with a loop, call
 * from its thread and callbacks come from uv_run(); without one, call from any thread and
 * callbacks come on the readyns thread. Pointers passed to a callback are valid only during it.
 * Handles are opaque; every function returning one has a matching _free. Nothing here changes
 * but by addition. */
#ifndef READYNS_READYNS_H
#define READYNS_READYNS_H

#include <stddef.h>
#include <stdint.h>

#include "readyns/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes; the same numbers as readyns::Errc. */
enum {
  READYNS_OK = 0,
  READYNS_EINVAL = 1,     /* a bad argument, option or name */
  READYNS_EUPSTREAM = 2,  /* the resolution failed (SERVFAIL) */
  READYNS_ENOTSYNCED = 3, /* the EndpointSlice table has not completed its first list */
  READYNS_ENOTABLE = 4,   /* no EndpointSlice watcher covers it: use readyns_endpoints() */
  READYNS_EBADANSWER = 5, /* an answer that could not be read */
  READYNS_ECLOSED = 6,    /* the resolver is shutting down */
  READYNS_ESYSTEM = 7     /* a listen address not bound, kube.mode "on" without API server */
};

typedef struct readyns_options readyns_options;
typedef struct readyns_resolver readyns_resolver;
typedef struct readyns_query readyns_query;
typedef struct readyns_subscription readyns_subscription;
struct uv_loop_s; /* libuv's uv_loop_t */

typedef struct readyns_record {
  const char* name; /* owner, presentation form with the final dot */
  uint16_t type;
  uint32_t ttl;
  const char* data; /* the address for A/AAAA, else the record data in presentation form */
} readyns_record;

typedef struct readyns_answer {
  int rcode; /* 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... */
  size_t record_count;
  const readyns_record* records; /* the answer section */
  size_t additional_count;
  const readyns_record* additional;
} readyns_answer;

typedef struct readyns_endpoint {
  const char* address;
  uint16_t port;        /* 0 when the Service lists no port */
  const char* hostname; /* "" when none */
  const char* zone;     /* "" when none */
} readyns_endpoint;

/* An endpoint list returned by readyns_endpoints_now(); free it with readyns_endpoints_free(). */
typedef struct readyns_endpoint_list {
  size_t count;
  readyns_endpoint* items;
} readyns_endpoint_list;

/* `status` is READYNS_OK or an error, with `message` saying more (valid during the call).
 * On error `answer` is NULL, and `endpoints` NULL with `count` 0. */
typedef void (*readyns_resolve_cb)(void* user, int status, const char* message,
                                   const readyns_answer* answer);
typedef void (*readyns_endpoints_cb)(void* user, int status, const char* message,
                                     const readyns_endpoint* endpoints, size_t count);

/* A short description of a status code; never NULL. */
READYNS_API const char* readyns_strerror(int status);
/* The message of the last failed call on this thread ("" if none); valid until the next call. */
READYNS_API const char* readyns_last_error(void);
/* "0.1.0" */
READYNS_API const char* readyns_version(void);

/* Options: the defaults of readyns::Options, but with no listen address. Keys are the config
 * file's ("upstreams", "forward", "listen", "cache.size", "upstream.resolve_timeout_ms",
 * "kube.mode", "kube.api", "kube.namespaces", "kube.cluster_domain", "log_level", ...); for a
 * list, set adds one item and clear empties it; "forward" takes "ZONE=ADDR[,ADDR...]". */
READYNS_API readyns_options* readyns_options_new(void);
READYNS_API void readyns_options_free(readyns_options* options);
READYNS_API int readyns_options_set(readyns_options* options, const char* key, const char* value);
READYNS_API int readyns_options_clear(readyns_options* options, const char* key);

/* A resolver on `loop` (from its thread), or on a thread of its own when `loop` is NULL. The
 * options are copied. On failure *out is NULL and readyns_last_error() says why. */
READYNS_API int readyns_resolver_new(const readyns_options* options, struct uv_loop_s* loop,
                                     readyns_resolver** out);
/* Cancels every query and subscription; see readyns::Resolver::~Resolver. Handles obtained from
 * it must still be freed, before or after. */
READYNS_API void readyns_resolver_free(readyns_resolver* resolver);
/* 1 when an EndpointSlice watcher runs, else 0. */
READYNS_API int readyns_watching_kubernetes(const readyns_resolver* resolver);

/* Resolves `name` for `type` (1 A, 28 AAAA, 33 SRV, ...); `callback` is called once, unless
 * cancelled. With `out` non-NULL, *out is a handle to cancel it and must be freed with
 * readyns_query_free(); with NULL the query cannot be cancelled. Errors found at once are
 * returned, and the callback is not called. */
READYNS_API int readyns_resolve(readyns_resolver* resolver, const char* name, uint16_t type,
                                readyns_resolve_cb callback, void* user, readyns_query** out);
/* A Service's endpoints for the port named `port_name` ("" or NULL: every port), from the
 * EndpointSlice table when synced, else from DNS (SRV and A/AAAA). Called back once. */
READYNS_API int readyns_endpoints(readyns_resolver* resolver, const char* service,
                                  const char* namespace_name, const char* port_name,
                                  readyns_endpoints_cb callback, void* user, readyns_query** out);
/* The same from the EndpointSlice table, now: READYNS_ENOTABLE without a watcher for the
 * namespace, READYNS_ENOTSYNCED before its first list. */
READYNS_API int readyns_endpoints_now(readyns_resolver* resolver, const char* service,
                                      const char* namespace_name, const char* port_name,
                                      readyns_endpoint_list** out);
READYNS_API void readyns_endpoints_free(readyns_endpoint_list* list);
/* Calls back with the endpoint set and then on every change, until the subscription is freed. */
READYNS_API int readyns_watch_endpoints(readyns_resolver* resolver, const char* service,
                                        const char* namespace_name, const char* port_name,
                                        readyns_endpoints_cb callback, void* user,
                                        readyns_subscription** out);

/* No callback once this returns (a running one is waited for, unless it is this very thread's).
 * The handle stays valid until freed. */
READYNS_API void readyns_query_cancel(readyns_query* query);
/* Cancels if still pending, and frees the handle. */
READYNS_API void readyns_query_free(readyns_query* query);
READYNS_API void readyns_subscription_free(readyns_subscription* subscription);

#ifdef __cplusplus
}
#endif

#endif /* READYNS_READYNS_H */
