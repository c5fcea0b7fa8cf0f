/* The bench's floor: a UDP "DNS server" that only sets the QR bit and sends each query back.
 *
 * No parsing, no cache.
 *
 * Usage: floor ADDR PORT
 * Its CPU per query is what the kernel's loopback UDP path costs a server that batches with
 * recvmmsg/sendmmsg, so no real server can go below it; comparing against it shows how much of a
 * server's cost is its own work.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 64, MAXPKT = 4096 };

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s ADDR PORT\n", argv[0]);
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    perror("socket/bind");
    return 1;
  }
  /* No SA_RESTART: SIGTERM must interrupt the blocking recvmmsg so the loop sees `stop`. */
  struct sigaction act = {.sa_handler = on_term};
  sigaction(SIGTERM, &act, NULL);
  sigaction(SIGINT, &act, NULL);

  static char bufs[BATCH][MAXPKT];
  static struct sockaddr_in peers[BATCH];
  static struct iovec iov[BATCH];
  static struct mmsghdr msgs[BATCH];
  while (!stop) {
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = MAXPKT};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                        .msg_namelen = sizeof peers[i],
                                        .msg_iov = &iov[i],
                                        .msg_iovlen = 1};
    }
    /* MSG_WAITFORONE: block for the first datagram, then take whatever else is already queued. */
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    int out = 0;
    for (int i = 0; i < n; i++) {
      if (msgs[i].msg_len < 12) /* shorter than a DNS header: drop */
        continue;
      bufs[i][2] |= (char)0x80; /* QR = response; everything else echoed unchanged */
      iov[i].iov_len = msgs[i].msg_len;
      if (out != i) {
        msgs[out] = msgs[i];
      }
      out++;
    }
    for (int sent = 0; sent < out;) {
      int r = sendmmsg(fd, msgs + sent, (unsigned)(out - sent), 0);
      if (r <= 0) break; /* a full socket buffer: drop the rest like a loaded server would */
      sent += r;
    }
  }
  close(fd);
  return 0;
}
