"""A worker's accepted tasks survive a crash of its daemon (``daemon.jobs.held``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio
import trio.testing

from daemon.capabilities import RUNTIME
from daemon.jobs.held import NAMESPACE, HeldOffers, lease_ms
from daemon.jobs.worker import WorkerDuties
from daemon.runtime.pool import PoolConfig, WorkerPool
from daemon.storage.db import Database
from protocol.messages import ledger as ops
from tests.daemon.jobs.test_worker_runtime import MEMBER, offer

T0 = 1_800_000_000_000


def test_offers_are_kept_until_dropped_or_their_lease_ends(tmp_path: Path) -> None:
    held = HeldOffers(Database(tmp_path / "db"))
    a, b = offer(RUNTIME), replace(offer(RUNTIME), task=4)
    held.keep(b, T0 + 5)
    held.keep(a, T0)
    assert held.take(T0 + 10) == [a, b]  # oldest first
    held.drop(a.job, a.task, a.replica)
    assert held.take(T0 + 10) == [b]
    assert held.take(T0 + 5 + lease_ms(b)) == []  # placed again elsewhere by now
    assert held.db.scan(NAMESPACE) == []  # and forgotten


def test_a_record_that_does_not_decode_is_dropped_never_run(tmp_path: Path) -> None:
    held = HeldOffers(Database(tmp_path / "db"))
    held.keep(offer(RUNTIME), T0)
    held.db.put(NAMESPACE, b"damaged", b"\x93\x01")
    assert held.take(T0) == [offer(RUNTIME)]
    assert len(held.db.scan(NAMESPACE)) == 1


class Ledger:
    def __init__(self) -> None:
        self.reports: list[object] = []

    def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...]:
        return (MEMBER,)

    async def order(self, shard: int, op: object) -> dict:
        self.reports.append(op)
        return {}


async def test_a_worker_that_crashed_runs_its_held_tasks_again_once(tmp_path: Path) -> None:
    # The daemon died holding a task (a worker process reported nothing for it); started again
    # on the same database, the worker runs it, and a late copy of its offer is not run twice.
    # (An offer for another runtime runs without any blob: it ends at once, declined.)
    task = offer(f"{RUNTIME}@another-release")
    db = Database(tmp_path / "db")
    HeldOffers(db).keep(task, T0)
    ledger = Ledger()
    duties = WorkerDuties(WorkerPool(PoolConfig(workers=1)), None,  # type: ignore[arg-type]
                          ledger, None, HeldOffers(db), lambda: T0 + 1000)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(duties.run)
        await trio.testing.wait_all_tasks_blocked()
        duties.on_offer(MEMBER, task)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    (result,) = ledger.reports
    assert isinstance(result, ops.Result) and (result.task, result.replica) == (3, 1)
    assert duties.status()["held_resumed"] == 1
    assert db.scan(NAMESPACE) == []  # it ended here: nothing held any more


async def test_a_clean_stop_hands_the_tasks_back_and_forgets_them(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    held = HeldOffers(db)
    held.keep(offer(RUNTIME), T0)
    ledger = Ledger()
    duties = WorkerDuties(WorkerPool(PoolConfig(workers=1)), None,  # type: ignore[arg-type]
                          ledger, None, held, lambda: T0)  # type: ignore[arg-type]
    duties.unfinished.add((b"j" * 32, 3, 1))
    duties.tally.accepted[(b"j" * 32, 3, 1)] = offer(RUNTIME)
    assert await duties.leave("the node is shutting down") == 1
    assert [type(r) for r in ledger.reports] == [ops.Leave]
    assert held.take(T0) == []


async def test_a_resumed_task_keeps_the_time_it_was_accepted(tmp_path: Path) -> None:
    # A daemon that crashes again and again must not stretch a task past its lease: the
    # record keeps the first acceptance time, so each restart counts from it.
    task = offer(RUNTIME)
    db = Database(tmp_path / "db")
    HeldOffers(db).keep(task, T0)
    duties = WorkerDuties(WorkerPool(PoolConfig(workers=1)), None,  # type: ignore[arg-type]
                          Ledger(), None, HeldOffers(db), lambda: T0 + 1000)  # type: ignore[arg-type]
    duties._resume_held()  # what ``run`` does first: queued, not yet run
    assert duties.held_resumed == 1
    assert HeldOffers(db).take(T0 + lease_ms(task)) == []  # its lease counts from T0
