"""One task's Store and how its run ended: the pieces every runtime shares.

The C sandbox (``sandbox``), the Python one (``pysandbox``) and resumable tasks
(``resumable``) all give a task a fresh Store with the same fuel, memory and epoch limits, and
classify its ending the same way; this module is that one place (and keeps ``resumable`` from
importing the sandbox that imports it).
"""

from __future__ import annotations

import time

import wasmtime

from daemon.runtime.outcome import PAGE, EndKind, Ending, Limits, TaskOutcome, classify
from daemon.runtime.wasi import HostOutOfFuel, OutputTooLarge, ProcExit, TaskIO

MAX_TABLE_ELEMENTS = 1_000_000


def new_store(engine: wasmtime.Engine, limits: Limits, *, fuel: bool) -> wasmtime.Store:
    """A fresh Store with the task's fuel and memory limits and an epoch deadline of one tick
    (the watchdog's single increment ends it). Shared by the C and the Python runtime so both
    enforce the same limits the same way."""
    store = wasmtime.Store(engine)
    if fuel:
        store.set_fuel(limits.fuel)
    store.set_limits(memory_size=limits.memory_pages * PAGE,
                     table_elements=MAX_TABLE_ELEMENTS, instances=1, tables=4, memories=1)
    store.set_epoch_deadline(1)
    return store


def memory_export(instance: wasmtime.Instance, store: wasmtime.Store) -> wasmtime.Memory | None:
    """The module's exported linear memory, if any (for the pages-used figure)."""
    found = instance.exports(store).get("memory")
    return found if isinstance(found, wasmtime.Memory) else None


def ending_of(err: wasmtime.Trap | wasmtime.WasmtimeError, io: TaskIO) -> Ending:
    """How a task ended that raised out of wasm. A trap returned by a host function surfaces as
    either type; its reason is ``io.stop``."""
    if io.stop is not None:
        return _stopped(io.stop)
    if isinstance(err, wasmtime.Trap):
        return _trap_ending(err)
    return Ending(EndKind.INSTANTIATE_FAILED, message=_first_line(str(err)))


def outcome_of(end: Ending, store: wasmtime.Store, memory: wasmtime.Memory | None, io: TaskIO,
               limits: Limits, began: float, *, fuel: bool) -> TaskOutcome:
    """The task's outcome: its ending classified against its limits, with what it used."""
    fuel_used = limits.fuel - store.get_fuel() if fuel else 0
    pages = memory.size(store) if memory is not None else 0
    status, detail = classify(end, limits, memory_pages=pages, stderr=bytes(io.stderr))
    return TaskOutcome(status, detail, bytes(io.stdout), end.exit_code, fuel_used, pages,
                       time.perf_counter() - began, bytes(io.stderr))


def _stopped(stop: BaseException) -> Ending:
    """The ending a host function asked for; anything else it raised is our own bug."""
    if isinstance(stop, ProcExit):
        return Ending(EndKind.EXITED, exit_code=stop.code)
    if isinstance(stop, OutputTooLarge):
        return Ending(EndKind.OUTPUT_TOO_LARGE)
    if isinstance(stop, HostOutOfFuel):
        return Ending(EndKind.TRAPPED, trap_code="OUT_OF_FUEL")
    raise RuntimeError("a WASI host function failed") from stop


def _trap_ending(trap: wasmtime.Trap) -> Ending:
    code = trap.trap_code
    where = ""
    frames = trap.frames
    if frames:
        frame = frames[0]
        name = frame.func_name
        where = f"func {frame.func_index}" + (f" ({name})" if name else "")
    message = trap.message.strip().splitlines()
    words = message[-1].removeprefix("wasm trap: ") if message else ""
    return Ending(EndKind.TRAPPED, trap_code=code.name if code is not None else None,
                  message=words, where=where)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else "unknown error"
