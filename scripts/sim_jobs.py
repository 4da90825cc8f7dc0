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
The command line and the run over a process pool are ``testnet.seeds``'s.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testnet.job_sim.scenarios import run_seed  # noqa: E402
from testnet.seeds import SeedRun, Tally, main  # noqa: E402


def tally_seed(seed: int) -> Tally:
    out = run_seed(seed)
    f = out.findings
    t = Tally()
    t.kinds["tasks"].update(f.tasks)
    t.kinds["faults"].update(out.injected)
    t.kinds["workers"].update(out.workers.values())
    t.sums.update(jobs=out.jobs, wrong_accepted=f.wrong_accepted, stuck=f.stuck,
                  certificates=f.certificates, certificates_failed=f.certificates_failed,
                  uncertified=f.uncertified, lies=out.lies)
    if not out.ok:
        t.fail("failing", seed, violations=f.violations[:3])
    return t


def replay(seed: int) -> tuple[list[str], dict[str, Any], bool]:
    out = run_seed(seed, trace=True)
    return out.trace, out.summary(), out.ok


def report(total: Tally) -> dict[str, Any]:
    t, failing = total.sums, total.failed("failing")
    return {
        "jobs": t["jobs"],
        "tasks_by_outcome": dict(sorted(total.kinds["tasks"].items())),
        "workers_by_behaviour": dict(sorted(total.kinds["workers"].items())),
        "wrong_outputs_reported": t["lies"],
        "faults_injected": dict(sorted(total.kinds["faults"].items())),
        "wrong_results_accepted": t["wrong_accepted"],
        "jobs_stuck": t["stuck"],
        "certificates": t["certificates"],
        "certificates_failing": t["certificates_failed"],
        "accepted_without_certificate": t["uncertified"],
        "failing_seeds": failing[:20],
        "failing": len(failing),
    }


RUN = SeedRun(script="scripts/sim_jobs.py", description=__doc__.splitlines()[0],
              default_seeds=1000, tally_seed=tally_seed, replay=replay, report=report)

if __name__ == "__main__":
    sys.exit(main(RUN))
