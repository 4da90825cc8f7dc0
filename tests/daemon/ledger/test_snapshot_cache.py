"""The ledger's incremental snapshot (each task's encoding cached until it changes) and its
skipped walks (``_expire`` only when a lease or deadline is due; open tasks from
``settled_below``) must never change the state's bytes. A seeded random run of every kind of
operation compares, after each one, the cached snapshot with a fresh encoding, and the ledger
with a reference that walks every open task at every tick (as the ledger did before the skip)
and with a twin restored from a snapshot midway (empty caches, lease floor 0, cursor 0); and
each job's kept counts of its settled tasks with a recount from scratch."""

from __future__ import annotations

import copy
import random

import pytest

from consensus.statemachine import ClientRequest
from daemon.ledger.state import JobLedger
from protocol.canonical import packb, unpackb
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, NOW_MS, SUBMITTER, WORKERS, Harness


def fresh(ledger: JobLedger) -> bytes:
    return packb(ledger.snapshot_wire(), maps=False)


@pytest.mark.parametrize("seed", range(20))
def test_cached_snapshots_equal_fresh_ones_and_a_restored_twin_stays_equal(seed):
    rng = random.Random(seed)
    h = Harness(max_replicas=3, wall_ms=1_000, deadline_s=400)
    ref = JobLedger([m.public_key for m in MEMBERS], f=1)
    ref.restore(h.ledger.snapshot())
    others = [ref]
    h.call = _mirrored(h, others)  # type: ignore[method-assign]
    twin: JobLedger | None = None
    jobs = [h.submit(rng.randint(1, 12), replicas=rng.choice([1, 2]), quorum=1)
            for _ in range(2)]
    now = NOW_MS
    for step in range(300):
        roll = rng.random()
        job = rng.choice(jobs)
        rec = h.ledger.jobs.get(job)
        if roll < 0.2 and rec is not None:
            op, who = None, None
            h.place_all(job, workers=rng.sample(WORKERS, 4))
        elif roll < 0.6 and rec is not None:
            pending = [(i, k, r) for i, t in enumerate(rec.tasks) for k, r in enumerate(t.replicas)
                       if r.result is None and r.outcome == "pending"]
            if pending:
                i, k, r = rng.choice(pending)
                status = rng.choice([0, 0, 1, 4, 8])  # OK, a trap (agreed failure), node faults
                h.report(job, i, k, rng.choice([b"a", b"b"]), status=status)
        elif roll < 0.7 and rec is not None:
            pending = [(i, k, r) for i, t in enumerate(rec.tasks) for k, r in enumerate(t.replicas)
                       if r.result is None and r.outcome == "pending"]
            if pending:  # a checkpoint, agreed or caught (two digests in play)
                i, k, r = rng.choice(pending)
                seq = r.checkpoints[-1].seq + 1 if r.checkpoints else 1
                h.call(h.worker(r.worker), ops.CheckpointReport(
                    job, i, k, seq, seq * 10, seq * 1000, rng.choice([b"c" * 32, b"d" * 32]),
                    b"b" * 32, seq == 1))
        elif roll < 0.8:
            now += rng.choice([500, 5_000, 70_000])
            for m in MEMBERS:
                h.call(m, ops.Tick(now))
        elif roll < 0.85:
            h.call(rng.choice(WORKERS), ops.Leave("bye"))
        elif roll < 0.9 and rec is not None:
            h.call(MEMBERS[step % 4], ops.Unreachable(rng.choice(WORKERS).node_id))
        elif roll < 0.93:
            jobs.append(h.submit(rng.randint(1, 6), replicas=1, quorum=1))
        elif roll < 0.94 and rec is not None:
            h.call(SUBMITTER, ops.Cancel(job))
        else:
            h.call(MEMBERS[0], ops.Query(job, 0, 5, True))
        snap = h.ledger.snapshot()
        assert snap == fresh(h.ledger), f"seed {seed} step {step}: the cache is stale"
        for j in h.ledger.jobs.values():  # every open task with replicas is found by the walks
            assert {i for i, t in enumerate(j.tasks) if t.replicas and t.state == "open"} \
                <= j.placed, f"seed {seed} step {step}: a replica was added behind placed's back"
        for other in others:
            assert other.snapshot() == snap, f"seed {seed} step {step}: a twin diverged"
        for j in h.ledger.jobs.values():  # the kept counts of settled tasks are never stale
            recount = copy.copy(j)
            recount._settled_counts, recount.settled_below = None, 0
            assert j.counts() == recount.counts(), f"seed {seed} step {step}: stale counts"
        if step == 100:
            twin = JobLedger([m.public_key for m in MEMBERS], f=1)
            twin.restore(snap)
            others.append(twin)
    assert twin is not None


def _mirrored(h: Harness, others: list[JobLedger]):
    """``Harness.call`` applying each operation to the others too, checking equal replies;
    ``others[0]`` (the reference) forgets its lease floor first, so it walks at every tick."""
    def call(who, op):
        h.rid += 1
        data = ops.encode_op(op)
        req = ClientRequest(who.public_key, h.rid, data, b"")
        a = h.ledger.apply(req)
        others[0]._lease_floor = 0
        for other in others:
            assert other.apply(req) == a, "a twin answered differently"
        return unpackb(a)
    return call


def test_a_big_ledger_snapshot_reencodes_only_what_changed():
    """Touching one task and one replica re-encodes those two: every other task keeps the very
    bytes object it had (the cost of a checkpoint is what changed)."""
    h = Harness()
    job = h.submit(40, replicas=1, quorum=1)
    h.place_all(job)
    h.ledger.snapshot()
    tasks = h.ledger.jobs[job].tasks
    before = [t.packed() for t in tasks]
    h.report(job, 3, 0, b"x")
    h.call(h.worker(tasks[7].replicas[0].worker), ops.Start(job, 7, 0))
    assert h.ledger.snapshot() == fresh(h.ledger)
    changed = [i for i, t in enumerate(tasks) if t.packed() is not before[i]]
    assert changed == [3, 7]
