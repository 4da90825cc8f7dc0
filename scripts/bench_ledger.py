#!/usr/bin/env python3
"""Benchmark the job ledger at the spec's largest job; prints one JSON object.

    .venv/bin/python scripts/bench_ledger.py [--tasks 100000] [--changes 200]

A committee member spends these on its commit path while a 100,000-task job runs (issue 13):

- checkpoint snapshot: ``JobLedger.snapshot()`` after ``--changes`` tasks changed, with each
  task's cached encoding, next to encoding the whole state afresh (the baseline: what every
  checkpoint cost before), measured in the same run on the same ledger; the two must be
  byte-identical;
- a ledger clock tick with no lease or deadline due (skipped walk) next to the full walk over
  the open tasks (the baseline: every tick did that);
- a status query's counts with the settled tasks' counts kept, next to counting every task
  (the baseline: every query did), early (10% settled) and late (90%) in the job; and the
  per-worker pending count placement reads.

Times are this process's CPU time, the best of ``--repeat`` runs (a shared machine only adds
time; CPU time is what a committee member's core spends).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.ledger.records import Answer, Job, ReplicaOutcome, Task, TaskReplica, TaskState  # noqa: E402
from daemon.ledger.state import JobLedger  # noqa: E402
from protocol.canonical import packb  # noqa: E402
from protocol.messages import ledger as ops  # noqa: E402

WORKER = "12D3KooWDVqEHoV9aGi9BxbfajzphVSnoNwpcoTAtZ6GLz8xQb3K"


def best(fn: Callable[[], Any], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return min(out)


def build(n: int) -> tuple[JobLedger, Job]:
    """A ledger holding one n-task job: a tenth accepted, a hundredth running, the rest open."""
    inputs = [ops.TaskInput(hashlib.sha256(str(i).encode()).digest(), len(str(i)), str(i).encode())
              for i in range(n)]
    spec = ops.Submit("big", b"\0" * 32, 100, ("big",), tuple(inputs[:1]), 100_000, 1, 5000,
                      1 << 20, 1, 1, 3, 0, 86_400, 0, 1, n)
    tasks = [Task(inp, quorum=1) for inp in inputs]
    answer = Answer(0, b"\1" * 32, 10, 0, hashlib.sha256(b"").digest(), 0)
    for i, t in enumerate(tasks[: n // 10 + n // 100]):
        t.replicas.append(TaskReplica(WORKER, 1_000, 10_000_000, True))
        if i < n // 10:
            t.replicas[0].result, t.replicas[0].outcome = answer, ReplicaOutcome.AGREED
            t.state, t.accepted = TaskState.ACCEPTED, answer
    ledger = JobLedger([], 0)
    job = Job(b"j" * 32, "submitter", spec, 0, 0, tasks)
    ledger.jobs[job.id] = job
    job.placed = {i for i, t in enumerate(tasks) if t.replicas and t.state == TaskState.OPEN}
    ledger.now_ms = 2_000
    return ledger, job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    ledger, job = build(a.tasks)
    ledger.snapshot()  # warm the caches, as the chunks' arrival does in the daemon

    def change() -> None:  # --changes tasks change between two checkpoints
        for k in range(a.changes):
            t = job.tasks[(k * 7919) % a.tasks]
            t.quorum = t.quorum  # any field set drops the task's cached encoding

    def cached() -> bytes:
        change()
        return ledger.snapshot()

    fresh = packb(ledger.snapshot_wire(), maps=False)
    assert cached() == packb(ledger.snapshot_wire(), maps=False), "cached snapshot differs"
    snap_cached = best(cached, a.repeat)
    snap_fresh = best(lambda: packb(ledger.snapshot_wire(), maps=False), a.repeat)

    ledger._expire()  # sets the lease floor
    tick_skip = best(ledger._expire, a.repeat)

    def full_walk() -> None:
        ledger._lease_floor = 0
        ledger._expire()

    tick_walk = best(full_walk, a.repeat)

    def walk_all() -> None:  # the baseline: every task, as every tick walked before
        for t in job.tasks:
            if t.state == TaskState.OPEN:
                for r in t.replicas:
                    _ = r.outcome == ReplicaOutcome.PENDING and r.lease_ms <= ledger.now_ms
                ledger.open_slots(job, t)

    tick_before = best(walk_all, a.repeat)
    pending_ms = best(ledger.pending_by_worker, a.repeat)

    def recount() -> dict[str, Any]:  # the baseline: every task counted, as every query did
        job._settled_counts, job.settled_below = None, 0
        return job.counts()

    counts: dict[str, Any] = {}
    answer = job.tasks[0].accepted
    for frac in (0.1, 0.9):  # early in the job, and near its end
        for t in job.tasks[: int(a.tasks * frac)]:
            t.state, t.accepted = TaskState.ACCEPTED, answer
        assert job.counts() == recount(), "kept counts differ from a recount"
        job.counts()
        counts[f"{round(frac * 100)}%_settled"] = {
            "kept_settled": round(best(job.counts, a.repeat) * 1000, 1),
            "baseline_recount": round(best(recount, a.repeat) * 1000, 1)}
        job.counts()
    print(json.dumps({
        "tasks": a.tasks, "snapshot_mb": round(len(fresh) / 1e6, 1),
        "checkpoint_snapshot_ms": {"cached": round(snap_cached * 1000, 1),
                                   "baseline_full_encode": round(snap_fresh * 1000, 1),
                                   "changed_tasks": a.changes},
        "clock_tick_ms": {"no_lease_due": round(tick_skip * 1000, 3),
                          "lease_due_walk_placed_only": round(tick_walk * 1000, 1),
                          "baseline_walk_every_task": round(tick_before * 1000, 1)},
        "status_counts_ms": counts,
        "pending_by_worker_ms": round(pending_ms * 1000, 1),
    }))


if __name__ == "__main__":
    main()
