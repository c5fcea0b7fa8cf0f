/* The bench's floors: the least a UDP DNS server can cost on this machine, in three shapes.
 *
 * No parsing, no cache.
 *
 * Usage: floor ADDR PORT                 echoes each query with QR set, blocking in recvmmsg
 *        floor ADDR PORT --epoll         the same, woken by epoll_wait as event loops are
 *        floor ADDR PORT --relay UPPORT  forwards each query to ADDR:UPPORT, relays the reply
 *
 * The first is what the kernel's loopback UDP path costs a server that batches with
 * recvmmsg/sendmmsg, so no real server can go below it. The second adds what waking through epoll
 * costs, the least any server built on an event loop (libuv, Unbound's, Knot Resolver's) pays per
 * wake-up. The third is the least a forwarder costs per cache miss: as dnsdist does, one thread
 * blocks on the clients' socket and one on the upstream's, and a query's only bookkeeping is a slot
 * holding its client and ID.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 64, MAXPKT = 4096 };

struct batch {
  char bufs[BATCH][MAXPKT];
  struct sockaddr_in peers[BATCH];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
};

/* Receives what is waiting on fd (flags: MSG_WAITFORONE to block for the first datagram) into b;
 * returns how many datagrams, each at least a DNS header long, now lead b->msgs. */
static int receive(int fd, struct batch* b, int flags) {
  for (int i = 0; i < BATCH; i++) {
    b->iov[i] = (struct iovec){.iov_base = b->bufs[i], .iov_len = MAXPKT};
    b->msgs[i].msg_hdr = (struct msghdr){.msg_name = &b->peers[i],
                                         .msg_namelen = sizeof b->peers[i],
                                         .msg_iov = &b->iov[i],
                                         .msg_iovlen = 1};
  }
  int n = recvmmsg(fd, b->msgs, BATCH, flags, NULL);
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (b->msgs[i].msg_len < 12) /* shorter than a DNS header: drop */
      continue;
    b->iov[i].iov_len = b->msgs[i].msg_len;
    if (kept != i) {
      b->msgs[kept] = b->msgs[i];
    }
    kept++;
  }
  return kept;
}

static void send_all(int fd, struct batch* b, int n) {
  for (int sent = 0; sent < n;) {
    int r = sendmmsg(fd, b->msgs + sent, (unsigned)(n - sent), 0);
    if (r <= 0) break; /* a full socket buffer: drop the rest like a loaded server would */
    sent += r;
  }
}

static void echo(int fd, struct batch* b, int n) {
  for (int i = 0; i < n; i++) {
    ((char*)b->msgs[i].msg_hdr.msg_iov->iov_base)[2] |= (char)0x80; /* QR = response */
  }
  send_all(fd, b, n);
}

static int listen_fd;
static int upstream_fd; /* --relay: connected to the upstream */

static void* blocking_echo(void* arg) {
  (void)arg;
  static struct batch b;
  for (;;) echo(listen_fd, &b, receive(listen_fd, &b, MSG_WAITFORONE));
  return NULL;
}

static void* epoll_echo(void* arg) {
  (void)arg;
  static struct batch b;
  int ep = epoll_create1(0);
  struct epoll_event want = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &want) < 0) {
    perror("epoll");
    exit(1);
  }
  for (;;) {
    struct epoll_event ready;
    if (epoll_wait(ep, &ready, 1, -1) == 1)
      echo(listen_fd, &b, receive(listen_fd, &b, MSG_DONTWAIT));
  }
  return NULL;
}

/* --relay: the client and ID of each query in flight, by the ID it was given upstream. */
static struct {
  struct sockaddr_in client;
  uint16_t id;
} in_flight[65536];

static uint16_t get_id(const struct mmsghdr* m) {
  const unsigned char* p = m->msg_hdr.msg_iov->iov_base;
  return (uint16_t)(p[0] << 8 | p[1]);
}

static void set_id(struct mmsghdr* m, uint16_t id) {
  unsigned char* p = m->msg_hdr.msg_iov->iov_base;
  p[0] = (unsigned char)(id >> 8);
  p[1] = (unsigned char)id;
}

static void* relay_queries(void* arg) {
  (void)arg;
  static struct batch b;
  uint16_t next_id = 0;
  for (;;) {
    int n = receive(listen_fd, &b, MSG_WAITFORONE);
    for (int i = 0; i < n; i++) {
      uint16_t id = next_id++;
      in_flight[id].client = *(struct sockaddr_in*)b.msgs[i].msg_hdr.msg_name;
      in_flight[id].id = get_id(&b.msgs[i]);
      set_id(&b.msgs[i], id);
      b.msgs[i].msg_hdr.msg_name = NULL; /* the upstream socket is connected */
      b.msgs[i].msg_hdr.msg_namelen = 0;
    }
    send_all(upstream_fd, &b, n);
  }
  return NULL;
}

static void* relay_replies(void* arg) {
  (void)arg;
  static struct batch b;
  for (;;) {
    int n = receive(upstream_fd, &b, MSG_WAITFORONE);
    for (int i = 0; i < n; i++) {
      uint16_t id = get_id(&b.msgs[i]);
      b.peers[i] = in_flight[id].client;
      b.msgs[i].msg_hdr.msg_name = &b.peers[i];
      b.msgs[i].msg_hdr.msg_namelen = sizeof b.peers[i];
      set_id(&b.msgs[i], in_flight[id].id);
    }
    send_all(listen_fd, &b, n);
  }
  return NULL;
}

static void start(void* (*run)(void*)) {
  pthread_t t;
  if (pthread_create(&t, NULL, run, NULL) != 0) {
    perror("pthread_create");
    exit(1);
  }
}

int main(int argc, char** argv) {
  int epoll = argc == 4 && strcmp(argv[3], "--epoll") == 0;
  int relay = argc == 5 && strcmp(argv[3], "--relay") == 0;
  if (argc != 3 && !epoll && !relay) {
    fprintf(stderr, "usage: %s ADDR PORT [--epoll | --relay UPPORT]\n", argv[0]);
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  listen_fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    perror("socket/bind");
    return 1;
  }
  if (relay) {
    struct sockaddr_in up = sa;
    up.sin_port = htons((unsigned short)atoi(argv[4]));
    upstream_fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (upstream_fd < 0 || connect(upstream_fd, (struct sockaddr*)&up, sizeof up) < 0) {
      perror("upstream socket/connect");
      return 1;
    }
  }
  /* The threads never see SIGTERM/SIGINT: this one waits for them and ends the process. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  if (relay) {
    start(relay_queries);
    start(relay_replies);
  } else {
    start(epoll ? epoll_echo : blocking_echo);
  }
  int sig;
  sigwait(&stop, &sig);
  return 0;
}
