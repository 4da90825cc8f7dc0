"""Simulation: CPU-hours lost to volunteers leaving, with checkpoints vs restarting from zero.

Prints one JSON object. Hosts follow the synthetic availability traces (``testnet.traces``, the
populations ``bench_availability.py`` uses); the placement is ours (``daemon.sched.place``
through ``testnet.churn.ours_policy``, forecasting from the gossiped summaries). For tasks of 1,
4 and 12 hours, the same stream of jobs runs twice on the same hosts:

- ``restart`` (baseline): a preempted task starts again from zero on another host, and
  placement asks for a host likely to stay up for the whole task (today's behaviour);
- ``checkpoint``: the task checkpoints every ``--interval-min`` minutes of its run time, a
  preempted task continues elsewhere from its last checkpoint after a ``--resume-cost-s`` setup
  (fetching and restoring the snapshot), and placement asks only for the next
  ``--horizon-h`` hours of work (``testnet.churn.Resumable``).

``lost_compute_h``: CPU-hours of work thrown away (run time since the last checkpoint, plus
resume setups, on hosts that left). ``waste_reduction``: 1 - checkpoint / restart (target:
>= 0.8 for tasks of 4 hours and more). ``short_host_placements``: placements on hosts whose
true remaining uptime was shorter than the whole task; ``short_host_work_kept_h``: the task work
those hosts contributed that was kept (0 when restarting from zero: all of it is thrown away).
Seeded: ``--seed``.

Run: ``.venv/bin/python scripts/sim_churn_checkpoint.py`` from the repository root (about 5 minutes on 2 cores; `--hosts 60 --weeks 1`: 10 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from daemon.sched.timebase import HOUR, WEEK  # noqa: E402
from testnet.churn import Resumable, SimTask, ours_policy, simulate  # noqa: E402
from testnet.forecast import fitted_predictor  # noqa: E402
from testnet.traces import EPOCH_MONDAY, generate_traces  # noqa: E402

FIT_END = EPOCH_MONDAY + 3 * WEEK
TARGET = 0.8


def workload(rng: np.random.Generator, hours: float, t0: float, t1: float, per_job: int,
             mean_gap_s: float) -> list[SimTask]:
    """Jobs of ``per_job`` tasks of exactly ``hours`` each, arriving as a Poisson process."""
    tasks: list[SimTask] = []
    t = t0 + rng.exponential(mean_gap_s)
    job = 0
    while t < t1:
        base = len(tasks)
        tasks.extend(SimTask(base + i, job, t, hours * HOUR) for i in range(per_job))
        job += 1
        t += rng.exponential(mean_gap_s)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval-min", type=float, default=15.0)
    parser.add_argument("--resume-cost-s", type=float, default=60.0)
    parser.add_argument("--horizon-h", type=float, default=2.0)
    parser.add_argument("--weeks", type=float, default=2.0, help="weeks of job arrivals")
    args = parser.parse_args()
    began = time.perf_counter()
    arrivals_end = FIT_END + args.weeks * WEEK
    traces = generate_traces(args.hosts, seed=args.seed,
                             duration_s=arrivals_end - EPOCH_MONDAY + 2 * WEEK)
    predictor, summaries = fitted_predictor(traces, EPOCH_MONDAY, FIT_END,
                                            rng=np.random.default_rng(args.seed))
    t_end = arrivals_end + 2 * WEEK - HOUR
    res = Resumable(args.interval_min * 60, args.resume_cost_s, args.horizon_h * HOUR)
    rows: dict[str, object] = {}
    for hours in (1, 4, 12):
        # about the same CPU-hours offered per day for every task length: a quarter of the hosts
        per_job = 10
        gap = hours * HOUR * per_job / (args.hosts * 0.25)
        tasks = workload(np.random.default_rng([args.seed, hours]), hours, FIT_END,
                         arrivals_end, per_job, gap)
        restart = simulate("restart", traces, tasks, ours_policy(traces, summaries, predictor),
                           FIT_END, t_end)
        ckpt = simulate("checkpoint", traces, tasks, ours_policy(traces, summaries, predictor),
                        FIT_END, t_end, resumable=res)
        rows[f"{hours}h"] = {
            "tasks": len(tasks),
            "restart": restart.to_dict(),
            "checkpoint": ckpt.to_dict(),
            "waste_reduction": round(1 - ckpt.lost_h / restart.lost_h, 4) if restart.lost_h else None,
        }
    met = all(r["waste_reduction"] is not None and r["waste_reduction"] >= TARGET  # type: ignore[index]
              for k, r in rows.items() if k != "1h")
    print(json.dumps({
        "sim": "churn_checkpoint", "seed": args.seed, "hosts": args.hosts,
        "checkpoint": {"interval_min": args.interval_min, "resume_cost_s": args.resume_cost_s,
                       "placement_horizon_h": args.horizon_h},
        "target": f"waste_reduction >= {TARGET} for tasks of 4 h and 12 h", "target_met": met,
        "rows": rows, "seconds": round(time.perf_counter() - began, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
