"""Checkpoints as agreed progress in the job ledger: recorded once a quorum agrees, a replica
with another digest caught at that checkpoint, a split decided by one more replica, and
snapshots with and without checkpoints."""

from __future__ import annotations

import hashlib

from daemon.ledger.checkpoints import (REPORT_WINDOW, CheckpointMark, needs_tiebreak,
                                       resume_chain, settle)
from daemon.ledger.events import ReplicaFailed
from daemon.ledger.records import ReplicaOutcome, TaskState
from daemon.ledger.state import JobLedger
from protocol.canonical import packb, unpackb
from protocol.messages import ledger as ops
from tests.daemon.ledger.ledger_helpers import MEMBERS, Harness


def digest(seq: int, honest: bool = True) -> bytes:
    return hashlib.sha256(b"state %d %s" % (seq, b"ok" if honest else b"forged")).digest()


def ckpt(h: Harness, job: bytes, task: int, replica: int, seq: int, honest: bool = True) -> dict:
    rep = h.ledger.jobs[job].tasks[task].replicas[replica]
    return h.call(h.worker(rep.worker), ops.CheckpointReport(
        job, task, replica, seq, 100 * (seq + 1), 10**8 * (seq + 1), digest(seq, honest),
        hashlib.sha256(b"blob %d" % seq).digest(), seq % 4 == 0))


def test_a_checkpoint_is_recorded_once_a_quorum_reports_the_same_digest():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    task = h.ledger.jobs[job].tasks[0]
    assert ckpt(h, job, 0, 0, 0)["agreed"] is None  # one replica is not a quorum
    assert ckpt(h, job, 0, 0, 1)["agreed"] is None
    assert ckpt(h, job, 0, 1, 0)["agreed"] == 0
    assert ckpt(h, job, 0, 1, 1)["agreed"] == 1
    assert [m.seq for m in task.checkpoints] == [0, 1]
    assert task.checkpoints[-1] == CheckpointMark(1, digest(1), 200, 2 * 10**8,
                                                  hashlib.sha256(b"blob 1").digest(), False)
    blobs, last = resume_chain(task.checkpoints)  # what a new replica would resume from
    assert blobs == (task.checkpoints[0].blob, task.checkpoints[1].blob) and last == digest(1)
    assert ckpt(h, job, 0, 1, 1).get("duplicate") is True  # a repeat changes nothing
    assert h.ledger.jobs[job].counts()["checkpointed"] == 1
    row = h.call(MEMBERS[0], ops.Query(job, 0, 1, False))["tasks"][0]
    assert row["checkpoint"]["seq"] == 1 and row["checkpoint"]["steps"] == 200


def test_a_tampered_replica_is_caught_at_the_next_checkpoint():
    h = Harness(replicas=3, quorum=2, max_replicas=5)
    job = h.submit(1)
    h.place_all(job)
    task = h.ledger.jobs[job].tasks[0]
    for k in range(3):
        ckpt(h, job, 0, k, 0)
    h.ledger.drain_events()
    ckpt(h, job, 0, 2, 1, honest=False)  # its state was changed after checkpoint 0
    ckpt(h, job, 0, 0, 1)
    assert task.replicas[2].outcome == ReplicaOutcome.PENDING  # no quorum at 1 yet
    ckpt(h, job, 0, 1, 1)  # the quorum at 1 catches it, long before any result
    cheat = task.replicas[2]
    assert cheat.outcome == ReplicaOutcome.DISAGREED and "checkpoint 1" in cheat.detail
    assert ReplicaFailed(job, 0, 2) in h.ledger.drain_events()
    assert h.ledger.workers[cheat.worker].disagreed == 1
    assert h.ledger.reputation(cheat.worker) < h.ledger.reputation(task.replicas[0].worker)
    # two honest replicas still make the quorum: no slot to fill (as after a wrong result)
    assert h.ledger.open_slots(h.ledger.jobs[job], task) == 0
    # the cheater's later reports and result change nothing
    assert h.report(job, 0, 2, b"forged")["state"] == ReplicaOutcome.DISAGREED
    h.report(job, 0, 0, b"right")
    h.report(job, 0, 1, b"right")
    assert task.state == TaskState.ACCEPTED and task.accepted[1] == b"right".ljust(32, b"\0")


def test_two_replicas_that_split_on_a_checkpoint_get_a_third_that_decides():
    h = Harness(replicas=2, quorum=2, max_replicas=4)
    job = h.submit(1)
    h.place_all(job)
    task = h.ledger.jobs[job].tasks[0]
    ledger_job = h.ledger.jobs[job]
    for k in range(2):
        ckpt(h, job, 0, k, 0)
    ckpt(h, job, 0, 0, 1)
    assert h.ledger.open_slots(ledger_job, task) == 0  # the other is just slower
    ckpt(h, job, 0, 1, 1, honest=False)
    assert h.ledger.open_slots(ledger_job, task) == 1  # nobody can tell who is wrong
    h.place_all(job)
    assert len(task.replicas) == 3 and h.ledger.open_slots(ledger_job, task) == 0
    ckpt(h, job, 0, 2, 1)  # resumed from checkpoint 0, it reaches 1 and decides
    assert task.checkpoints[-1].seq == 1
    assert task.replicas[1].outcome == ReplicaOutcome.DISAGREED
    assert task.replicas[0].outcome == task.replicas[2].outcome == ReplicaOutcome.PENDING
    assert h.ledger.open_slots(ledger_job, task) == 0


def test_reports_must_come_from_the_replicas_worker_and_are_bounded():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    task = h.ledger.jobs[job].tasks[0]
    other = task.replicas[1].worker
    reply = h.call(h.worker(other), ops.CheckpointReport(job, 0, 0, 0, 1, 1, digest(0),
                                                         digest(0), True))
    assert "not assigned to you" in reply["error"]
    for seq in range(3 * REPORT_WINDOW):
        ckpt(h, job, 0, 0, seq)
    assert len(task.replicas[0].checkpoints) == REPORT_WINDOW
    assert task.replicas[0].checkpoints[-1].seq == 3 * REPORT_WINDOW - 1


def test_checkpoints_survive_a_snapshot_and_old_snapshots_have_none():
    h = Harness()
    job = h.submit(2)
    h.place_all(job)
    plain = h.ledger.snapshot()
    for k in range(2):
        ckpt(h, job, 0, k, 0)
    restored = JobLedger([m.public_key for m in MEMBERS], f=1)
    restored.restore(h.ledger.snapshot())
    assert restored.jobs[job].tasks[0].checkpoints == h.ledger.jobs[job].tasks[0].checkpoints
    assert restored.snapshot() == h.ledger.snapshot()
    old = JobLedger([m.public_key for m in MEMBERS], f=1)
    old.restore(plain)  # written without any checkpoint: tasks and replicas as they always were
    assert all(not t.checkpoints for t in old.jobs[job].tasks)
    assert old.snapshot() == plain


def test_old_submits_read_with_the_default_checkpoint_interval():
    h = Harness()
    job = h.submit(1)
    snap = unpackb(h.ledger.snapshot())
    tag, body = unpackb(snap[3][0][2])
    snap[3][0][2] = packb([tag, body[:-1]])  # stored before checkpoint_fuel existed
    restored = JobLedger([m.public_key for m in MEMBERS], f=1)
    restored.restore(packb(snap))
    spec = restored.jobs[job].spec
    assert spec.checkpoint_fuel == 0 and spec == h.ledger.jobs[job].spec
    assert ops.checkpoint_interval(spec) == ops.MIN_CHECKPOINT_FUEL
    assert ops.checkpoint_interval(ops.Submit(**{**_fields(spec), "fuel": 10**13})) == 10**11
    assert ops.checkpoint_interval(ops.Submit(**{**_fields(spec), "checkpoint_fuel": 7})) == 7


def _fields(spec: ops.Submit) -> dict:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def test_settle_and_tiebreak_are_pure_rules():
    a, b = digest(0), digest(0, honest=False)
    m = lambda seq, d: CheckpointMark(seq, d, 1, 1)  # noqa: E731
    new, caught = settle([], {0: [m(0, a)], 1: [m(0, a)], 2: [m(0, b)]}, 2)
    assert [x.seq for x in new] == [0] and caught == [(2, 0)]
    assert needs_tiebreak([], {0: [m(0, a)], 1: [m(0, b)]}, 2)
    assert not needs_tiebreak([], {0: [m(0, a)], 1: []}, 2)
    assert not needs_tiebreak([m(0, a)], {0: [m(0, a)], 1: [m(0, b)]}, 2)  # already decided
    key = CheckpointMark(4, a, 1, 1, b"k", True)
    assert resume_chain([m(3, a), key, m(5, b)]) == ((b"k", b""), b)
    assert resume_chain([key, m(6, b)]) == ((), b"")  # a gap: start from the beginning
    assert resume_chain([m(5, a)]) == ((), b"")


def test_placement_asks_a_resumable_task_only_for_its_next_hours():
    from daemon.ledger.placing import (RESUMABLE_HORIZON_MS, duration_problem, expected_duration,
                                       job_is_resumable)

    h = Harness(wall_ms=24 * 3_600_000, max_replicas=4)
    job = h.submit(2)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    six_hours = [6 * 3_600_000] * 3
    assert not job_is_resumable(rec)
    assert expected_duration(rec.spec, six_hours)[0] == 6 * 3_600_000
    for k in range(2):
        ckpt(h, job, 0, k, 0)
    assert job_is_resumable(rec)  # learned from its first agreed checkpoint
    ms, basis = expected_duration(rec.spec, six_hours, resumable=True)
    assert ms == RESUMABLE_HORIZON_MS and "resumable" in basis
    assert duration_problem(rec.spec, six_hours, RESUMABLE_HORIZON_MS, True) is None
    assert duration_problem(rec.spec, six_hours, 6 * 3_600_000, True) is None  # proposed before
    assert duration_problem(rec.spec, six_hours, 30 * 60_000, True) is not None
    assert duration_problem(rec.spec, six_hours, RESUMABLE_HORIZON_MS, False) is not None
