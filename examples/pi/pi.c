/*
 * Monte Carlo estimate of pi, one NovaCron task.
 *
 * Input (stdin):  "<seed> <samples>\n", e.g. "7 1000000\n".
 * Output (stdout): "<inside> <samples>\n": how many of the samples fell inside the quarter circle.
 *
 * Why the output is counts, not an estimate: counts from many tasks add up exactly, so the
 * submitter sums them (pi ~= 4 * sum(inside) / sum(samples)) without losing precision, and two
 * volunteers running the same task produce byte-identical output (that is how NovaCron checks
 * results). The random numbers come from the seed in the input through a fixed generator
 * (splitmix64 + xoshiro256**), never from the clock, so every run of a task is the same.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t s[4];

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(void) { /* xoshiro256** */
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

/* A uniform double in [0, 1) from the top 53 bits. */
static inline double uniform(void) { return (double)(next() >> 11) * 0x1.0p-53; }

int main(void) {
    uint64_t seed, samples;
    if (scanf("%" SCNu64 " %" SCNu64, &seed, &samples) != 2) {
        fprintf(stderr, "pi: input must be \"<seed> <samples>\", e.g. \"7 1000000\"\n");
        return 2;
    }
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&seed);
    uint64_t inside = 0;
    for (uint64_t i = 0; i < samples; i++) {
        double x = uniform(), y = uniform();
        inside += (x * x + y * y < 1.0);
    }
    printf("%" PRIu64 " %" PRIu64 "\n", inside, samples);
    return 0;
}
