"""Who proposes placements: the primary at once; any other member only when a job's slots
have stayed open with nothing of the job placed for ``PLACE_FALLBACK_S`` times its rank after
the primary. Members racing a working primary cost PBFT rounds of refused proposals."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import trio
import trio.testing

from consensus.actions import Committed
from daemon.jobs.member import PLACE_FALLBACK_S, MemberDuties
from daemon.ledger.placing import expected_duration, majority_runtime, propose, task_runtime
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, Harness


def place_first(h: Harness, job: bytes, count: int) -> None:
    """The primary's proposal for the job's first ``count`` tasks, committed."""
    rec = h.ledger.jobs[job]
    cands = h.candidates()
    duration = expected_duration(rec.spec, rec.runtimes_ms)
    extra: Counter = Counter()
    out = []
    for i in range(count):
        _, a = propose(job, i, rec.spec, rec.spec.replicas, cands, set(), h.reputation(),
                       h.ledger.now_ms, duration,
                       task_runtime(rec.tasks[i], majority_runtime(cands)), extra)
        out.append(a)
        extra.update(a.workers)
    reply = h.call(MEMBERS[0], ops.Place(job, h.ledger.now_ms, duration[0], cands, tuple(out)))
    assert reply["placed"] == count


class Setup:
    def __init__(self, me: int, primary: int = 0) -> None:
        self.h = Harness()
        self.job = self.h.submit(8)
        self.runner = SimpleNamespace(
            machine=SimpleNamespace(ledger=self.h.ledger),
            config=SimpleNamespace(shard=0, epoch=1, committee=[m.public_key for m in MEMBERS]),
            replica=SimpleNamespace(me=me, primary=primary, is_primary=me == primary))
        self.proposed: list[float] = []

        class Peers:
            def send(self, node: str, msg: object) -> None:
                pass

            def connected(self) -> set[str]:
                return set()

        self.ordering_s = 0.0  # what ordering a request takes this member now
        ledger = SimpleNamespace(network="net", ordering_s=lambda shard: self.ordering_s)
        self.duties = MemberDuties(MEMBERS[me], ledger, Peers(), None)  # type: ignore[arg-type]
        self.now = 0.0

        async def fake_propose(shard, ledger, job, slots, key):
            self.proposed.append(self.now)
            self.duties._proposing.discard(key)
            self.duties.open_since[key] = self.now

        self.duties._propose = fake_propose  # type: ignore[method-assign]

    async def tick(self, now: float) -> None:
        self.now = now
        async with trio.open_nursery() as nursery:
            self.duties.tick(nursery, [self.runner], now)  # type: ignore[list-item]
        await trio.testing.wait_all_tasks_blocked()

    def commit_placement(self, count: int) -> None:
        place_first(self.h, self.job, count)
        self.duties.on_committed(0, self.runner, Committed(1, 0, b"", (), (), None))  # type: ignore[arg-type]


async def test_the_primary_proposes_at_once():
    s = Setup(me=0)
    await s.tick(100.0)
    assert s.proposed == [100.0]


async def test_a_backup_stays_quiet_while_the_primary_places():
    s = Setup(me=1)  # next after the primary: rank 1
    await s.tick(0.0)
    s.commit_placement(3)  # the primary places part of the job at 5 s
    await s.tick(5.0)
    await s.tick(12.0)  # open since 0, but something was placed 7 s ago
    assert s.proposed == []
    await s.tick(5.0 + PLACE_FALLBACK_S)  # nothing placed for the fallback delay: take over
    assert s.proposed == [5.0 + PLACE_FALLBACK_S]


async def test_backups_take_over_a_silent_primary_one_at_a_time_by_rank():
    first, second = Setup(me=1), Setup(me=2)
    for t in (0.0, PLACE_FALLBACK_S - 0.1, PLACE_FALLBACK_S, 2 * PLACE_FALLBACK_S - 0.1):
        await first.tick(t)
        await second.tick(t)
    assert first.proposed == [PLACE_FALLBACK_S] and second.proposed == []
    await second.tick(2 * PLACE_FALLBACK_S)
    assert second.proposed == [2 * PLACE_FALLBACK_S]


async def test_a_backup_waits_longer_while_the_committee_is_slow_to_order():
    """A primary's proposal takes as long as any request to be ordered: a backup counting
    only its 8 s proposed the same tasks while it was in flight."""
    s = Setup(me=1)
    s.ordering_s = 5.0  # FALLBACK_ORDERINGS of these: 15 s
    await s.tick(0.0)
    await s.tick(PLACE_FALLBACK_S)
    await s.tick(14.9)
    assert s.proposed == []
    await s.tick(15.0)
    assert s.proposed == [15.0]


async def test_rank_follows_the_view():
    s = Setup(me=3, primary=2)  # view 2's primary is member 2: member 3 is next
    await s.tick(0.0)
    await s.tick(PLACE_FALLBACK_S)
    assert s.proposed == [PLACE_FALLBACK_S]
