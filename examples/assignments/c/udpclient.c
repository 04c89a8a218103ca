/* UDP client: sends a line to HOST PORT and prints the reply; a datagram or its reply
   may be lost, so it waits one second and sends again, up to ten times. */
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common.h"

int main(int argc, char **argv) {
    int port = port_arg(argc, argv, 2);
    char service[16], line[BUFSIZE], reply[BUFSIZE];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *found;
    int err = getaddrinfo(argv[1], service, &hints, &found);
    if (err) {
        fprintf(stderr, "%s: %s\n", argv[1], gai_strerror(err));
        return 1;
    }
    size_t n = read_line(line, sizeof line);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval wait = {.tv_sec = 1};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    for (int attempt = 0; attempt < 10; attempt++) {
        sendto(sock, line, n, 0, found->ai_addr, found->ai_addrlen);
        ssize_t got = recvfrom(sock, reply, sizeof reply - 1, 0, NULL, NULL);
        if (got >= 0) {
            reply[got] = '\0';
            printf("From Server: %s\n", reply);
            return 0;
        }
    }
    fprintf(stderr, "no reply after 10 tries\n");
    return 1;
}
