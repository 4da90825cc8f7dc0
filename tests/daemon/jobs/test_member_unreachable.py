"""The member's side of unreachable workers: report only after UNREACHABLE_S apart, and
again while the worker stays away; never a worker it is connected to."""

from __future__ import annotations

from types import SimpleNamespace

import trio
import trio.testing

from daemon.jobs.member import UNREACHABLE_S, MemberDuties
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, WORKERS, Harness


async def test_a_member_reports_a_worker_it_has_lost_and_stops_when_it_is_back():
    h = Harness()
    job = h.submit(2)
    h.place_all(job)
    holders = {r.worker for t in h.ledger.jobs[job].tasks for r in t.replicas}
    runner = SimpleNamespace(machine=SimpleNamespace(ledger=h.ledger),
                             config=SimpleNamespace(shard=0))
    sent: list[tuple[int, str]] = []
    connected = set(holders)

    class Ledger:
        network = "net"

        def ordering_s(self, shard: int) -> float:
            return 0.0

        async def order(self, shard: int, op: ops.Unreachable) -> dict:
            sent.append((shard, op.worker))
            return {"reports": 1}

    class Peers:
        def connected(self) -> set[str]:
            return connected

    duties = MemberDuties(MEMBERS[0], Ledger(), Peers(), None)  # type: ignore[arg-type]
    gone = sorted(holders)[0]

    async def scan(now: float) -> None:
        async with trio.open_nursery() as nursery:
            duties._report_unreachable(nursery, [runner], now)  # type: ignore[list-item]
        await trio.testing.wait_all_tasks_blocked()

    await scan(0.0)
    connected.discard(gone)
    await scan(1.0)
    await scan(1.0 + UNREACHABLE_S - 0.1)
    assert sent == []  # a blip is not a departure
    await scan(1.0 + UNREACHABLE_S)
    assert sent == [(0, gone)]
    await scan(2.0 + UNREACHABLE_S)
    assert sent == [(0, gone)]  # once per half window, not per scan
    await scan(1.0 + UNREACHABLE_S + 60.0)
    assert sent == [(0, gone)] * 2
    connected.add(gone)
    await scan(200.0)
    assert gone not in duties.absent_since and len(sent) == 2


async def test_a_member_never_proposes_a_worker_it_lost_until_it_is_back():
    """The killed worker's capability record stays fresh in soft state for minutes; placing
    its task's next replica on it again spent a replica per release until the task failed."""
    h = Harness(replicas=1, quorum=1, max_replicas=4)
    gone, alive = WORKERS[0], WORKERS[1]
    job = h.submit(1)
    h.place_all(job, workers=[gone])
    runner = SimpleNamespace(machine=SimpleNamespace(ledger=h.ledger),
                             config=SimpleNamespace(shard=0))
    connected = {alive.node_id}
    placed: list[ops.Place] = []

    class Ledger:
        network = "net"

        def ordering_s(self, shard: int) -> float:
            return 0.0

        async def order(self, shard: int, op):
            if isinstance(op, ops.Place):
                placed.append(op)
                return {"placed": 1}
            return {"reports": 1}

    class Peers:
        def connected(self) -> set[str]:
            return connected

    offered = [gone]  # the dead worker's record is still fresh in soft state

    class Soft:
        def candidates(self, toward=None, nbytes=0):
            return h.candidates(offered)

    duties = MemberDuties(MEMBERS[0], Ledger(), Peers(), Soft())  # type: ignore[arg-type]

    async def scan(now: float) -> None:
        async with trio.open_nursery() as nursery:
            duties._report_unreachable(nursery, [runner], now)  # type: ignore[list-item]

    await scan(0.0)
    await scan(UNREACHABLE_S)
    for m in MEMBERS[:2]:  # f+1 members' reports release its replica
        assert h.call(m, ops.Unreachable(gone.node_id)).get("released") in (None, 1)
    assert h.ledger.open_slots(h.ledger.jobs[job], h.ledger.jobs[job].tasks[0]) == 1
    await scan(UNREACHABLE_S + 2)  # it no longer holds a replica: remembered as lost

    async def propose() -> list[str]:
        placed.clear()
        jobrec = h.ledger.jobs[job]
        await duties._propose(0, h.ledger, jobrec, [0], (0, job))  # type: ignore[arg-type]
        return [w for p in placed for a in p.assignments for w in a.workers]

    assert await propose() == []  # not the dead one, even when no other is known
    offered.append(alive)
    assert await propose() == [alive.node_id]
    connected.add(gone.node_id)  # it restarted and is back
    assert gone.node_id not in duties.absence.shunned(connected)
