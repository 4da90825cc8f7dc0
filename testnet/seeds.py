"""One seed-range runner for the seeded simulators' scripts (``scripts/sim_jobs.py``,
``scripts/sim_consensus.py``), so both take the same command line and behave alike:

    --seeds N --start S --jobs P    run seeds S .. S+N-1 on P processes, print one JSON object
    --seed N                        replay one seed, print its trace and summary

A simulator describes itself with a ``SeedRun``: how to tally one seed (a ``Tally``: sums,
breakdowns by kind, failures with their reason, maxima), how to replay one seed, and how to
turn the merged tally into its JSON report. The runner splits the range into chunks for a
process pool (several chunks per process, so one slow chunk does not idle the others), merges
the chunks' tallies in seed order, adds the fields every report has (``seeds``,
``first_seed``, the process count, ``time_s``), prints the first failing seed with the command
that replays it, and exits 1 when any seed failed. A seed whose run raises is a finding, not a
stop: it is recorded under the simulator's ``crash_as`` failure list.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

CHUNKS_PER_PROCESS = 8


@dataclass
class Tally:
    """What some seeds found; tallies of disjoint seed ranges merge with ``add``."""

    sums: Counter[str] = field(default_factory=Counter)
    kinds: defaultdict[str, Counter[Any]] = field(default_factory=lambda: defaultdict(Counter))
    """Breakdowns, e.g. ``kinds["faults"]["crash"]``."""
    failures: defaultdict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    """Failure class -> one entry per failing seed (``{"seed": N, ...why}``), in seed order."""
    maxima: dict[str, float] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        self.sums.update(other.sums)
        for name, counts in other.kinds.items():
            self.kinds[name].update(counts)
        for name, entries in other.failures.items():
            self.failures[name] += entries
        for name, value in other.maxima.items():
            self.maxima[name] = max(self.maxima.get(name, value), value)

    def fail(self, kind: str, seed: int, **why: Any) -> None:
        self.failures[kind].append({"seed": seed, **why})

    def failed(self, kind: str) -> list[dict[str, Any]]:
        return self.failures.get(kind, [])

    @property
    def failing_seeds(self) -> list[int]:
        return sorted({e["seed"] for entries in self.failures.values() for e in entries})


@dataclass(frozen=True)
class SeedRun:
    """One simulator as the runner sees it. The callables must be module-level functions (the
    process pool pickles them by name)."""

    script: str
    """How the replay line names the script, e.g. ``scripts/sim_jobs.py``."""
    description: str
    default_seeds: int
    tally_seed: Callable[[int], Tally]
    replay: Callable[[int], tuple[list[str], dict[str, Any], bool]]
    """seed -> (trace lines, JSON summary, ok)."""
    report: Callable[[Tally], dict[str, Any]]
    """The simulator's own JSON fields, from the merged tally."""
    crash_as: str = "failing"
    processes_key: str = "processes"


def chunks(start: int, count: int, processes: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges covering ``start .. start+count-1``, about ``CHUNKS_PER_PROCESS``
    per process."""
    step = max(1, count // (max(1, processes) * CHUNKS_PER_PROCESS))
    end = start + count
    return [(lo, min(lo + step, end)) for lo in range(start, end, step)]


def tally_range(tally_seed: Callable[[int], Tally], crash_as: str,
                bounds: tuple[int, int]) -> Tally:
    total = Tally()
    for seed in range(*bounds):
        try:
            one = tally_seed(seed)
        except Exception as err:  # a crash of the harness or the code under test is a finding
            total.fail(crash_as, seed, error=f"{type(err).__name__}: {err}")
            continue
        total.add(one)
    return total


def run_seeds(run: SeedRun, start: int, count: int, processes: int) -> Tally:
    """The merged tally of ``count`` seeds from ``start`` (in-process when ``processes`` is 1)."""
    work = functools.partial(tally_range, run.tally_seed, run.crash_as)
    parts = chunks(start, count, processes)
    total = Tally()
    if processes <= 1:
        for bounds in parts:
            total.add(work(bounds))
        return total
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for part in pool.map(work, parts):
            total.add(part)
    return total


def main(run: SeedRun, argv: Sequence[str] | None = None) -> int:
    """The script's whole command line; returns the exit status."""
    ap = argparse.ArgumentParser(description=run.description)
    ap.add_argument("--seeds", type=int, default=run.default_seeds, help="how many seeds")
    ap.add_argument("--start", type=int, default=0, help="the first seed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes to run seeds on")
    ap.add_argument("--seed", type=int, help="replay one seed and print its trace")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be at least 1")

    if args.seed is not None:
        trace, summary, ok = run.replay(args.seed)
        for line in trace:
            print(line)
        print(json.dumps(summary))
        return 0 if ok else 1

    t0 = time.perf_counter()
    total = run_seeds(run, args.start, args.seeds, args.jobs)
    report = {"seeds": args.seeds, "first_seed": args.start, **run.report(total),
              run.processes_key: args.jobs, "time_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report))
    failing = total.failing_seeds
    if failing:
        print(f"{len(failing)} seed(s) failed; replay the first with "
              f"{run.script} --seed {failing[0]}", file=sys.stderr)
    return 1 if failing else 0
