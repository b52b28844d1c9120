/*
 * Round trip of one byte between two processes, through a pipe and through loopback TCP:
 * what one wake-up of a sleeping process costs on this machine, with nothing else in the
 * way. Explains the QD1 figures of bench/RESULTS.md (frontends): every hop between
 * processes at queue depth 1 pays a wake-up each way.
 *
 *   gcc -O2 -o /tmp/wakeup-rtt bench/probes/wakeup-rtt.c && /tmp/wakeup-rtt
 *   taskset -c 0 /tmp/wakeup-rtt      # both processes on one CPU: no cross-CPU wake-up
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUND_TRIPS 20000

static double now(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return time.tv_sec + time.tv_nsec / 1e9;
}

static int pipe_round_trips(void) {
  int there[2], back[2];
  char byte = 0;
  if (pipe(there) != 0 || pipe(back) != 0) return perror("pipe"), 1;
  pid_t child = fork();
  if (child == 0) {
    for (int index = 0; index < ROUND_TRIPS; index++) {
      if (read(there[0], &byte, 1) != 1 || write(back[1], &byte, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  double start = now();
  for (int index = 0; index < ROUND_TRIPS; index++) {
    if (write(there[1], &byte, 1) != 1 || read(back[0], &byte, 1) != 1) return perror("pipe i/o"), 1;
  }
  printf("pipe round trip: %.1f us\n", (now() - start) / ROUND_TRIPS * 1e6);
  waitpid(child, NULL, 0);
  return 0;
}

static int tcp_round_trips(void) {
  int one = 1;
  char bytes[64] = {0};
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0)
    return perror("listen"), 1;
  pid_t child = fork();
  if (child == 0) {
    int connection = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(connection, (struct sockaddr *)&address, sizeof address) != 0) _exit(1);
    setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int index = 0; index < ROUND_TRIPS; index++) {
      if (recv(connection, bytes, sizeof bytes, MSG_WAITALL) != sizeof bytes) _exit(1);
      if (send(connection, bytes, sizeof bytes, 0) != sizeof bytes) _exit(1);
    }
    _exit(0);
  }
  int connection = accept(listener, NULL, NULL);
  setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double start = now();
  for (int index = 0; index < ROUND_TRIPS; index++) {
    if (send(connection, bytes, sizeof bytes, 0) != sizeof bytes) return perror("send"), 1;
    if (recv(connection, bytes, sizeof bytes, MSG_WAITALL) != sizeof bytes) return perror("recv"), 1;
  }
  printf("loopback TCP round trip (64 bytes): %.1f us\n", (now() - start) / ROUND_TRIPS * 1e6);
  waitpid(child, NULL, 0);
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  return pipe_round_trips() || tcp_round_trips();
}
