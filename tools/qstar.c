// qstar.c: the command-line tool (thin: parses flags, calls libqstar).
#include <stdio.h>
#include <string.h>
#include "qstar.h"

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("qstar %s: Quiet-STaR in C\n", QSTAR_VERSION);
        return argc < 2 ? 1 : 0;
    }
    fprintf(stderr, "qstar: unknown command '%s' (see qstar --help)\n", argv[1]);
    return 2;
}
