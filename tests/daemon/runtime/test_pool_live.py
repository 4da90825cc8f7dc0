"""The pool under the owner's hand: suspend and resume, settings changed while tasks run, and
one record per task run for the task log and metrics (real worker processes)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.pool import PoolConfig, PoolPaused, RunRecord, WorkerPool
from daemon.runtime.volunteer import VolunteerPrefs, cpu_count
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules

PI = modules.PI.read_bytes()
PI_HASH = module_hash(PI)
LOOP = modules.infinite_loop()


def config(**kw) -> PoolConfig:
    base = dict(nice=0, margin_s=0.3, compile_allowance_s=30.0, load_allowance_s=0.3,
                max_memory_mb=256, runtime_overhead_mb=1024)
    base.update(kw)
    return PoolConfig(**base)  # type: ignore[arg-type]


async def test_suspend_refuses_new_tasks_with_the_reason_and_lets_a_running_one_finish():
    pool = WorkerPool(config(workers=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())  # compile once
        running: list = []
        finished = trio.Event()

        async def one() -> None:
            running.append(await pool.run_task(PI_HASH, None, b"7 3000000\n", Limits()))
            finished.set()

        nursery.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        pool.suspend("suspended by the owner")
        assert pool.status()["summary"].endswith("taking no tasks: suspended by the owner")
        with pytest.raises(PoolPaused, match="suspended by the owner"):
            await pool.run_task(PI_HASH, None, b"7 1000\n", Limits())
        await finished.wait()
        pool.suspend(None)
        after = await pool.run_task(PI_HASH, None, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()
    assert running[0].status is TaskStatus.OK
    assert after.output == b"763 1000\n"
    assert pool.gate == (True, "accepting tasks")


@pytest.mark.skipif(cpu_count() < 2, reason="needs two cores to grow to two workers")
async def test_cpu_share_and_memory_change_live_grow_and_shrink_the_workers():
    pool = WorkerPool(config(prefs=VolunteerPrefs(cpu_share=1 / cpu_count())))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        assert len(pool.worker_pids()) == 1
        pool.reconfigure(VolunteerPrefs(cpu_share=1.0), 64)
        with trio.fail_after(60):
            await pool.wait_for_workers(cpu_count())
        refused = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits(memory_pages=2048))
        pool.reconfigure(VolunteerPrefs(cpu_share=1 / cpu_count()), 256)
        with trio.fail_after(60):
            await pool.wait_for_workers(1)
        ok = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits(memory_pages=2048))
        await trio.sleep(0.2)  # a shrunk pool stays shrunk: no slot respawns its worker
        assert len(pool.worker_pids()) == 1 and pool.size == 1
        nursery.cancel_scope.cancel()
    assert refused.status is TaskStatus.REFUSED and "allows 64 MiB" in refused.detail
    assert ok.output == b"763 1000\n"


async def test_every_run_reaches_the_observers_with_its_origin_and_cpu_time():
    pool = WorkerPool(config(workers=1))
    records: list[RunRecord] = []
    pool.on_run.append(records.append)
    pool.on_run.append(lambda r: 1 / 0)  # a broken observer loses nothing
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        out = await pool.run_task(PI_HASH, PI, b"7 3000000\n", Limits(), origin=(b"\x01" * 32, 7, 1))
        timed_out = await pool.run_task(module_hash(LOOP), LOOP, b"",
                                        Limits(fuel=2**62, wall_s=0.3))
        nursery.cancel_scope.cancel()
    assert out.status is TaskStatus.OK
    assert [r.outcome.status for r in records] == [TaskStatus.OK, timed_out.status]
    assert records[0].origin == (b"\x01" * 32, 7, 1) and records[1].origin is None
    assert 0 < records[0].cpu_s and 0 < records[1].cpu_s  # CPU-bound: its worker computed
