"""A worker declines an offer pinned to a runtime it does not run, as a fault of the node."""

from __future__ import annotations

import trio
import trio.testing

from daemon.capabilities import RUNTIME
from daemon.jobs.worker import WorkerDuties
from daemon.runtime.pool import PoolConfig, WorkerPool
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskOffer, TaskStatus

MEMBER = b"m" * 32


def offer(runtime: str) -> TaskOffer:
    return TaskOffer(0, 0, b"j" * 32, 3, 1, "12D3KooWsubmitter", b"h" * 32, 10, b"i" * 32, 1,
                     b"x", ("task",), 1000, 16, 60_000, 1024, 0, 0, runtime)


async def test_an_offer_for_another_runtime_is_declined_and_never_votes():
    reports: list = []

    class Ledger:
        def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...]:
            return (MEMBER,)

        async def order(self, shard: int, op: object) -> dict:
            reports.append(op)
            return {}

    class Peers:
        async def hand_over(self, *_: object) -> bool:
            raise AssertionError("a declined task has no output to hand over")

    # The blob service is never reached: the runtime is checked before anything is fetched.
    duties = WorkerDuties(WorkerPool(PoolConfig(workers=1)), None,  # type: ignore[arg-type]
                          Ledger(), Peers())  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(duties.run)
        duties.on_offer(MEMBER, offer(f"{RUNTIME}@another-release"))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    (result,) = reports  # no Start: it never ran
    assert isinstance(result, ops.Result)
    assert result.status == TaskStatus.CRASHED  # a node fault: released, placed elsewhere
    assert f"pinned to {RUNTIME}@another-release, this node runs {duties.runtime}" in result.detail
    assert duties.runtime.startswith(f"{RUNTIME}@") and duties.runtime != f"{RUNTIME}@another-release"
