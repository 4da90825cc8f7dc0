/*
 * Conway's Game of Life on a torus: a long NovaCron task that checkpoints and resumes.
 *
 * Input (stdin):  "<seed> <side> <generations>\n", e.g. "7 512 2000\n": a side x side board,
 *                 each cell alive with probability 1/4 from the seed, run for that many
 *                 generations.
 * Output (stdout): "gen <g> alive <n>\n" every 100 generations, then
 *                  "final <generations> alive <n> hash <fnv-1a 64 of the board>\n".
 *
 * Why it is written as steps: a resumable task is a WASI reactor that exports
 * `novacron_step`. The volunteer's runtime calls it again and again; each call advances one
 * generation and returns 1 (more to do) or 0 (done). Between calls all state is in linear
 * memory (the static `st` and the two boards it points to), so the runtime can snapshot it at
 * fixed amounts of fuel, every replica at the same step, and another volunteer can continue from
 * the snapshot if this one leaves. The first call reads the input; nothing here depends on the
 * clock or on which machine runs which step.
 *
 * Build: see examples/build.sh (-mexec-model=reactor -mmutable-globals
 *        -Wl,--export=__stack_pointer).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SIDE 8192

static struct {
    int started;
    uint32_t side, generations, gen;
    uint8_t *cur, *next;
} st;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t alive(void) {
    uint64_t n = 0;
    for (size_t i = 0; i < (size_t)st.side * st.side; i++) n += st.cur[i];
    return n;
}

static int start(void) {
    uint64_t seed;
    if (scanf("%" SCNu64 " %" SCNu32 " %" SCNu32, &seed, &st.side, &st.generations) != 3 ||
        st.side < 3 || st.side > MAX_SIDE) {
        fprintf(stderr, "life: input must be \"<seed> <side 3..%d> <generations>\"\n", MAX_SIDE);
        exit(2);
    }
    size_t cells = (size_t)st.side * st.side;
    st.cur = calloc(cells, 1);
    st.next = calloc(cells, 1);
    if (!st.cur || !st.next) {
        fprintf(stderr, "life: no memory for a %" PRIu32 "-cell side\n", st.side);
        exit(3);
    }
    for (size_t i = 0; i < cells; i += 16) {  /* 16 cells from each 64-bit draw */
        uint64_t r = splitmix64(&seed);
        for (size_t j = 0; j < 16 && i + j < cells; j++) st.cur[i + j] = ((r >> (4 * j)) & 3) == 0;
    }
    st.started = 1;
    return 1;
}

static void generation(void) {
    uint32_t n = st.side;
    for (uint32_t y = 0; y < n; y++) {
        const uint8_t *up = st.cur + (size_t)((y + n - 1) % n) * n;
        const uint8_t *row = st.cur + (size_t)y * n;
        const uint8_t *down = st.cur + (size_t)((y + 1) % n) * n;
        uint8_t *out = st.next + (size_t)y * n;
        for (uint32_t x = 0; x < n; x++) {
            uint32_t l = (x + n - 1) % n, r = (x + 1) % n;
            int k = up[l] + up[x] + up[r] + row[l] + row[r] + down[l] + down[x] + down[r];
            out[x] = k == 3 || (k == 2 && row[x]);
        }
    }
    uint8_t *t = st.cur;
    st.cur = st.next;
    st.next = t;
}

__attribute__((export_name("novacron_step")))
int novacron_step(void) {
    if (!st.started) return start();
    if (st.gen < st.generations) {
        generation();
        st.gen++;
        if (st.gen % 100 == 0) printf("gen %" PRIu32 " alive %" PRIu64 "\n", st.gen, alive());
        return 1;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < (size_t)st.side * st.side; i++) h = (h ^ st.cur[i]) * 0x100000001b3ULL;
    printf("final %" PRIu32 " alive %" PRIu64 " hash %016" PRIx64 "\n", st.generations, alive(), h);
    fflush(stdout);
    return 0;
}
