/* A buggy TCP server: it echoes the line back as it came, forgetting to upper-case it. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
    int port = port_arg(argc, argv, 1);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);  /* restart during TIME_WAIT */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 16) < 0) {
        perror("bind/listen");
        return 1;
    }
    printf("The server is ready to receive\n");
    fflush(stdout);
    for (;;) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0)
            continue;
        char buf[BUFSIZE];
        ssize_t n = recv(conn, buf, sizeof buf, 0);
        if (n > 0) {
            send(conn, buf, (size_t)n, 0);
        }
        close(conn);
    }
}
