/* UDP uppercase server: every datagram goes back to its sender in upper case. */
#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"

int main(int argc, char **argv) {
    int port = port_arg(argc, argv, 1);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    printf("The server is ready to receive\n");
    fflush(stdout);
    for (;;) {
        char buf[BUFSIZE];
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0)
            continue;
        upper(buf, (size_t)n);
        sendto(sock, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}
