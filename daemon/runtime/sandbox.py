"""Run one task in wasmtime: a fresh Store per task, with fuel, memory and wall-clock limits.

One ``Sandbox`` per worker process: it owns the Engine (configured for determinism), the Linker
with the WASI subset (defined once, shared by every Store), the module cache and the wall-clock
watchdog. ``run`` is synchronous and runs one task at a time; the process pool in ``pool`` gives
parallelism and a second line of defence.

Start-up path of a cached task (what ``scripts/bench_sandbox.py`` measures): LRU lookup, new
Store, set fuel/limits/epoch deadline, arm the watchdog, ``InstancePre.instantiate``, look up
``_start``, call it, classify.

Determinism settings: NaN canonicalisation on, relaxed SIMD deterministic, no threads, no
multi-memory or memory64, single-threaded compilation (which also keeps compilation inside the
volunteer's CPU share). Fuel counts are the same on every machine with the same wasmtime.
The wasm stack limit is not fully portable: how deep a recursion fits depends on the native
frame sizes of the CPU architecture, so a task near the limit may overflow on one architecture
and not on another. The ledger should compare replicas on one architecture, or treat a
STACK_OVERFLOW disagreement as a reason to re-run, not as fraud.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import wasmtime

from daemon.runtime.cache import ModuleCache, ModuleRefused
from daemon.runtime.checkpoint import CheckpointError
from daemon.runtime.resumable import (CheckpointPolicy, OnCheckpoint, ResumableResult,
                                       is_resumable, run_resumable)
from daemon.runtime.outcome import EndKind, Ending, Limits, TaskOutcome
from daemon.runtime.store import ending_of, memory_export, new_store, outcome_of
from daemon.runtime.wasi import TaskIO, WasiSubset
from protocol.messages.tasks import TaskStatus

DEFAULT_STACK = 512 * 1024


class Watchdog:
    """Ends the running task at its wall-clock deadline by bumping the engine's epoch.

    One thread per engine, asleep unless a task is armed. A Store is created with an epoch
    deadline of one tick; ``arm`` is called after that, so the one increment for a generation can
    only interrupt that generation's Store. ``disarm`` says whether the deadline fired.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._generation = 0
        self._fired = -1
        self._thread = threading.Thread(target=self._loop, name="epoch-watchdog", daemon=True)
        self._thread.start()

    def arm(self, wall_s: float) -> None:
        with self._cond:
            self._generation += 1
            self._deadline = time.monotonic() + wall_s
            self._cond.notify()

    def disarm(self) -> bool:
        with self._cond:
            self._deadline = None
            self._cond.notify()  # back to the untimed wait, not a timed one until the old deadline
            return self._fired == self._generation

    def _loop(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._engine.increment_epoch()
                self._fired = self._generation
                self._deadline = None


def engine_config(max_wasm_stack: int = DEFAULT_STACK) -> tuple[wasmtime.Config, bytes]:
    """The engine configuration and a fingerprint of everything that shapes compiled code."""
    cfg = wasmtime.Config()
    settings = {
        "consume_fuel": True, "epoch_interruption": True, "max_wasm_stack": max_wasm_stack,
        "wasm_threads": False, "wasm_relaxed_simd_deterministic": True,
        "cranelift_nan_canonicalization": True, "wasm_multi_memory": False,
        "wasm_memory64": False, "parallel_compilation": False,
    }
    for name, value in settings.items():
        setattr(cfg, name, value)
    text = f"wasmtime {metadata.version('wasmtime')} " + repr(sorted(settings.items()))
    return cfg, hashlib.sha256(text.encode()).digest()


class Sandbox:
    """Runs tasks, one at a time, each in a fresh Store. Not thread-safe by design."""

    def __init__(self, cache_dir: Path | None = None, *, cache_capacity: int = 32,
                 max_wasm_stack: int = DEFAULT_STACK) -> None:
        cfg, fingerprint = engine_config(max_wasm_stack)
        # Replicas agree on fuel and on every status only if they run the same runtime: the
        # scheduler should place a task's replicas on nodes with the same runtime_id.
        self.runtime_id = fingerprint[:8].hex()
        self.engine = wasmtime.Engine(cfg)
        self.wasi = WasiSubset()
        self.linker = wasmtime.Linker(self.engine)
        self.wasi.define(self.linker)
        self.cache = ModuleCache(self.engine, self.linker, fingerprint, cache_dir, cache_capacity)
        self.watchdog = Watchdog(self.engine)

    def run(self, module_hash: bytes, module_bytes: bytes | None, stdin: bytes, limits: Limits,
            *, seed: bytes = b"", argv: tuple[bytes, ...] = (b"task",),
            logical_time_ns: int = 0, checkpoints: CheckpointPolicy | None = None,
            on_checkpoint: OnCheckpoint | None = None, resume: Sequence[bytes] = (),
            resume_digest: bytes | None = None) -> TaskOutcome:
        """Run the module's ``_start`` on ``stdin``. Raises ModuleUnavailable only; every other
        way a task can end is a TaskOutcome.

        A resumable module (``resumable``) runs step by step instead, checkpointing by
        ``checkpoints`` (if given) and continuing from ``resume`` (a chain ending at
        ``resume_digest``) if given. Stopped by ``on_checkpoint`` (the volunteer hands the task
        over), or given a chain that does not verify, it ends as CRASHED: a fault of this node
        or of whoever sent the chain, never a result.
        For a command module these are ignored: it cannot checkpoint."""
        began = time.perf_counter()
        if len(stdin) > limits.max_input:
            return TaskOutcome(TaskStatus.REFUSED, f"input is {len(stdin):,} bytes, "
                               f"limit {limits.max_input:,}")
        try:
            entry = self.cache.get(module_hash, module_bytes)
        except ModuleRefused as err:
            return TaskOutcome(TaskStatus.REFUSED, str(err), wall_s=time.perf_counter() - began)
        began = time.perf_counter()  # wall_s is the task's own time, not a first compile's
        if is_resumable(entry.module):
            try:
                done = run_resumable(self, entry.pre, stdin, limits, seed=seed, argv=argv,
                                     logical_time_ns=logical_time_ns, policy=checkpoints,
                                     resume=resume, resume_digest=resume_digest,
                                     on_checkpoint=on_checkpoint)
                return done.outcome or TaskOutcome(
                    TaskStatus.CRASHED, f"stopped at checkpoint {done.stopped_at} to hand over")
            except CheckpointError as err:
                return TaskOutcome(TaskStatus.CRASHED, f"cannot resume from its checkpoint: {err}")

        store = new_store(self.engine, limits, fuel=True)
        io = TaskIO(stdin, argv, seed, logical_time_ns, limits.max_output)
        self.wasi.io = io
        self.watchdog.arm(limits.wall_s)
        memory: wasmtime.Memory | None = None
        try:
            instance = entry.pre.instantiate(store)
            memory = memory_export(instance, store)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
            end = Ending(EndKind.RETURNED)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            end = ending_of(err, io)
        finally:
            self.watchdog.disarm()
            self.wasi.io = None
        return outcome_of(end, store, memory, io, limits, began, fuel=True)

    def run_resumable(self, module_hash: bytes, module_bytes: bytes | None, stdin: bytes,
                      limits: Limits, *, policy: CheckpointPolicy, resume: Sequence[bytes] = (),
                      resume_digest: bytes | None = None,
                      on_checkpoint: OnCheckpoint | None = None, seed: bytes = b"",
                      argv: tuple[bytes, ...] = (b"task",),
                      logical_time_ns: int = 0) -> ResumableResult:
        """Run a resumable module with checkpoints by ``policy``, from the start or from the
        checkpoint chain ``resume`` (see ``resumable``). Raises ModuleUnavailable, and
        CheckpointError for a chain that does not verify."""
        if len(stdin) > limits.max_input:
            return ResumableResult(TaskOutcome(TaskStatus.REFUSED, f"input is {len(stdin):,} "
                                               f"bytes, limit {limits.max_input:,}"), 0)
        try:
            entry = self.cache.get(module_hash, module_bytes)
        except ModuleRefused as err:
            return ResumableResult(TaskOutcome(TaskStatus.REFUSED, str(err)), 0)
        if not is_resumable(entry.module):
            return ResumableResult(TaskOutcome(
                TaskStatus.REFUSED, "module does not export `novacron_step`, so it cannot "
                "checkpoint: see docs/jobs.md, \"Long tasks\""), 0)
        return run_resumable(self, entry.pre, stdin, limits, seed=seed, argv=argv,
                             logical_time_ns=logical_time_ns, policy=policy, resume=resume,
                             resume_digest=resume_digest, on_checkpoint=on_checkpoint)
