/* What the four programs share: the port from the command line, and upper-casing. */
#ifndef COMMON_H
#define COMMON_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFSIZE 2048

static inline int port_arg(int argc, char **argv, int index) {
    if (argc <= index) {
        fprintf(stderr, "usage: %s %s\n", argv[0], index == 1 ? "PORT" : "HOST PORT");
        exit(2);
    }
    return atoi(argv[index]);
}

static inline void upper(char *text, size_t n) {
    for (size_t i = 0; i < n; i++)
        text[i] = (char)toupper((unsigned char)text[i]);
}

/* The line to send, from stdin, without its newline (like the lecture's input()). */
static inline size_t read_line(char *buf, size_t size) {
    printf("Input lowercase sentence: ");
    fflush(stdout);
    if (!fgets(buf, (int)size, stdin))
        buf[0] = '\0';
    size_t n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    return n;
}

#endif
