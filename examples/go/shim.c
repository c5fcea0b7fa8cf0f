// C trampolines between readyns's callbacks and the Go functions main.go exports.
//
// readyns's callbacks take void* user data and const pointers; the Go functions take a cgo.Handle
// as a uintptr_t.
#include <stdint.h>

#include "_cgo_export.h"
#include "readyns/readyns.h"

static void on_answer(void* user, int status, const char* message, const readyns_answer* answer) {
  goOnAnswer((uintptr_t)user, status, (char*)message, (readyns_answer*)answer);
}

static void on_endpoints(void* user, int status, const char* message,
                         const readyns_endpoint* endpoints, size_t count) {
  goOnEndpoints((uintptr_t)user, status, (char*)message, (readyns_endpoint*)endpoints, count);
}

int readyns_go_resolve(readyns_resolver* resolver, const char* name, uint16_t type,
                       uintptr_t handle) {
  return readyns_resolve(resolver, name, type, on_answer, (void*)handle, NULL);
}

int readyns_go_endpoints(readyns_resolver* resolver, const char* service, const char* ns,
                         const char* port, uintptr_t handle) {
  return readyns_endpoints(resolver, service, ns, port, on_endpoints, (void*)handle, NULL);
}
