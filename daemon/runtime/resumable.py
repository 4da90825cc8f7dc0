"""Resumable tasks: the step ABI, deterministic checkpoints, and restore into a fresh instance.

The ABI (a module opts in by exporting ``novacron_step`` instead of ``_start``):

- the module is a WASI *reactor*: it exports ``memory``, ``novacron_step: () -> i32`` and,
  optionally, ``_initialize`` (wasi-libc's constructors), called once on a fresh start, never
  after a restore;
- ``novacron_step`` does a bounded slice of the work, keeping all state in linear memory or in
  exported globals, and returns 1 (``MORE``) to be called again or 0 (``DONE``) when the output
  is complete; ``exit(n)`` ends the task with code n as for a command; any other return value
  is an error (exit code = the value);
- every mutable global the module defines is exported (C: build with ``-mexec-model=reactor
  -mmutable-globals -Wl,--export=__stack_pointer``; ``wasmglobals`` checks it);
- tables are not saved: a resumable module must not change its table at run time (C never
  does).

Deterministic checkpoint points: after a step, if the fuel used since the last checkpoint has
reached ``every_fuel``. Fuel is the same on every replica, so every honest replica checkpoints
after the same step with byte-identical state, and the digests match (``checkpoint``). Between
steps no wasm frame is on the stack, so memory, exported globals and the WASI host state are
the whole state.

A restored run continues with the fuel the task had left, the same output so far, the same
logical clock and random stream position, so its final ``TaskOutcome`` equals that of an
uninterrupted run (``wall_s`` aside).

Python tasks: the pinned CPython-for-WASI build is a command module whose ``_start`` runs the
script in one call; there is no step boundary with an empty wasm stack, so Python tasks do not
checkpoint in this version. (Snapshots of that module's memory and globals would work; what it
lacks is a point between steps: a reactor build of the interpreter exporting a step entry that
calls the script's ``step()`` would give it one.)
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import wasmtime

from daemon.errors import DaemonError
from daemon.runtime import checkpoint as ck
from daemon.runtime.outcome import PAGE, EndKind, Ending, Limits, TaskOutcome
from daemon.runtime.store import ending_of, new_store, outcome_of
from daemon.runtime.wasi import TaskIO

STEP_EXPORT = "novacron_step"
MORE, DONE = 1, 0
KEYFRAME_EVERY = 16


def is_resumable(module: wasmtime.Module) -> bool:
    """Does the module opt in to the step ABI (export ``novacron_step: () -> i32``)?"""
    for exp in module.exports:
        if exp.name == STEP_EXPORT:
            ty = exp.type
            return (isinstance(ty, wasmtime.FuncType) and not ty.params
                    and [str(r) for r in ty.results] == ["i32"])
    return False


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When to checkpoint: ``every_fuel`` units of fuel (rounded up to the next step end);
    a key frame (whole state) every ``keyframe_every`` checkpoints, else a delta."""

    every_fuel: int
    keyframe_every: int = KEYFRAME_EVERY

    def __post_init__(self) -> None:
        if self.every_fuel < 1 or self.keyframe_every < 1:
            raise ValueError("checkpoint interval and key-frame spacing must be positive")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint as the runner hands it out: where, its digest and its blob."""

    seq: int
    steps: int
    fuel_used: int
    digest: bytes
    blob: bytes
    keyframe: bool
    memory_bytes: int
    chunks: int  # memory chunks carried (changed, or non-zero for a key frame)


OnCheckpoint = Callable[[Checkpoint], bool]
"""Called with each checkpoint; returns False to stop the run there (hand the task off)."""


@dataclass(frozen=True, slots=True)
class ResumableResult:
    """``outcome`` is None when ``on_checkpoint`` stopped the run at checkpoint ``stopped_at``."""

    outcome: TaskOutcome | None
    checkpoints: int
    stopped_at: int | None = None


def memory_array(memory: wasmtime.Memory, store: wasmtime.Store) -> np.ndarray:
    """The live linear memory as a uint8 array (no copy; valid until the memory grows)."""
    size = memory.data_len(store)
    if size == 0:
        return np.zeros(0, np.uint8)
    ptr = ctypes.cast(memory.data_ptr(store), ctypes.POINTER(ctypes.c_uint8))
    return np.ctypeslib.as_array(ptr, shape=(size,))


def _read_globals(instance: wasmtime.Instance, store: wasmtime.Store) -> list[ck.Global]:
    out: list[ck.Global] = []
    for name, item in sorted(instance.exports(store).items()):
        if not isinstance(item, wasmtime.Global) or not item.type(store).mutable:
            continue
        kind = str(item.type(store).content)
        value = item.value(store)
        if kind == "f32":
            bits = struct.unpack("<I", struct.pack("<f", value))[0]
        elif kind == "f64":
            bits = struct.unpack("<Q", struct.pack("<d", value))[0]
        elif kind in ("i32", "i64"):
            bits = int(value)
        else:
            raise ck.CheckpointError(f"global {name} of type {kind} cannot be checkpointed")
        out.append((name, kind, bits))
    return out


def _write_globals(instance: wasmtime.Instance, store: wasmtime.Store,
                   values: Sequence[ck.Global]) -> None:
    exports = instance.exports(store)
    for name, kind, bits in values:
        item = exports.get(name)
        if not isinstance(item, wasmtime.Global) or str(item.type(store).content) != kind:
            raise ck.CheckpointError(f"checkpoint names global {name} the module does not have")
        if kind == "f32":
            item.set_value(store, wasmtime.Val.f32(struct.unpack("<f", struct.pack("<I", bits))[0]))
        elif kind == "f64":
            item.set_value(store, wasmtime.Val.f64(struct.unpack("<d", struct.pack("<Q", bits))[0]))
        elif kind == "i32":
            item.set_value(store, wasmtime.Val.i32(bits))
        else:
            item.set_value(store, wasmtime.Val.i64(bits))


class _Checkpointer:
    """Takes the checkpoints of one run and keeps what the next delta needs."""

    def __init__(self, policy: CheckpointPolicy, restored: ck.Restored | None) -> None:
        self.policy = policy
        if restored is None:
            self.seq, self.base, self.fuel_at, self.stdout_at = 0, b"", 0, 0
            self.tracker = ck.DeltaTracker()
        else:
            last = restored.last
            self.seq, self.base = last.seq + 1, last.digest
            self.fuel_at, self.stdout_at = last.fuel_used, last.host.stdout_len
            self.tracker = ck.DeltaTracker(restored.memory)

    def due(self, fuel_used: int) -> bool:
        return fuel_used - self.fuel_at >= self.policy.every_fuel

    def take(self, instance: wasmtime.Instance, store: wasmtime.Store, memory: wasmtime.Memory,
             io: TaskIO, steps: int, fuel_used: int) -> Checkpoint:
        keyframe = self.seq % self.policy.keyframe_every == 0
        current = memory_array(memory, store)
        indices, data = self.tracker.delta(current, keyframe)
        host = ck.HostState(
            len(io.stdout), bytes(io.stdout[0 if keyframe else self.stdout_at:]),
            bytes(io.stderr), io.stdin_pos, io.clock_ticks, io.extra_ns, io.random_counter,
            io.random_spare)
        blob, digest = ck.encode(b"" if keyframe else self.base, self.seq, steps, fuel_used,
                                 len(current), _read_globals(instance, store), host, indices, data)
        made = Checkpoint(self.seq, steps, fuel_used, digest, blob, keyframe, len(current),
                          len(indices))
        self.seq, self.base, self.fuel_at, self.stdout_at = (
            self.seq + 1, digest, fuel_used, len(io.stdout))
        return made


class TaskHost(Protocol):
    """What a resumable run needs of the sandbox running it (``sandbox.Sandbox``)."""

    engine: wasmtime.Engine
    wasi: Any
    watchdog: Any


def run_resumable(sandbox: TaskHost, entry_pre: wasmtime.InstancePre, stdin: bytes,
                  limits: Limits, *, seed: bytes, argv: tuple[bytes, ...], logical_time_ns: int,
                  policy: CheckpointPolicy | None = None, resume: Sequence[bytes] = (),
                  resume_digest: bytes | None = None,
                  on_checkpoint: OnCheckpoint | None = None) -> ResumableResult:
    """Run (or continue, from the blob chain ``resume``) a resumable module in ``sandbox``.

    Raises ``checkpoint.CheckpointError`` if ``resume`` is not a valid chain ending at
    ``resume_digest``; every way the task itself can end is an outcome.
    """
    began = time.perf_counter()
    restored = None
    if resume:
        chain = [ck.decode(b, max_memory=limits.memory_pages * PAGE, max_output=limits.max_output)
                 for b in resume]
        restored = ck.replay(chain, resume_digest)
    store = new_store(sandbox.engine, limits, fuel=True)
    io = TaskIO(stdin, argv, seed, logical_time_ns, limits.max_output)
    steps = 0
    if restored is not None:
        h = restored.last.host
        io.stdout += restored.stdout
        io.stderr += h.stderr
        io.stdin_pos, io.clock_ticks, io.extra_ns = h.stdin_pos, h.clock_ticks, h.extra_ns
        io.random_counter, io.random_spare = h.random_counter, h.random_spare
        steps = restored.last.steps
    taker = _Checkpointer(policy, restored) if policy is not None else None
    taken = 0
    sandbox.wasi.io = io
    sandbox.watchdog.arm(limits.wall_s)
    memory: wasmtime.Memory | None = None
    stopped_at: int | None = None
    try:
        instance = entry_pre.instantiate(store)
        exports = instance.exports(store)
        found = exports.get("memory")
        memory = found if isinstance(found, wasmtime.Memory) else None
        step = exports[STEP_EXPORT]
        assert isinstance(step, wasmtime.Func)
        if memory is None:
            end = Ending(EndKind.INSTANTIATE_FAILED, message="a resumable module must export "
                         "its memory as `memory`")
            raise _Done(end)
        if restored is not None:
            _restore_into(store, memory, instance, restored)
            store.set_fuel(limits.fuel - restored.last.fuel_used)
        else:
            init = exports.get("_initialize")
            if isinstance(init, wasmtime.Func):
                init(store)
        while True:
            result = step(store)
            steps += 1
            if result == DONE:
                raise _Done(Ending(EndKind.RETURNED))
            if result != MORE:
                raise _Done(Ending(EndKind.EXITED, exit_code=int(result)))  # type: ignore[arg-type]
            if taker is not None and taker.due(limits.fuel - store.get_fuel()):
                made = taker.take(instance, store, memory, io, steps,
                                  limits.fuel - store.get_fuel())
                taken += 1
                if on_checkpoint is not None and not on_checkpoint(made):
                    stopped_at = made.seq
                    raise _Done(Ending(EndKind.RETURNED))
    except _Done as done:
        end = done.end
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        end = ending_of(err, io)
    finally:
        sandbox.watchdog.disarm()
        sandbox.wasi.io = None
    if stopped_at is not None:
        return ResumableResult(None, taken, stopped_at)
    return ResumableResult(outcome_of(end, store, memory, io, limits, began, fuel=True), taken)


class _Done(DaemonError):
    """Ends the step loop from inside a host call, carrying how the task ended."""

    def __init__(self, end: Ending) -> None:
        super().__init__(end.kind.value)
        self.end = end


def _restore_into(store: wasmtime.Store, memory: wasmtime.Memory, instance: wasmtime.Instance,
                  restored: ck.Restored) -> None:
    want = restored.last.memory_bytes
    have = memory.data_len(store)
    if want % PAGE or want < have:
        raise ck.CheckpointError(f"checkpoint memory of {want} bytes does not fit this module "
                                 f"({have} bytes at start)")
    if want > have:
        memory.grow(store, (want - have) // PAGE)
    memory_array(memory, store)[:] = restored.memory
    _write_globals(instance, store, restored.last.globals)
