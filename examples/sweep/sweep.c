/*
 * Parameter sweep, one NovaCron task per parameter value: the Lyapunov exponent of the
 * logistic map x -> r x (1 - x).
 *
 * Arguments (the job's argv, the same for every task):  sweep <r_min> <r_max> <steps>
 * Input (stdin):   "<i>\n", the task's index in 0 .. steps-1.
 * Output (stdout): "<i> <r> <lambda>\n" with r = r_min + (r_max - r_min) * i / (steps - 1)
 *                  and lambda = the mean of log|r (1 - 2x)| along the orbit.
 *
 * lambda < 0: the orbit settles (fixed point or cycle); lambda > 0: chaos. Plotting lambda
 * against r shows the period-doubling road to chaos near r = 3.57. Floating point in
 * WebAssembly is IEEE 754 with one rounding mode, and log() comes from wasi-libc, so every
 * volunteer computes the same bits for the same task.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define WARMUP 1000
#define ITERATIONS 100000

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "sweep: arguments must be <r_min> <r_max> <steps>, e.g. 2.5 4.0 100\n");
        return 2;
    }
    double r_min = strtod(argv[1], NULL), r_max = strtod(argv[2], NULL);
    long steps = strtol(argv[3], NULL, 10);
    long i;
    if (steps < 2 || scanf("%ld", &i) != 1 || i < 0 || i >= steps) {
        fprintf(stderr, "sweep: input must be an index 0 <= i < steps (steps >= 2)\n");
        return 2;
    }
    double r = r_min + (r_max - r_min) * (double)i / (double)(steps - 1);
    double x = 0.2, sum = 0.0; /* 0.5 would map to 1, then to the fixed point 0, at r = 4 */
    for (int n = 0; n < WARMUP; n++) x = r * x * (1.0 - x);
    for (int n = 0; n < ITERATIONS; n++) {
        x = r * x * (1.0 - x);
        double d = fabs(r * (1.0 - 2.0 * x));
        sum += log(d > 1e-300 ? d : 1e-300);
    }
    printf("%ld %.17g %.17g\n", i, r, sum / ITERATIONS);
    return 0;
}
