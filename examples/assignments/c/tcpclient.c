/* TCP client: reads a line, sends it to HOST PORT, prints the reply. */
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
    int port = port_arg(argc, argv, 2);
    char service[16], line[BUFSIZE], reply[BUFSIZE];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *found;
    int err = getaddrinfo(argv[1], service, &hints, &found);
    if (err) {
        fprintf(stderr, "%s: %s\n", argv[1], gai_strerror(err));
        return 1;
    }
    size_t n = read_line(line, sizeof line);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(sock, found->ai_addr, found->ai_addrlen) < 0) {
        perror("connect");   /* "connect: Connection refused" when no server listens */
        return 1;
    }
    send(sock, line, n, 0);
    ssize_t got = recv(sock, reply, sizeof reply - 1, 0);
    if (got < 0) {
        perror("recv");
        return 1;
    }
    reply[got] = '\0';
    printf("From Server: %s\n", reply);
    close(sock);
    freeaddrinfo(found);
    return 0;
}
