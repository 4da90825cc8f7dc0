"""Combine the pi job's results: sum the counts, print the estimate and its standard error.

Usage: python3 examples/pi/combine.py RESULTS   (one "<inside> <samples>" line per task)
"""

import math
import sys


def main(path: str) -> None:
    inside = total = tasks = 0
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                a, b = (int(x) for x in line.split())
            except ValueError:
                sys.exit(f"{path}:{number}: expected '<inside> <samples>', got {line.strip()!r}")
            inside, total, tasks = inside + a, total + b, tasks + 1
    if total == 0:
        sys.exit(f"{path}: no samples")
    p = inside / total
    error = 4 * math.sqrt(p * (1 - p) / total)
    print(f"pi ~= {4 * p:.8f} from {total:,} samples in {tasks} tasks (standard error {error:.1g})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
