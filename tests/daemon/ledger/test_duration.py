"""Placement learns a job's task duration from the run times of its accepted replicas."""

from __future__ import annotations

from daemon.ledger.placing import (MIN_RUNTIME_SAMPLES, default_duration_ms, expected_duration,
                                   majority_runtime, propose, task_runtime)
from daemon.ledger.records import ReplicaOutcome
from daemon.ledger.state import JobLedger
from protocol.messages import ledger as ops

from protocol.canonical import packb, unpackb
from protocol.messages.tasks import TaskStatus

from .ledger_helpers import MEMBERS, NOW_MS, Harness


def at(h: Harness, ms: int) -> None:
    """Move the ledger clock to NOW_MS + ms (every member reports it)."""
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS + ms))
    assert h.ledger.now_ms == NOW_MS + ms


def run_task(h: Harness, job: bytes, task: int, start_ms: int, runtime_ms: int) -> None:
    """Both replicas start at ``start_ms`` and report the same result ``runtime_ms`` later."""
    at(h, start_ms)
    for k, rep in enumerate(h.ledger.jobs[job].tasks[task].replicas):
        h.call(h.worker(rep.worker), ops.Start(job, task, k))
    at(h, start_ms + runtime_ms)
    for k in range(2):
        h.report(job, task, k, b"out")


def test_the_estimate_is_the_wall_share_until_results_arrive_then_their_median():
    h = Harness()
    job = h.submit(6)
    h.place_all(job)
    spec = h.ledger.jobs[job].spec
    assert expected_duration(spec, [])[0] == default_duration_ms(spec) == 15_000
    for i, runtime in enumerate([4_000, 5_000, 9_000]):
        run_task(h, job, i, 10_000 * i + 1, runtime)
    rec = h.ledger.jobs[job]
    assert all(r.outcome == ReplicaOutcome.AGREED for r in rec.tasks[0].replicas)
    assert sorted(rec.runtimes_ms) == [4_000] * 2 + [5_000] * 2 + [9_000] * 2
    ms, basis = expected_duration(spec, rec.runtimes_ms)
    assert ms == 5_000 and "median run time of its last 6 accepted" in basis
    # Clamped to the wall-clock limit and to at least a second.
    assert expected_duration(spec, [10**9] * MIN_RUNTIME_SAMPLES)[0] == spec.wall_ms
    assert expected_duration(spec, [0] * MIN_RUNTIME_SAMPLES)[0] == 1000


def learned(n_tasks: int, runtime_ms: int) -> tuple[Harness, bytes]:
    """A placed job whose first three tasks were accepted, each having run ``runtime_ms``."""
    h = Harness()
    job = h.submit(n_tasks)
    h.place_all(job)
    for i in range(MIN_RUNTIME_SAMPLES):
        run_task(h, job, i, 10_000 * i + 1, runtime_ms)
    return h, job


def test_the_explanation_says_what_the_duration_is_based_on():
    h, job = learned(4, 2_000)
    rec = h.ledger.jobs[job]
    task = rec.tasks[3]
    # A crash frees a slot of task 3: it is placed again with the learned duration.
    h.report(job, 3, 0, b"", status=int(TaskStatus.CRASHED))
    cands = h.candidates()
    _, a = propose(job, 3, rec.spec, h.ledger.open_slots(rec, task), cands,
                   {r.worker for r in task.replicas}, h.reputation(), h.ledger.now_ms,
                   expected_duration(rec.spec, rec.runtimes_ms),
                   task_runtime(task, majority_runtime(cands)))
    assert a.explanation["duration_s"] == 2.0
    assert a.explanation["duration_basis"].startswith("median run time")


def test_replicas_refuse_a_duration_far_from_their_own_estimate():
    h, job = learned(5, 4_000)
    rec = h.ledger.jobs[job]
    cands = h.candidates()

    def place_with(task: int, duration_ms: int) -> dict:
        t = rec.tasks[task]
        _, a = propose(job, task, rec.spec, h.ledger.open_slots(rec, t), cands,
                       {r.worker for r in t.replicas}, h.reputation(), h.ledger.now_ms,
                       (duration_ms, "test"), task_runtime(t, majority_runtime(cands)))
        return h.call(MEMBERS[0], ops.Place(job, h.ledger.now_ms, duration_ms, cands, (a,)))

    for task in (3, 4):  # a crash frees one replica slot of each
        h.report(job, task, 0, b"", status=int(TaskStatus.CRASHED))
    far = place_with(3, 60_000)
    assert far["placed"] == 0 and \
        "not within 2x or 30 s of the ledger's estimate 4.0 s" in far["refused"][0][1]
    assert place_with(3, 7_000)["placed"] == 1  # results in flight move the estimate a little
    # Far in ratio, near in time: a loaded committee's ordering delay moves a short task's
    # estimate by seconds (6.5 s proposed against 1.0 s refused every placement for minutes).
    h.report(job, 3, 1, b"", status=int(TaskStatus.CRASHED))
    assert place_with(3, 4_000 + 30_000)["placed"] == 1
    # The wall-share default is what a proposer assumes before it has learned: always accepted.
    assert place_with(4, default_duration_ms(rec.spec))["placed"] == 1


def test_run_times_survive_a_snapshot_and_old_snapshots_load():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    run_task(h, job, 0, 1, 3_000)
    snap = h.ledger.snapshot()
    other = JobLedger([m.public_key for m in MEMBERS], f=1)
    other.restore(snap)
    assert other.jobs[job].runtimes_ms == [3_000, 3_000]
    assert other.jobs[job].tasks[0].replicas[0].runtime_ms == 3_000
    assert other.snapshot() == snap
    # Written before run times were kept: jobs have 8 fields, replicas 7.
    old = unpackb(snap)
    for row in old[3]:
        del row[8]
        for task in row[5]:
            for rep in task[1]:
                del rep[7:]
    other.restore(packb(old))
    assert other.jobs[job].runtimes_ms == []
    assert other.jobs[job].tasks[0].replicas[0].runtime_ms is None
