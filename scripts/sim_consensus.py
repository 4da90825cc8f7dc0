#!/usr/bin/env python3
"""Run many seeded PBFT simulations and print one JSON object: seeds run, faults injected per
kind, safety violations and liveness failures found (both must be zero), and the time taken.

    .venv/bin/python scripts/sim_consensus.py --seeds 10000 --jobs 2
    .venv/bin/python scripts/sim_consensus.py --seed 1234        # replay one seed with a trace

10,000 seeds took about 10 minutes with two processes on a 2-core machine before the old-primary
restarts were added (they cost a quarter more CPU).

Each seed picks n in {4, 7, 10}, up to f faulty replicas (silent, equivocating primary, double
voter, replayer, out-of-window sender, bad-signature flooder, Twins, restart with lost state),
a lossy/duplicating/reordering network with partitions, crashes and pauses, on 40% of the
seeds a primary crashed early and restarted into live traffic after the others changed view
(``old_primary_restarted``), then heals; see
``testnet.pbft_sim.scenarios``. The simulation uses the MAC stand-in signer for speed; the test
suite runs the same scenarios with real Ed25519 envelopes. The command line and the run over a
process pool are ``testnet.seeds``'s.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testnet.pbft_sim.scenarios import LIVENESS_BOUND, run_seed  # noqa: E402
from testnet.seeds import SeedRun, Tally, main  # noqa: E402


def tally_seed(seed: int) -> Tally:
    out = run_seed(seed)
    t = Tally()
    t.kinds["sizes"][out.n] += 1
    t.kinds["faults"].update(out.injected)
    # Twins are one faulty key on two nodes (r3a, r3b): count the key once.
    t.kinds["replicas"].update(k for name, k in out.faulty.items() if not name.endswith("b"))
    t.sums.update(commits=out.commits, view_changes=out.max_view)
    if out.violations:
        t.fail("violations", seed, error=out.violations[0])
    if not out.done:
        t.fail("not_done", seed)
    else:
        t.maxima["recovery"] = out.recovery or 0.0
    return t


def replay(seed: int) -> tuple[list[str], dict[str, Any], bool]:
    out = run_seed(seed, trace=True)
    summary = {"seed": out.seed, "n": out.n, "faulty": out.faulty,
               "injected": dict(out.injected), "violations": out.violations,
               "done": out.done, "recovery_s": out.recovery, "commits": out.commits,
               "max_view": out.max_view}
    return out.trace, summary, not out.violations and out.done


def report(total: Tally) -> dict[str, Any]:
    violations, not_done = total.failed("violations"), total.failed("not_done")
    return {
        "committee_sizes": {str(k): v for k, v in sorted(total.kinds["sizes"].items())},
        "faulty_replicas_by_kind": dict(sorted(total.kinds["replicas"].items())),
        "faults_injected": dict(sorted(total.kinds["faults"].items())),
        "committed_batches_checked": total.sums["commits"],
        "views_changed": total.sums["view_changes"],
        "violations": len(violations),
        "violation_seeds": violations[:20],
        "liveness_failures": len(not_done),
        "liveness_failure_seeds": [e["seed"] for e in not_done[:20]],
        "liveness_bound_s": LIVENESS_BOUND,
        "worst_recovery_after_heal_s": round(total.maxima.get("recovery", 0.0), 3),
    }


RUN = SeedRun(script="scripts/sim_consensus.py", description=__doc__.splitlines()[0],
              default_seeds=10000, tally_seed=tally_seed, replay=replay, report=report,
              crash_as="violations", processes_key="jobs")

if __name__ == "__main__":
    sys.exit(main(RUN))
