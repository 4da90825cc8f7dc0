"""The submitter's and the member's timers under ``trio.testing.MockClock``: no real sleeps,
no wall-clock assertions; virtual time jumps when every task waits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from daemon.blobs.store import BlobStore
from daemon.clock import TrioClock
from daemon.jobs.member import MemberDuties
from daemon.jobs.planner import PLACE_FALLBACK_S
from daemon.jobs.submitter import LocalJob, SubmitterDuties
from daemon.jobs.tally import ASK_VOTES_S
from daemon.storage.db import Database
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, SUBMITTER, Harness


class FakeLedger:
    """The committees as the job roles see them (``ports.Ledger``), answering from a script."""

    network = "net"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.ordered: list[tuple[float, int, Any]] = []

    async def order(self, shard: int, op: Any) -> dict[str, Any]:
        self.ordered.append((trio.current_time(), shard, op))
        return self.answer(op)

    def ordering_s(self, shard: int) -> float:
        return 0.0  # answered at once

    def chain_before(self, epoch: int) -> tuple[bytes, ...]:
        return ()


async def test_the_submitter_asks_again_for_missing_votes_until_the_job_is_settled(
        tmp_path: Path, autojump_clock: object) -> None:
    state = {"state": "open"}
    ledger = FakeLedger(lambda op: {"job": op.job, "asked": 0, "state": state["state"]})
    blobs = SimpleNamespace(store=BlobStore(tmp_path / "blobs"))
    duties = SubmitterDuties(SUBMITTER, ledger, Database(tmp_path / "n.db"), blobs, None)  # type: ignore[arg-type]
    job = LocalJob(b"\x07" * 32, "j", 0, 3, 0, "none", "")
    job.certified = {1}
    duties.jobs[job.id] = job
    module = duties.blobs.store.put(b"\0asm module")
    duties.pins.hold(job.id, [module])
    async with trio.open_nursery() as nursery:
        await nursery.start(duties.run)
        await trio.sleep(ASK_VOTES_S + 1)
        assert [(s, op) for _, s, op in ledger.ordered] == [(0, ops.AskVotes(job.id, (0, 2)))]
        await trio.sleep(ASK_VOTES_S)
        assert len(ledger.ordered) == 2  # still open: it may yet accept them
        state["state"] = "done"
        await trio.sleep(ASK_VOTES_S)
        await trio.sleep(5 * ASK_VOTES_S)
        assert len(ledger.ordered) == 3  # ended with nothing to vote for: settled
        assert module not in duties.blobs.store.pinned  # and its module need not be kept
        nursery.cancel_scope.cancel()


async def test_a_backup_member_proposes_only_after_the_fallback_delay(autojump_clock: object) -> None:
    """The primary proposes at once; the next member (rank 1) waits ``PLACE_FALLBACK_S`` of
    its clock with slots open (a silent primary must not stall a job), then again only after
    as long."""
    h = Harness()
    job = h.submit(2)
    places: list[float] = []

    def answer(op: Any) -> dict[str, Any]:
        places.append(trio.current_time())
        return {"placed": 0, "refused": []}

    ledger = FakeLedger(answer)
    soft = SimpleNamespace(candidates=lambda toward=None, nbytes=0: h.candidates())
    peers = SimpleNamespace(connected=lambda: [])
    duties = MemberDuties(MEMBERS[1], ledger, peers, soft, TrioClock())  # type: ignore[arg-type]
    runner = SimpleNamespace(machine=SimpleNamespace(ledger=h.ledger),
                             config=SimpleNamespace(shard=0, epoch=1,
                                                    committee=[m.public_key for m in MEMBERS]),
                             replica=SimpleNamespace(me=1, primary=0, is_primary=False))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(int(3 * PLACE_FALLBACK_S)):
            duties.tick(nursery, [runner], trio.current_time())  # type: ignore[list-item]
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    offsets = [round(t - start, 1) for t in places]
    assert offsets and offsets[0] >= PLACE_FALLBACK_S
    assert all(b - a >= PLACE_FALLBACK_S for a, b in zip(offsets, offsets[1:])), offsets
    assert all(isinstance(op, ops.Place) and op.job == job for _, _, op in ledger.ordered)


async def test_result_asks_again_for_missing_votes_and_waits_for_them(
        tmp_path: Path, autojump_clock: object) -> None:
    """``watch`` may say done while the last votes travel: ``result`` asks the committee to
    vote again for accepted tasks without a certificate and waits for them, not for tasks the
    ledger never accepted."""
    ledger = FakeLedger(lambda op: {"job": op.job, "asked": 1, "state": "done"})
    blobs = SimpleNamespace(store=BlobStore(tmp_path / "blobs"))
    duties = SubmitterDuties(SUBMITTER, ledger, Database(tmp_path / "n.db"), blobs, None)  # type: ignore[arg-type]
    job = LocalJob(b"\x08" * 32, "j", 0, 3, 0, "none", "")
    job.certified = {0}
    duties.jobs[job.id] = job
    async with trio.open_nursery() as nursery:
        async def vote_arrives() -> None:
            await trio.sleep(3)
            job.certified.add(1)  # as on_vote does once the committee's votes are in
        nursery.start_soon(vote_arrives)
        start = trio.current_time()
        assert await duties.gather_votes(job.id) == 1  # task 2 failed: never voted for
        assert trio.current_time() - start < 4  # done when the asked-for vote came
    assert [op for _, _, op in ledger.ordered] == [ops.AskVotes(job.id, (1, 2))]
    job.certified.update({1, 2})
    assert await duties.gather_votes(job.id) == 0 and len(ledger.ordered) == 1


def test_the_member_rests_only_with_no_job_open_on_its_shards() -> None:
    """``MemberDuties.resting``: its tick loop waits ``REST_TICK_S`` rather than ``TICK_S``
    only when nothing is open to place, re-offer or watch (a submission wakes it on commit)."""
    h = Harness()
    runner = SimpleNamespace(machine=SimpleNamespace(ledger=h.ledger))
    duties = MemberDuties(MEMBERS[1], FakeLedger(lambda op: {}), SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    assert duties.resting([runner])  # type: ignore[list-item]
    h.submit(2)
    assert not duties.resting([runner])  # type: ignore[list-item]
    assert duties.resting([])  # open jobs elsewhere are not this member's
    duties.timer.proposing.add((0, b"j"))
    assert not duties.resting([])
