"""The worker pool with real worker processes: results agree across processes, a dead or wedged
worker is replaced and its task reported clearly, and no process outlives the pool."""

from __future__ import annotations

import os
import resource
import signal
from datetime import datetime, timedelta

import pytest
import trio
import trio.testing

from daemon.runtime.cache import ModuleUnavailable, module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.pool import PoolConfig, PoolPaused, WorkerPool
from daemon.runtime.volunteer import VolunteerPrefs, parse_hours
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules

PI = modules.PI.read_bytes()
PI_HASH = module_hash(PI)
LOOP = modules.infinite_loop()


def config(**kw) -> PoolConfig:
    base = dict(workers=2, nice=0, margin_s=0.3, compile_allowance_s=30.0, load_allowance_s=0.3,
                max_memory_mb=256, runtime_overhead_mb=1024)
    base.update(kw)
    return PoolConfig(**base)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def busy_pid(pool: WorkerPool) -> int:
    await trio.testing.wait_all_tasks_blocked()
    (pid,) = [p for p, busy in pool.worker_pids().items() if busy]
    return pid


async def test_pi_is_identical_in_two_worker_processes(tmp_path):
    pool = WorkerPool(config(cache_dir=tmp_path))
    results = []
    both_busy = []

    async def one() -> None:
        results.append(await pool.run_task(PI_HASH, None, b"7 1000000\n", Limits()))

    async def watch() -> None:
        await trio.testing.wait_all_tasks_blocked()
        both_busy.append(list(pool.worker_pids().values()))

    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        first = await pool.run_task(PI_HASH, PI, b"7 1000000\n", Limits())  # compiles, to disk
        async with trio.open_nursery() as both:  # two at once: two different workers
            both.start_soon(one)
            both.start_soon(one)
            both.start_soon(watch)
        nursery.cancel_scope.cancel()
    assert both_busy == [[True, True]]
    assert [r.output for r in [first, *results]] == [b"785526 1000000\n"] * 3
    assert len({r.fuel_used for r in [first, *results]}) == 1
    assert pool.completed == 3 and pool.crashed == 0


async def signal_busy_worker(pool: WorkerPool, signum: int, pids: list[int]) -> None:
    pid = await busy_pid(pool)
    os.kill(pid, signum)
    pids.append(pid)


async def test_a_worker_killed_mid_task_reports_crashed_and_is_replaced():
    pool = WorkerPool(config(workers=1))
    victims: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        nursery.start_soon(signal_busy_worker, pool, signal.SIGKILL, victims)
        outcome = await pool.run_task(module_hash(LOOP), LOOP, b"", Limits(fuel=2**62, wall_s=30))
        after = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()
    assert outcome.status is TaskStatus.CRASHED
    assert outcome.detail.startswith("worker process died (killed by signal 9 (SIGKILL))")
    assert after.output == b"763 1000\n"
    assert pool.crashed == 1 and pool.restarts >= 1 and victims[0] not in pool.worker_pids()


def kill_when_busy(pool: WorkerPool, pids: list[int], nursery: trio.Nursery) -> None:
    """SIGKILL the worker the next task goes to, once it has it. The observer is in place
    before the caller starts the task: a free worker takes it without a checkpoint, so an
    observer added by a task started alongside could come too late."""
    started = trio.Event()
    seen: list[int] = []

    def on_start(pid: int) -> None:
        if not seen:
            seen.append(pid)
            started.set()

    async def kill() -> None:
        try:
            with trio.fail_after(30):
                await started.wait()
        finally:
            pool.on_start.remove(on_start)
        os.kill(seen[0], signal.SIGKILL)
        pids.append(seen[0])

    pool.on_start.append(on_start)
    nursery.start_soon(kill)


async def test_workers_lost_twice_in_a_row_make_the_runtime_degraded_until_a_task_completes():
    """A dead worker is the node's fault: one can be bad luck, two in a row are shown."""
    pool = WorkerPool(config(workers=1))
    victims: list[int] = []
    healths = []
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        for _ in range(2):
            kill_when_busy(pool, victims, nursery)
            await pool.run_task(module_hash(LOOP), LOOP, b"", Limits(fuel=2**62, wall_s=30))
            healths.append(pool.status()["health"])
        await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        healths.append(pool.status()["health"])
        nursery.cancel_scope.cancel()
    assert healths[0] == "ok"
    assert healths[1].startswith("degraded: the last 2 tasks' workers died or did not answer "
                                 "(last: worker process died (killed by signal 9")
    assert healths[2] == "ok" and pool.status()["worker_faults_in_a_row"] == 0


async def test_a_running_task_shows_its_progress_and_is_gone_once_it_ends():
    pool = WorkerPool(config(workers=1))
    seen: list[dict] = []

    async def watch_then_kill() -> None:
        pid = await busy_pid(pool)
        seen.extend(pool.running_tasks())
        os.kill(pid, signal.SIGKILL)

    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        nursery.start_soon(watch_then_kill)
        await pool.run_task(module_hash(LOOP), LOOP, b"", Limits(fuel=2**62, wall_s=30),
                            origin=(b"\x07" * 32, 3, 1))
        assert pool.running_tasks() == []
        nursery.cancel_scope.cancel()
    [row] = seen
    assert (row["job"], row["task"], row["replica"]) == ("07" * 32, 3, 1)
    assert row["allowance_s"] == 30 and 0 <= row["used_of_allowance"] < 1
    assert row["elapsed_s"] >= 0 and row["cpu_s"] >= 0


async def test_a_wedged_worker_is_killed_after_the_wall_limit_plus_margin():
    pool = WorkerPool(config(workers=1, compile_allowance_s=0.3))
    wedged: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        # SIGSTOP: not even the worker's own wall-clock watchdog can answer now.
        nursery.start_soon(signal_busy_worker, pool, signal.SIGSTOP, wedged)
        outcome = await pool.run_task(module_hash(LOOP), LOOP, b"", Limits(fuel=2**62, wall_s=0.5))
        after = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()
    assert outcome.status is TaskStatus.TIMED_OUT
    assert outcome.detail.startswith("worker killed: no answer within 1.1 s")
    assert not alive(wedged[0]) and pool.killed == 1
    assert after.output == b"763 1000\n"


async def test_cancelling_the_pool_mid_task_leaves_no_process():
    pool = WorkerPool(config(workers=2))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            pids = list(pool.worker_pids())
            nursery.start_soon(pool.run_task, module_hash(LOOP), LOOP, b"",
                               Limits(fuel=2**62, wall_s=30))
            await busy_pid(pool)
            scope.cancel()
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)


async def test_admission_refusals_are_clear():
    now = datetime.now()
    later = f"{(now + timedelta(hours=2)):%H:00}-{(now + timedelta(hours=3)):%H:00}"
    closed = WorkerPool(config(workers=1, prefs=VolunteerPrefs(hours=parse_hours(later))))
    async with trio.open_nursery() as nursery:
        await nursery.start(closed.run)
        with pytest.raises(PoolPaused, match="outside the volunteer's hours"):
            await closed.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()

    pool = WorkerPool(config(workers=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with pytest.raises(ModuleUnavailable):
            await pool.run_task(PI_HASH, None, b"7 1000\n", Limits())
        big = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits(memory_pages=8192))
        ok = await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()
    assert big.status is TaskStatus.REFUSED
    assert big.detail == "task asks for 512 MiB of memory; this volunteer allows 256 MiB"
    assert ok.output == b"763 1000\n"
    assert pool.status()["accepting"] is True


async def test_workers_are_niced_limited_and_idle_scheduled_for_idle_only_volunteers():
    prefs = VolunteerPrefs(idle_only=True)
    pool = WorkerPool(config(workers=1, nice=7, prefs=prefs, max_memory_mb=100,
                             runtime_overhead_mb=400))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        (pid,) = pool.worker_pids()
        policy = os.sched_getscheduler(pid)
        niceness = os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, 0)
        data = resource.prlimit(pid, resource.RLIMIT_DATA)
        core = resource.prlimit(pid, resource.RLIMIT_CORE)
        # idle-only with no load measured yet: the pool says so instead of running
        with pytest.raises(PoolPaused, match="idle-only: measuring whether the machine is idle"):
            await pool.run_task(PI_HASH, PI, b"7 1000\n", Limits())
        nursery.cancel_scope.cancel()
    assert policy == os.SCHED_IDLE
    assert niceness == 7 or os.getpriority(os.PRIO_PROCESS, 0) + 7 > 19
    assert data[0] == 500 << 20
    assert core == (0, 0)


def test_a_worker_survives_the_thread_that_spawned_it_and_dies_with_its_parent(tmp_path):
    """trio spawns workers from helper threads it later retires: a worker tied to that thread
    (PR_SET_PDEATHSIG) was killed mid-task. It must live as long as its parent process."""
    import subprocess
    import sys
    import threading

    from daemon.runtime import wire
    from daemon.runtime.pool import PoolConfig
    from daemon.runtime.volunteer import VolunteerPrefs

    cmd = PoolConfig(prefs=VolunteerPrefs(), cache_dir=tmp_path / "cache").command()
    holder = {}

    def spawn() -> None:
        proc = holder["p"] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        header = proc.stdout.read(wire.HEADER.size)  # "ready": the worker has set itself up
        holder["hello"] = wire.decode(proc.stdout.read(wire.frame_length(header)))

    spawner = threading.Thread(target=spawn)
    spawner.start()
    spawner.join()  # the spawning thread ends after the worker is up, as trio's threads do
    proc = holder["p"]
    try:
        assert "ready" in holder["hello"]
        from tests.daemon.runtime import modules
        from daemon.runtime import Limits, module_hash

        module = modules.empty()
        request = wire.RunRequest(module_hash(module), module, b"", Limits(), b"", (b"t",), 0)
        proc.stdin.write(wire.encode(request.to_wire()))
        proc.stdin.flush()
        header = proc.stdout.read(wire.HEADER.size)
        assert header, "the worker died when the thread that spawned it ended"
        reply = wire.decode(proc.stdout.read(wire.frame_length(header)))
        assert "outcome" in reply
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused by the throttle"])
def test_a_worker_dies_when_its_parent_is_killed(tmp_path, paused):
    import os
    import select
    import signal
    import subprocess
    import sys
    import textwrap

    from daemon.runtime.pool import WORKER_POPEN, PoolConfig
    from daemon.runtime.volunteer import VolunteerPrefs

    cmd = PoolConfig(prefs=VolunteerPrefs(), cache_dir=tmp_path / "cache").command()
    # Paused as the CPU throttle leaves it between duty cycles, by its parent as the daemon
    # does. waitpid(WUNTRACED) returns once every thread has stopped: the kernel hangs up an
    # orphaned process group only if its stop is complete, so the kill must come after that.
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, subprocess, sys
        from daemon.runtime import wire
        w = subprocess.Popen({cmd!r}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             **{WORKER_POPEN!r})
        w.stdout.read(wire.HEADER.size)
        if {paused!r}:
            os.kill(w.pid, signal.SIGSTOP)
            _, status = os.waitpid(w.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), status
        print(w.pid, flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline()
    assert line, "the parent could not start (or pause) its worker"
    # Opened while the parent lives: its unreaped child, whose pid cannot have been reused.
    worker = os.pidfd_open(int(line))
    exited: list[int] = []
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # Readable once the worker has exited (reaped or not, it is not our child). 60 s is
        # only a bound on "never": a loaded CI machine is slow.
        exited, _, _ = select.select([worker], [], [], 60)
        if not exited:
            signal.pidfd_send_signal(worker, signal.SIGKILL)  # so it does not outlive the test
    finally:
        os.close(worker)
    assert exited, "the worker outlived its SIGKILLed parent"
