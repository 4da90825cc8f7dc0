"""The member's side of unreachable workers: report only after UNREACHABLE_S apart, and
again while the worker stays away; never a worker it is connected to."""

from __future__ import annotations

from types import SimpleNamespace

import trio
import trio.testing

from daemon.jobs.member import UNREACHABLE_S, MemberDuties
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, Harness


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
