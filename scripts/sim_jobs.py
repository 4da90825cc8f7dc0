#!/usr/bin/env python3
"""Run many seeded simulations of the whole job protocol and print one JSON object: seeds run,
tasks by outcome, faults injected, lies told by Byzantine workers, and the three counts that
must be zero (wrong results accepted, jobs stuck, certificates failing offline).

    .venv/bin/python scripts/sim_jobs.py --seeds 1000 --jobs 2
    .venv/bin/python scripts/sim_jobs.py --seed 1234        # replay one seed, with its trace

Each seed builds 1-2 shard committees (real PBFT replicas of the real ledger), 5-12 workers
(honest, liars, colluders below the quorum, flaky, withholding, crashing), 1-3 jobs, and a
fault plan (loss, duplication, delay, partitions, member crashes, worker churn) that heals;
see ``testnet.job_sim.scenarios``. A failing seed is printed; ``--seed`` replays it exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testnet.job_sim.scenarios import run_seed  # noqa: E402


def run_range(bounds: tuple[int, int]) -> dict[str, Any]:
    tasks: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    failing: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    for seed in range(*bounds):
        try:
            out = run_seed(seed)
        except Exception as err:  # a crash of the harness or the code under test is a finding
            failing.append({"seed": seed, "error": f"{type(err).__name__}: {err}"})
            continue
        f = out.findings
        tasks.update(f.tasks)
        faults.update(out.injected)
        workers.update(out.workers.values())
        totals.update(jobs=out.jobs, wrong_accepted=f.wrong_accepted, stuck=f.stuck,
                      certificates=f.certificates, certificates_failed=f.certificates_failed,
                      uncertified=f.uncertified, lies=out.lies)
        if not out.ok:
            failing.append({"seed": seed, "violations": f.violations[:3]})
    return dict(tasks=tasks, faults=faults, workers=workers, failing=failing, totals=totals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, help="replay one seed and print its trace")
    args = ap.parse_args()

    if args.seed is not None:
        out = run_seed(args.seed, trace=True)
        for line in out.trace:
            print(line)
        print(json.dumps(out.summary()))
        sys.exit(0 if out.ok else 1)

    t0 = time.perf_counter()
    step = max(1, args.seeds // (args.jobs * 8))
    chunks = [(s, min(s + step, args.start + args.seeds))
              for s in range(args.start, args.start + args.seeds, step)]
    total: dict[str, Any] = dict(tasks=Counter(), faults=Counter(), workers=Counter(),
                                 failing=[], totals=Counter())
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for part in pool.map(run_range, chunks):
            for key in ("tasks", "faults", "workers", "totals"):
                total[key].update(part[key])
            total["failing"] += part["failing"]
    t = total["totals"]
    report = {
        "seeds": args.seeds,
        "first_seed": args.start,
        "jobs": t["jobs"],
        "tasks_by_outcome": dict(sorted(total["tasks"].items())),
        "workers_by_behaviour": dict(sorted(total["workers"].items())),
        "wrong_outputs_reported": t["lies"],
        "faults_injected": dict(sorted(total["faults"].items())),
        "wrong_results_accepted": t["wrong_accepted"],
        "jobs_stuck": t["stuck"],
        "certificates": t["certificates"],
        "certificates_failing": t["certificates_failed"],
        "accepted_without_certificate": t["uncertified"],
        "failing_seeds": total["failing"][:20],
        "failing": len(total["failing"]),
        "processes": args.jobs,
        "time_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report))
    if total["failing"]:
        first = total["failing"][0]["seed"]
        print(f"seed {first} failed: replay it with scripts/sim_jobs.py --seed {first}",
              file=sys.stderr)
    sys.exit(1 if total["failing"] else 0)


if __name__ == "__main__":
    main()
