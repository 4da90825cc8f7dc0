"""Run the 50-node CRDT convergence simulation over many seeds; print one JSON object.

Each seed: 50 replicas on a random connected graph, every node making random soft-state
updates while the network drops 20% of messages, duplicates 10% and reorders them (delays up
to 250 ms); then the faults stop and every replica must reach the same state. A failing seed is
listed with what differed; replay it with ``--replay SEED`` (same seed, same run, event for
event), which also prints the run's figures.

Usage: ``.venv/bin/python scripts/sim_crdt.py [--seeds 200] [--first 0] [--nodes 50]
[--signed] [--crash N] [--replay SEED]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testnet.crdt_sim import Transport, run_convergence  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--signed", action="store_true",
                        help="signed envelopes and signed dots (slower)")
    parser.add_argument("--crash", type=int, default=0, help="nodes to crash and restart")
    parser.add_argument("--replay", type=int, help="run one seed and print its result")
    args = parser.parse_args()
    transport = Transport.ENVELOPES if args.signed else Transport.BYTES
    kwargs = dict(nodes=args.nodes, transport=transport, crash=args.crash)
    if args.replay is not None:
        result = asdict(run_convergence(args.replay, **kwargs))
        result.pop("procs")
        print(json.dumps(result))
        return 0 if result["converged"] else 1
    t0 = time.process_time()
    failures, times, updates, messages = [], [], 0, 0
    for seed in range(args.first, args.first + args.seeds):
        r = run_convergence(seed, **kwargs)
        updates += r.updates
        messages += r.messages
        if r.converged:
            times.append(r.converge_time)
        else:
            failures.append({"seed": seed, "problem": r.problem,
                             "replay": f"scripts/sim_crdt.py --replay {seed}"
                                       + (" --signed" if args.signed else "")
                                       + (f" --nodes {args.nodes}" if args.nodes != 50 else "")
                                       + (f" --crash {args.crash}" if args.crash else "")})
    print(json.dumps({
        "seeds_run": args.seeds, "first_seed": args.first, "nodes": args.nodes,
        "transport": transport.value, "crash": args.crash,
        "converged": args.seeds - len(failures), "failures": failures,
        "max_converge_time_s": max(times, default=None),
        "updates": updates, "messages": messages,
        "cpu_s": round(time.process_time() - t0, 1),
    }))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
