/*
 * Test module: allocates 1 MiB blocks (and touches them) until malloc fails, as a program with
 * a memory leak would. Then abort()s, or with the argument "exit" returns 3, so the runtime's
 * OUT_OF_MEMORY classification is tested through real wasi-libc malloc on both paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    void *head = NULL;
    size_t n = 0;
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) break;
        memset(p, (int)n, 1 << 20);
        *(void **)p = head;
        head = p;
        n++;
    }
    fprintf(stderr, "hog: malloc failed after %zu MiB (head %p)\n", n, head);
    if (argc > 1 && strcmp(argv[1], "exit") == 0) return 3;
    abort();
}
