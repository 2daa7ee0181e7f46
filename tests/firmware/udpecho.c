/* udpecho PORT: answer every UDP datagram to PORT (any address) with
 * "echo: " and the datagram, to its sender; for the published-port tests. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: udpecho PORT\n");
    return 2;
  }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("udpecho");
    return 1;
  }
  char buf[65536];
  memcpy(buf, "echo: ", 6);
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, buf + 6, sizeof buf - 6, 0, (struct sockaddr *)&from, &len);
    if (n >= 0)
      sendto(s, buf, n + 6, 0, (struct sockaddr *)&from, len);
  }
}
