"""A job submitted before its shard's first ledger tick: its deadline counts from the moment
the ledger's clock starts, not from the epoch of 1970 (it failed on "deadline" at once)."""

from __future__ import annotations

from consensus.statemachine import ClientRequest
from daemon.ledger.records import JobState, TaskState
from daemon.ledger.state import JobLedger
from protocol.canonical import unpackb
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, NOW_MS, SUBMITTER, Harness


class Fresh(Harness):
    """A harness whose ledger has not been ticked yet (a shard just formed)."""

    def __init__(self) -> None:
        self.ledger = JobLedger([m.public_key for m in MEMBERS], f=1)
        self.rid = 0
        self.spec_overrides = {}


def test_a_job_submitted_before_the_first_tick_keeps_its_whole_deadline():
    h = Fresh()
    job = h.submit(2, deadline_s=600)
    assert h.ledger.now_ms == 0
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS))
    rec = h.ledger.jobs[job]
    assert rec.state == JobState.OPEN
    assert all(t.state == TaskState.OPEN for t in rec.tasks)
    assert rec.submitted_ms == NOW_MS and rec.deadline_ms == NOW_MS + 600_000
    h.place_all(job)
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS + 599_000))
    assert rec.state == JobState.OPEN
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS + 600_000))
    assert [t.failure for t in rec.tasks] == ["DEADLINE", "DEADLINE"]


def test_its_logical_clock_is_the_ledger_time_the_clock_started_at():
    h = Fresh()
    job = h.submit(1)
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS))
    assert h.ledger.jobs[job].clock_ns == NOW_MS * 1_000_000


def test_nothing_is_placed_before_the_first_tick():
    """Leases and offers' logical clocks need the ledger's clock: a placement waits for it."""
    h = Fresh()
    job = h.submit(1, wall_ms=10_000)
    reply = h.place_all(job)
    assert "clock has not started" in reply["error"]
    assert not h.ledger.jobs[job].tasks[0].replicas and not h.ledger.drain_events()[1:]
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS))
    assert h.place_all(job)["placed"] == 1


def test_the_clock_start_survives_a_snapshot():
    h = Fresh()
    job = h.submit(1)
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS))
    copy = JobLedger([m.public_key for m in MEMBERS], f=1)
    copy.restore(h.ledger.snapshot())
    assert copy.jobs[job].submitted_ms == NOW_MS
    reply = unpackb(copy.apply(ClientRequest(SUBMITTER.public_key, 99,
                                             ops.encode_op(ops.Query(job, 0, 1, False)), b"")))
    assert reply["deadline_ms"] == NOW_MS + 3600_000
