"""The pool of sandbox worker processes: the trio-facing shell of the runtime.

Theory of operation: the pool owns ``workers`` slots (floor(cores * cpu_share), at least one).
Each slot is a trio task that keeps one worker process alive: it spawns it, waits for its
``ready`` frame, lends it out through the ``_idle`` channel, and when the worker is retired
(crashed, overdue, or cancelled mid-task) reaps it and spawns a fresh one. All processes belong
to slot tasks inside the pool's nursery, so cancelling ``run`` kills and reaps every one of them.

``run_task`` borrows an idle worker (this is also what bounds concurrency to the slots), sends
one request and waits for one answer, with a deadline of the task's wall limit plus a margin
(plus a compile allowance when module bytes are sent). The worker enforces the wall limit
itself (epoch interruption); the deadline here catches what it cannot: a wedged or runaway
process, which is killed and the task reported TIMED_OUT. A worker that dies reports CRASHED,
which is a fault of this node, not a result of the module.

Admission: ``gate`` is re-evaluated every ``sample_interval_s`` from local time and CPU load
(``volunteer.may_run_now``); while it is closed ``run_task`` raises ``PoolPaused`` with the
reason. Tasks already running finish (their wall limits bound them). ``suspended`` (the
owner's ``novacron suspend``) closes the gate whatever the hours or load say.

Live settings: ``reconfigure`` swaps the preferences and memory cap while tasks run. More slots
start new workers at once; fewer retire the surplus as each worker next falls idle. Idle workers
are replaced so new rlimits and SCHED_IDLE take effect. ``slowdown`` (set by the CPU-share
throttle, which pauses workers on a duty cycle) stretches a task's wall-clock allowance by the
time its worker spends paused. Every finished run is passed to the ``on_run`` observers as a
``RunRecord`` (the task log, metrics), with the CPU time its worker spent on it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from daemon.errors import DaemonError
import daemon
from daemon.runtime import wire
from daemon.runtime.cache import ModuleUnavailable
from daemon.runtime.outcome import PAGE, Limits, TaskOutcome
from daemon.runtime.resumable import Checkpoint
from daemon.runtime.volunteer import (CpuSample, VolunteerPrefs, cpu_count, load_between,
                                      may_run_now, read_cpu_sample)
from protocol.messages.tasks import TaskStatus

log = logging.getLogger("novacron.runtime")

REPO_ROOT = Path(daemon.__file__).resolve().parent.parent
FAULTS_DEGRADED = 2
"""Tasks in a row whose worker died or never answered before ``status`` says the runtime is
degraded. Either is this node's fault, not the task's (a task that runs too long is ended
by the worker itself, and answers TIMED_OUT): one can be bad luck (the OOM killer), two in a
row with no task completed between them is something to look at. A worker whose answers
were cut short by the CPU throttle's pauses lost a task slot for four minutes at a time
while ``status`` said ok."""


class PoolPaused(DaemonError):
    """The volunteer's preferences say no new tasks now; the message says why."""


class WorkerGone(DaemonError):
    """The worker's pipe closed or broke mid-conversation."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    prefs: VolunteerPrefs = field(default_factory=VolunteerPrefs)
    max_memory_mb: int = 2048  # the most one task may use; also sizes the workers' RLIMIT_DATA
    cache_dir: Path | None = None
    cache_capacity: int = 32
    nice: int = 10
    workers: int | None = None  # None: prefs.workers(cpu_count())
    margin_s: float = 2.0  # beyond a task's wall limit before the pool kills its worker
    compile_allowance_s: float = 60.0  # extra time when the worker may have to compile
    load_allowance_s: float = 10.0  # extra time to load a cached module from disk
    spawn_timeout_s: float = 60.0
    sample_interval_s: float = 5.0
    runtime_overhead_mb: int = 512  # interpreter, compiler and module bytes, on top of task memory
    python_cache_dir: Path | None = None  # the machine's compiled Python interpreter (None: default)

    def worker_count(self) -> int:
        return self.workers if self.workers is not None else self.prefs.workers(cpu_count())

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "daemon.runtime.worker", "--nice", str(self.nice),
               "--cache-capacity", str(self.cache_capacity),
               "--max-data-mb", str(self.max_memory_mb + self.runtime_overhead_mb)]
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        if self.python_cache_dir is not None:
            cmd += ["--python-cache", str(self.python_cache_dir)]
        if self.prefs.idle_only:
            cmd.append("--sched-idle")
        return cmd


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One task run, for observers: ``origin`` is what the caller said the task was (job,
    task, replica), ``cpu_s`` the CPU time its worker process used meanwhile."""

    origin: tuple[bytes, int, int] | None
    outcome: TaskOutcome
    started: float
    cpu_s: float


@dataclass
class Running:
    """A task on a worker now: what the owner's page and ``novacron tasks`` show as progress.

    A task is opaque while it runs (its fuel count lives inside the worker), so progress is
    what can be said honestly from outside: the time used of its wall-clock allowance and the
    CPU its worker has used so far."""

    origin: tuple[bytes, int, int] | None
    pid: int
    started: float
    cpu0: float
    allowance_s: float

    def view(self, now: float) -> dict[str, Any]:
        job, task, replica = self.origin if self.origin else (b"", -1, -1)
        elapsed = max(0.0, now - self.started)
        return {"job": job.hex(), "task": task, "replica": replica, "started": self.started,
                "elapsed_s": round(elapsed, 2), "allowance_s": round(self.allowance_s, 2),
                "used_of_allowance": round(min(1.0, elapsed / max(self.allowance_s, 1e-9)), 3),
                "cpu_s": round(max(0.0, process_cpu_s(self.pid) - self.cpu0), 2)}


def process_cpu_s(pid: int) -> float:
    """utime + stime of a live process in seconds (0.0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class _Worker:
    """One worker process and the framing on its pipes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._send = process.stdin
        self._recv = process.stdout
        self._buffer = bytearray()
        self.retired = trio.Event()
        self.pid = process.pid
        self.busy = False
        self.surplus = False  # retired for good: its slot ends instead of spawning again

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                chunk = await self._recv.receive_some(max(65536, n - len(self._buffer)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                raise WorkerGone()
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def receive(self, limit: int = wire.MAX_FRAME) -> dict[str, Any]:
        header = await self._read_exact(wire.HEADER.size)
        return wire.decode(await self._read_exact(wire.frame_length(header, limit)))

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self._send.send_all(wire.encode(message))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise WorkerGone() from None

    def kill_and_retire(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        self.retired.set()

    async def reap(self) -> None:
        self.kill_and_retire()
        await self.process.wait()
        for stream in (self._send, self._recv):
            await trio.aclose_forcefully(stream)


WORKER_POPEN: dict[str, Any] = {"process_group": 0}
"""Each worker in a process group of its own, in the daemon's session. The CPU throttle pauses
workers with SIGSTOP; were the daemon killed (-9) meanwhile, a paused worker could never run
its own watch of its parent. The kernel sends SIGHUP then SIGCONT to a process group that the
death of its members' parent leaves orphaned while one of them is stopped, so the worker
wakes and exits instead of staying stopped forever."""


class WorkerPool:
    """Runs tasks in worker processes. Start with ``await nursery.start(pool.run)``."""

    name = "runtime"

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.size = config.worker_count()
        self._idle_send, self._idle_recv = trio.open_memory_channel[_Worker](
            max(self.size, cpu_count()))
        self._live: dict[int, _Worker] = {}
        self._live_changed = trio.Event()
        """Set (and replaced) when a worker comes up or goes (``wait_for_workers``)."""
        self._nursery: trio.Nursery | None = None
        self._surplus = 0
        self._load: float | None = None
        self.gate: tuple[bool, str] = (False, "starting")
        self.suspended: str | None = None
        self.slowdown = 1.0
        self.on_run: list[Callable[[RunRecord], None]] = []
        self.on_spawn: list[Callable[[int], object]] = []  # e.g. put it in the CPU cgroup
        self.on_start: list[Callable[[int], object]] = []  # a task went to this worker pid
        self._running: dict[int, Running] = {}  # worker pid -> the task it runs
        self.started = self.completed = self.crashed = self.killed = self.restarts = 0
        self.faults_in_a_row = 0
        self.last_fault = ""
        self.running = 0

    # -- service ---------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for index in range(self.size):
                await nursery.start(self._slot, index)
            self._update_gate(None)
            nursery.start_soon(self._gate_loop)
            log.info("runtime: %d worker(s) ready", self.size)
            task_status.started()

    async def _slot(self, index: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        first = True
        while True:
            worker = await self._spawn()
            self._live[worker.pid] = worker
            self._workers_changed()
            try:
                if first:
                    task_status.started()
                    first = False
                self._release(worker)
                await worker.retired.wait()
            finally:
                self._live.pop(worker.pid, None)
                self._workers_changed()
                with trio.CancelScope(shield=True):
                    await worker.reap()
            if worker.surplus:
                return
            self.restarts += 1

    def _workers_changed(self) -> None:
        self._live_changed.set()
        self._live_changed = trio.Event()

    async def wait_for_workers(self, count: int) -> None:
        """Until exactly ``count`` workers are up: a reconfigured pool grows as new workers
        say they are ready and shrinks as idle ones retire and running ones finish."""
        while len(self._live) != count:
            await self._live_changed.wait()

    def _release(self, worker: _Worker) -> None:
        """Lend ``worker`` out again, or retire it if the pool is shrinking."""
        if self._surplus > 0:
            self._surplus -= 1
            worker.surplus = True
            worker.kill_and_retire()
        else:
            self._idle_send.send_nowait(worker)

    def reconfigure(self, prefs: VolunteerPrefs, max_memory_mb: int) -> None:
        """Apply the volunteer's new settings now (see the module docstring)."""
        old = self.config
        self.config = replace(old, prefs=prefs, max_memory_mb=max_memory_mb)
        size = self.config.worker_count()
        if size > self.size and self._nursery is not None:
            grow = size - self.size
            cancelled = min(grow, self._surplus)
            self._surplus -= cancelled
            for index in range(grow - cancelled):
                self._nursery.start_soon(self._slot, self.size + index)
        elif size < self.size:
            self._surplus += self.size - size
        self.size = size
        respawn = old.command() != self.config.command()
        keep = []
        while True:  # idle workers: retire the surplus, replace the rest if their flags changed
            try:
                worker = self._idle_recv.receive_nowait()
            except trio.WouldBlock:
                break
            if self._surplus > 0:
                self._surplus -= 1
                worker.surplus = True
                worker.kill_and_retire()
            elif respawn:
                worker.kill_and_retire()  # its slot spawns a fresh one with the new flags
            else:
                keep.append(worker)
        for worker in keep:
            self._idle_send.send_nowait(worker)
        self._update_gate(self._load)

    async def _spawn(self) -> _Worker:
        env = dict(os.environ)
        extra = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + extra if extra else "")
        process = await trio.lowlevel.open_process(
            self.config.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            **WORKER_POPEN)
        for observer in self.on_spawn:
            observer(process.pid)
        worker = _Worker(process)
        try:
            with trio.fail_after(self.config.spawn_timeout_s):
                hello = await worker.receive(limit=1024)
            if "ready" not in hello:
                raise wire.WireError(f"worker said {hello!r} instead of ready")
        except BaseException:
            with trio.CancelScope(shield=True):
                await worker.reap()
            raise
        return worker

    def _update_gate(self, load: float | None) -> None:
        self._load = load
        if self.suspended is not None:
            self.gate = (False, self.suspended)
        else:
            self.gate = may_run_now(self.config.prefs, datetime.now(), load)

    def suspend(self, reason: str | None) -> None:
        """Close the gate with ``reason`` (None: reopen it to the usual rules)."""
        self.suspended = reason
        self._update_gate(self._load)

    async def _gate_loop(self) -> None:
        before: CpuSample | None = None
        while True:
            try:
                sample = read_cpu_sample(list(self._live))
            except (OSError, ValueError):
                sample = None  # no /proc: idle-only volunteers then never run, and we say so
            load = load_between(before, sample) if before and sample else None
            before = sample
            self._update_gate(load)
            await trio.sleep(self.config.sample_interval_s)

    def load_permille(self) -> int:
        """Busy workers per thousand: the load our capability record advertises."""
        return self.running * 1000 // max(1, self.size)

    def worker_pids(self) -> dict[int, bool]:
        """pid -> busy, for every live worker (status pages and tests)."""
        return {pid: worker.busy for pid, worker in self._live.items()}

    def running_tasks(self) -> list[dict[str, Any]]:
        """The tasks running now, oldest first, each with its progress (see ``Running``)."""
        now = time.time()
        return [r.view(now) for r in sorted(self._running.values(), key=lambda r: r.started)]

    def status(self) -> dict[str, Any]:
        accepting, reason = self.gate
        busy = f"{self.running} of {self.size} worker(s) busy"
        summary = f"{busy}, {self.completed} task(s) done; " + (
            "taking tasks" if accepting else f"taking no tasks: {reason}")
        health = "ok"
        if self.faults_in_a_row >= FAULTS_DEGRADED:
            health = (f"degraded: the last {self.faults_in_a_row} tasks' workers died or did not"
                      f" answer (last: {self.last_fault})")
        return {"health": health, "summary": summary, "runtime_id": runtime_id(),
                "workers": self.size, "running": self.running,
                "accepting": accepting, "reason": reason, "tasks_started": self.started,
                "tasks_completed": self.completed, "workers_crashed": self.crashed,
                "workers_killed": self.killed, "worker_restarts": self.restarts,
                "worker_faults_in_a_row": self.faults_in_a_row}

    def register_rpc(self, server: Any) -> None:
        """The runtime adds no control methods; ``status`` reports it."""

    # -- tasks -----------------------------------------------------------------------------------

    async def run_task(self, module_hash: bytes, module: bytes | None, stdin: bytes,
                       limits: Limits, *, seed: bytes = b"", argv: tuple[bytes, ...] = (b"task",),
                       logical_time_ns: int = 0,
                       origin: tuple[bytes, int, int] | None = None,
                       checkpoint_fuel: int = 0, resume: tuple[bytes, ...] = (),
                       resume_digest: bytes = b"",
                       on_checkpoint: Callable[[Checkpoint], Awaitable[None]] | None = None,
                       files: tuple[tuple[str, bytes], ...] = (),
                       ) -> TaskOutcome:
        """Run one task on some worker. Raises PoolPaused (not now) or ModuleUnavailable (no
        worker has the module cached and ``module`` is None: fetch the blob and call again).

        A resumable module checkpoints every ``checkpoint_fuel`` (if not 0), each checkpoint
        handed to ``on_checkpoint`` as it arrives, and continues from ``resume`` if given.
        ``files``: extra read-only files a Python task sees beside its bundle's."""
        accepting, reason = self.gate
        if not accepting:
            raise PoolPaused(reason)
        if limits.memory_pages * PAGE > self.config.max_memory_mb << 20:
            return TaskOutcome(TaskStatus.REFUSED,
                               f"task asks for {limits.memory_pages * PAGE >> 20} MiB of memory; "
                               f"this volunteer allows {self.config.max_memory_mb} MiB")
        if self.slowdown > 1:  # the throttle pauses workers: the same work takes longer
            limits = replace(limits, wall_s=min(86400.0, limits.wall_s * self.slowdown))
        request = wire.RunRequest(module_hash, module, stdin, limits, seed, argv, logical_time_ns,
                                  checkpoint_fuel, resume, resume_digest, files)
        # a checkpoint frame holds up to the whole memory, its output so far and some slack
        frame_limit = limits.max_output + (1 << 20) + (
            limits.memory_pages * PAGE + limits.max_output + (2 << 20) if checkpoint_fuel else 0)
        worker = await self._borrow()
        allowance = (self.config.compile_allowance_s if module is not None
                     else self.config.load_allowance_s)
        deadline = limits.wall_s + self.config.margin_s + allowance
        began, cpu0 = time.time(), process_cpu_s(worker.pid)
        self.started += 1
        self.running += 1
        worker.busy = True
        self._running[worker.pid] = Running(origin, worker.pid, began, cpu0, limits.wall_s)
        for observer in self.on_start:
            observer(worker.pid)
        try:
            with trio.move_on_after(deadline) as scope:
                await worker.send(request.to_wire())
                reply = await worker.receive(limit=frame_limit)
                while "checkpoint" in reply:
                    if on_checkpoint is not None:
                        await on_checkpoint(wire.checkpoint_from_wire(reply["checkpoint"]))
                    reply = await worker.receive(limit=frame_limit)
        except (WorkerGone, wire.WireError):
            return await self._crashed(worker, origin, began)
        except BaseException:
            worker.kill_and_retire()  # cancelled mid-task: its answer would desync the pipe
            raise
        finally:
            self.running -= 1
            worker.busy = False
            self._running.pop(worker.pid, None)
        cpu_s = max(0.0, process_cpu_s(worker.pid) - cpu0)
        if scope.cancelled_caught:
            worker.kill_and_retire()
            self.killed += 1
            return self._ran(origin, began, cpu_s, self._fault(TaskOutcome(
                TaskStatus.TIMED_OUT, f"worker killed: no answer within {deadline:g} s "
                f"(wall-clock limit {limits.wall_s:g} s plus margin)", wall_s=deadline)))
        self._release(worker)
        if reply.get("missing"):
            raise ModuleUnavailable(module_hash.hex())
        self.completed += 1
        self.faults_in_a_row = 0
        return self._ran(origin, began, cpu_s, TaskOutcome.from_wire(reply["outcome"]))

    def _ran(self, origin: tuple[bytes, int, int] | None, began: float, cpu_s: float,
             outcome: TaskOutcome) -> TaskOutcome:
        record = RunRecord(origin, outcome, began, cpu_s)
        for observer in self.on_run:
            try:
                observer(record)
            except Exception:  # noqa: BLE001 - a log or metric must never lose a result
                log.exception("task-run observer failed")
        return outcome

    async def _borrow(self) -> _Worker:
        while True:
            worker = await self._idle_recv.receive()
            if worker.process.returncode is None:
                return worker
            worker.kill_and_retire()  # died while idle (e.g. killed by the OOM killer)

    async def _crashed(self, worker: _Worker, origin: tuple[bytes, int, int] | None = None,
                       began: float = 0.0) -> TaskOutcome:
        worker.kill_and_retire()
        self.crashed += 1
        with trio.move_on_after(5):
            await worker.process.wait()
        code = worker.process.returncode
        if code is not None and code < 0:
            how = f"killed by signal {-code} ({signal.Signals(-code).name})"
        else:
            how = f"exited with code {code}"
        return self._ran(origin, began, 0.0, self._fault(TaskOutcome(
            TaskStatus.CRASHED, f"worker process died ({how}); this is a fault of the node, "
            "not of the module: run the task again elsewhere")))

    def _fault(self, outcome: TaskOutcome) -> TaskOutcome:
        """Count a task lost to its worker (``FAULTS_DEGRADED``)."""
        self.faults_in_a_row += 1
        self.last_fault = outcome.detail
        return outcome


def runtime_id() -> str:
    """What a worker's ``Sandbox.runtime_id`` will be: the wasmtime release and engine settings.
    Replicas of a task agree on fuel and statuses only on the same runtime_id."""
    from daemon.runtime.sandbox import engine_config

    return engine_config()[1][:8].hex()


def default_pool_config(cpu_share: float, max_memory_mb: int, idle_only: bool, hours: str,
                        data_dir: Path) -> PoolConfig:
    """The pool for a node's ``[volunteer]`` settings, caching compiled modules in its data dir."""
    from daemon.runtime.volunteer import parse_hours

    prefs = VolunteerPrefs(cpu_share=cpu_share, hours=parse_hours(hours), idle_only=idle_only)
    return PoolConfig(prefs=prefs, max_memory_mb=max_memory_mb,
                      cache_dir=data_dir / "modules", workers=None)

