#!/usr/bin/env python3
"""Fuzz every protocol decoder: random and mutated bytes must raise only protocol errors.

    .venv/bin/python scripts/fuzz_protocol.py [--examples 10000] [--seed 1]

Prints one JSON object: examples per target, how many decoded, how many were rejected (by
error reason), and any escapes (other exception types) with the input in hex to replay.
Exit status 1 if anything escaped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from protocol.errors import RemoteProtocolError  # noqa: E402
from tests.protocol.fuzz_targets import TARGETS, mutate, seeds_for  # noqa: E402


def fuzz(examples: int, seed: int) -> dict:
    rng = random.Random(seed)
    report: dict = {"seed": seed, "examples_per_target": examples, "targets": {}, "escapes": []}
    t0 = time.perf_counter()
    for name, decode in TARGETS.items():
        seeds = seeds_for(name)
        decoded = 0
        reasons: dict[str, int] = {}
        for i in range(examples):
            if i % 4 == 0:
                data = rng.randbytes(rng.randint(0, 256))
            else:
                data = mutate(rng, rng.choice(seeds))
            try:
                decode(data)
                decoded += 1
            except RemoteProtocolError as err:
                reasons[err.reason] = reasons.get(err.reason, 0) + 1
            except Exception as err:  # noqa: BLE001 - the point is to catch escapes
                report["escapes"].append({"target": name, "error": f"{type(err).__name__}: {err}",
                                          "input_hex": data.hex()})
        report["targets"][name] = {"decoded": decoded, "rejected": reasons}
    report["seconds"] = round(time.perf_counter() - t0, 2)
    report["total_examples"] = examples * len(TARGETS)
    report["passed"] = not report["escapes"]
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000, help="examples per target")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    report = fuzz(args.examples, args.seed)
    print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
