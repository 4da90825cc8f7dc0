"""Monte Carlo estimate of pi, one task: stdin is "<seed> <samples>", stdout "<inside> <samples>".

Runs as a NovaCron Python task (CPython for WASI, numpy included). Randomness: numpy's
generator seeded from the input, so the result depends only on the input. (An unseeded
generator would also be the same on every replica: the sandbox seeds the task's entropy.)
"""

import sys

import numpy as np

seed, samples = (int(x) for x in sys.stdin.read().split())
rng = np.random.default_rng(seed)
inside = 0
left = samples
while left:  # in chunks, so memory stays small whatever the sample count
    n = min(left, 1_000_000)
    xy = rng.random((n, 2))
    inside += int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))
    left -= n
print(inside, samples)
