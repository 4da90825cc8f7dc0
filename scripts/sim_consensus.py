#!/usr/bin/env python3
"""Run many seeded PBFT simulations and print one JSON object: seeds run, faults injected per
kind, safety violations and liveness failures found (both must be zero), and the time taken.

    .venv/bin/python scripts/sim_consensus.py --seeds 10000 --jobs 2
    .venv/bin/python scripts/sim_consensus.py --seed 1234        # replay one seed with a trace

10,000 seeds take about 10 minutes with two processes on a 2-core machine.

Each seed picks n in {4, 7, 10}, up to f faulty replicas (silent, equivocating primary, double
voter, replayer, out-of-window sender, bad-signature flooder, Twins, restart with lost state),
a lossy/duplicating/reordering network with partitions, crashes and pauses, then heals; see
``testnet.pbft_sim.scenarios``. The simulation uses the MAC stand-in signer for speed; the test
suite runs the same scenarios with real Ed25519 envelopes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testnet.pbft_sim.scenarios import LIVENESS_BOUND, run_seed  # noqa: E402


def run_range(bounds: tuple[int, int]) -> dict:
    faults: Counter[str] = Counter()
    replicas_by_kind: Counter[str] = Counter()
    sizes: Counter[int] = Counter()
    violations, not_done, worst, commits, view_changes = [], [], 0.0, 0, 0
    for seed in range(*bounds):
        try:
            out = run_seed(seed)
        except Exception as err:  # a crash of the harness or replica is a finding, not a stop
            violations.append({"seed": seed, "error": f"{type(err).__name__}: {err}"})
            continue
        sizes[out.n] += 1
        faults.update(out.injected)
        # Twins are one faulty key on two nodes (r3a, r3b): count the key once.
        replicas_by_kind.update(k for name, k in out.faulty.items() if not name.endswith("b"))
        commits += out.commits
        view_changes += out.max_view
        if out.violations:
            violations.append({"seed": seed, "error": out.violations[0]})
        if not out.done:
            not_done.append(seed)
        else:
            worst = max(worst, out.recovery or 0.0)
    return dict(faults=faults, replicas_by_kind=replicas_by_kind, sizes=sizes,
                violations=violations, not_done=not_done, worst=worst, commits=commits,
                view_changes=view_changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, help="replay one seed and print its trace")
    args = ap.parse_args()

    if args.seed is not None:
        out = run_seed(args.seed, trace=True)
        for line in out.trace:
            print(line)
        print(json.dumps({"seed": out.seed, "n": out.n, "faulty": out.faulty,
                          "injected": dict(out.injected), "violations": out.violations,
                          "done": out.done, "recovery_s": out.recovery, "commits": out.commits,
                          "max_view": out.max_view}))
        sys.exit(1 if out.violations or not out.done else 0)

    t0 = time.perf_counter()
    step = max(1, args.seeds // (args.jobs * 8))
    chunks = [(s, min(s + step, args.start + args.seeds))
              for s in range(args.start, args.start + args.seeds, step)]
    total: dict = dict(faults=Counter(), replicas_by_kind=Counter(), sizes=Counter(),
                       violations=[], not_done=[], worst=0.0, commits=0, view_changes=0)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for part in pool.map(run_range, chunks):
            for key in ("faults", "replicas_by_kind", "sizes"):
                total[key].update(part[key])
            total["violations"] += part["violations"]
            total["not_done"] += part["not_done"]
            total["worst"] = max(total["worst"], part["worst"])
            total["commits"] += part["commits"]
            total["view_changes"] += part["view_changes"]
    report = {
        "seeds": args.seeds,
        "first_seed": args.start,
        "committee_sizes": {str(k): v for k, v in sorted(total["sizes"].items())},
        "faulty_replicas_by_kind": dict(sorted(total["replicas_by_kind"].items())),
        "faults_injected": dict(sorted(total["faults"].items())),
        "committed_batches_checked": total["commits"],
        "views_changed": total["view_changes"],
        "violations": len(total["violations"]),
        "violation_seeds": total["violations"][:20],
        "liveness_failures": len(total["not_done"]),
        "liveness_failure_seeds": total["not_done"][:20],
        "liveness_bound_s": LIVENESS_BOUND,
        "worst_recovery_after_heal_s": round(total["worst"], 3),
        "jobs": args.jobs,
        "time_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report))
    sys.exit(1 if report["violations"] or report["liveness_failures"] else 0)


if __name__ == "__main__":
    main()
