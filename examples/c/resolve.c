/* Resolves a name, or lists a Service's endpoints, with readyns embedded through its C ABI.
 *
 * The resolver runs on a thread of its own, and this program waits for the callback.
 *
 *   resolve UPSTREAM NAME [TYPE]                e.g. resolve 10.96.0.10:53 example.org AAAA
 *   resolve UPSTREAM -e SERVICE NAMESPACE [PORT]     endpoints, from DNS (SRV, then A/AAAA)
 *
 * Build: cc resolve.c $(pkg-config --cflags --libs readyns) -o resolve */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readyns/readyns.h"

/* The callbacks come on the readyns thread: they hand the outcome over under a mutex. */
struct waiter {
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int done;
  int status;
};

static void finish(struct waiter* w, int status) {
  pthread_mutex_lock(&w->mutex);
  w->done = 1;
  w->status = status;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mutex);
}

static const char* type_name(uint16_t type) {
  switch (type) {
    case 1:
      return "A";
    case 5:
      return "CNAME";
    case 16:
      return "TXT";
    case 28:
      return "AAAA";
    case 33:
      return "SRV";
    default:
      return "TYPE";
  }
}

static void on_answer(void* user, int status, const char* message, const readyns_answer* answer) {
  if (status != READYNS_OK) {
    fprintf(stderr, "resolve: %s: %s\n", readyns_strerror(status), message);
  } else {
    printf("rcode %d\n", answer->rcode);
    for (size_t i = 0; i < answer->record_count; ++i) {
      const readyns_record* r = &answer->records[i];
      printf("%s %u %s %s\n", r->name, (unsigned)r->ttl, type_name(r->type), r->data);
    }
    if (answer->rcode != 0) status = READYNS_EUPSTREAM;
  }
  finish(user, status);
}

static void on_endpoints(void* user, int status, const char* message,
                         const readyns_endpoint* endpoints, size_t count) {
  if (status != READYNS_OK) {
    fprintf(stderr, "endpoints: %s: %s\n", readyns_strerror(status), message);
  }
  for (size_t i = 0; i < count; ++i) {
    printf("%s %u %s\n", endpoints[i].address, (unsigned)endpoints[i].port,
           endpoints[i].hostname[0] ? endpoints[i].hostname : "-");
  }
  finish(user, status);
}

static uint16_t parse_type(const char* text) {
  if (!strcmp(text, "A")) return 1;
  if (!strcmp(text, "AAAA")) return 28;
  if (!strcmp(text, "SRV")) return 33;
  if (!strcmp(text, "TXT")) return 16;
  return (uint16_t)atoi(text);
}

int main(int argc, char** argv) {
  int endpoints = argc >= 5 && !strcmp(argv[2], "-e");
  if (argc < 3 || (!endpoints && argc > 4)) {
    fprintf(stderr, "usage: %s UPSTREAM NAME [TYPE] | %s UPSTREAM -e SERVICE NAMESPACE [PORT]\n",
            argv[0], argv[0]);
    return 2;
  }
  readyns_options* options = readyns_options_new();
  if (readyns_options_set(options, "upstreams", argv[1]) != READYNS_OK ||
      readyns_options_set(options, "kube.mode", "off") != READYNS_OK ||
      readyns_options_set(options, "log_level", "warn") != READYNS_OK) {
    fprintf(stderr, "%s\n", readyns_last_error());
    return 2;
  }
  readyns_resolver* resolver;
  int status = readyns_resolver_new(options, NULL, &resolver); /* NULL: its own thread */
  readyns_options_free(options);
  if (status != READYNS_OK) {
    fprintf(stderr, "%s\n", readyns_last_error());
    return 2;
  }

  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  if (endpoints) {
    status = readyns_endpoints(resolver, argv[3], argv[4], argc > 5 ? argv[5] : "", on_endpoints,
                               &w, NULL);
  } else {
    status =
        readyns_resolve(resolver, argv[2], argc > 3 ? parse_type(argv[3]) : 1, on_answer, &w, NULL);
  }
  if (status != READYNS_OK) {
    fprintf(stderr, "%s\n", readyns_last_error());
  } else {
    pthread_mutex_lock(&w.mutex);
    while (!w.done) pthread_cond_wait(&w.cond, &w.mutex);
    status = w.status;
    pthread_mutex_unlock(&w.mutex);
  }
  readyns_resolver_free(resolver);
  return status == READYNS_OK ? 0 : 1;
}
