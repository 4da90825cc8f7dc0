/*
 * Test module for the runtime's WASI subset, through real wasi-libc: prints what a program can
 * observe of its world (argv, environment, clocks, sleep, randomness, files, stdin), one fact a
 * line, so tests can check that it is the job's world and not the host's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long ns(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv %d %s\n", i, argv[i]);
    int n = 0;
    for (char **e = environ; e && *e; e++) n++;
    printf("environ %d\n", n);

    struct timespec a, b, r;
    clock_gettime(CLOCK_REALTIME, &a);
    printf("realtime %lld\n", ns(a));
    printf("time %lld\n", (long long)time(NULL));
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    clock_getres(CLOCK_MONOTONIC, &r);
    printf("monotonic %lld %lld resolution %lld\n", ns(a), ns(b), ns(r));
    struct timespec nap = {1, 500000000};
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("after sleep %lld\n", ns(b));

    unsigned char bytes[16];
    int got = getentropy(bytes, sizeof bytes);
    printf("random %d ", got);
    for (size_t i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\n");

    errno = 0;
    FILE *f = fopen("/etc/passwd", "r");
    printf("fopen %s\n", f ? "opened" : "failed");

    size_t total = 0;
    unsigned long sum = 0;
    int c;
    while ((c = getchar()) != EOF) { total++; sum += (unsigned char)c; }
    printf("stdin %zu %lu\n", total, sum);
    fprintf(stderr, "probe: done\n");
    return 0;
}
