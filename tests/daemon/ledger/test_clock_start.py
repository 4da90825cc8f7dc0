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
    h.tick_all(NOW_MS)
    rec = h.ledger.jobs[job]
    assert rec.state == JobState.OPEN
    assert all(t.state == TaskState.OPEN for t in rec.tasks)
    assert rec.submitted_ms == NOW_MS and rec.deadline_ms == NOW_MS + 600_000
    h.place_all(job)
    h.tick_all(NOW_MS + 599_000)
    assert rec.state == JobState.OPEN
    h.tick_all(NOW_MS + 600_000)
    assert [t.failure for t in rec.tasks] == ["DEADLINE", "DEADLINE"]


def test_its_logical_clock_is_the_ledger_time_the_clock_started_at():
    h = Fresh()
    job = h.submit(1)
    h.tick_all(NOW_MS)
    assert h.ledger.jobs[job].clock_ns == NOW_MS * 1_000_000


def test_nothing_is_placed_before_the_first_tick():
    """Leases and offers' logical clocks need the ledger's clock: a placement waits for it."""
    h = Fresh()
    job = h.submit(1, wall_ms=10_000)
    reply = h.place_all(job)
    assert "clock has not started" in reply["error"]
    assert not h.ledger.jobs[job].tasks[0].replicas and not h.ledger.drain_events()[1:]
    h.tick_all(NOW_MS)
    assert h.place_all(job)["placed"] == 1


def test_a_job_cancelled_before_the_first_tick_is_kept_a_day_from_it():
    """Cancelled at ledger time 0, it was dropped at the first tick (a day after 1970)."""
    from daemon.ledger.state import RETAIN_ENDED_MS

    h = Fresh()
    job = h.submit(2)
    assert h.call(SUBMITTER, ops.Cancel(job))["state"] == JobState.CANCELLED
    h.tick_all(NOW_MS)
    assert h.ledger.jobs[job].ended_ms == NOW_MS
    h.tick_all(NOW_MS + RETAIN_ENDED_MS - 1000)
    assert job in h.ledger.jobs
    h.tick_all(NOW_MS + RETAIN_ENDED_MS + 1000)
    assert job not in h.ledger.jobs


def test_the_clock_start_survives_a_snapshot():
    h = Fresh()
    job = h.submit(1)
    h.tick_all(NOW_MS)
    copy = JobLedger([m.public_key for m in MEMBERS], f=1)
    copy.restore(h.ledger.snapshot())
    assert copy.jobs[job].submitted_ms == NOW_MS
    reply = unpackb(copy.apply(ClientRequest(SUBMITTER.public_key, 99,
                                             ops.encode_op(ops.Query(job, 0, 1, False)), b"")))
    assert reply["deadline_ms"] == NOW_MS + 3600_000


def test_a_job_sent_to_an_idle_shard_starts_at_the_next_fresh_clock_reading():
    """An idle shard's members read their clocks rarely (``shard.LEDGER_TICK_IDLE_S`` per
    member), so its ledger clock is minutes old: a job stamped with it lost those minutes of its
    deadline. It starts once f+1 members have read their clocks since it came; f alone cannot
    start it (nor hold it back: the honest ones read theirs at once)."""
    h = Harness()
    stale = h.ledger.now_ms
    job = h.call(SUBMITTER, ops.Submit(
        name="t", module_hash=b"\x01" * 32, module_size=100, argv=("t",),
        inputs=(ops.TaskInput(b"\x00" * 32, 1, b"\x00"),), fuel=10**9, memory_pages=16,
        wall_ms=10_000, max_output=1024, replicas=2, quorum=2, max_replicas=4,
        min_attestation=0, deadline_s=60, clock_ns=0, nonce=1, total_tasks=1))["job"]
    rec = h.ledger.jobs[job]
    assert rec.submitted_ms == 0 and h.ledger.anchoring == {}
    assert "next clock reading" in h.place_all(job)["error"]
    fresh = stale + 540_000  # nine minutes idle
    h.call(MEMBERS[0], ops.Tick(fresh))  # f = 1 member alone: not yet
    assert rec.submitted_ms == 0
    copy = JobLedger([m.public_key for m in MEMBERS], f=1)
    copy.restore(h.ledger.snapshot())  # a replica restored meanwhile waits for the same reading
    assert copy.anchoring == h.ledger.anchoring and copy.snapshot() == h.ledger.snapshot()
    for ledger in (h.ledger, copy):
        h.ledger = ledger
        h.call(MEMBERS[1], ops.Tick(fresh + 100))
        rec = ledger.jobs[job]
        assert rec.submitted_ms == fresh and rec.deadline_ms == fresh + 60_000
        assert rec.clock_ns == fresh * 1_000_000 and ledger.anchoring is None
        assert h.place_all(job)["placed"] == 1
        h.call(MEMBERS[2], ops.Tick(fresh + 59_000))
        h.call(MEMBERS[3], ops.Tick(fresh + 59_000))
        assert rec.state == JobState.OPEN  # a stale stamp would have failed it by now
