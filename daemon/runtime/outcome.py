"""What a task may use (``Limits``) and how it ended (``TaskOutcome``), with the pure rules that
turn the way a run stopped into a status and a one-line detail a researcher can act on.

Theory of operation: the sandbox runs ``_start`` and records how it stopped as an ``Ending``
(returned, exited with a code, trapped with a trap code, produced too much output, or could not
even instantiate). ``classify`` maps that, plus the memory in use at the end, onto a
``TaskStatus``. Only one rule needs judgement: a module that hits the memory limit does not trap
(``memory.grow`` returns -1, so ``malloc`` returns NULL) and wasmtime-py does not say whether
its limiter refused a grow. So a run that trapped or exited non-zero while its memory was
within ``OOM_MARGIN_PAGES`` (or an eighth of the limit, if smaller) of the limit is reported as
OUT_OF_MEMORY, with what it did next in the detail ("then trapped: abort()"). That is what
``abort()`` or ``exit(1)`` after a NULL ``malloc`` looks like. Further from the limit (one huge
allocation that failed) the plain trap or exit is reported, with the memory in use in the
detail. A program that ignores a NULL ``malloc`` and loops on ends OUT_OF_FUEL or TIMED_OUT,
which is also true. ``fuel_used`` is exact for OK, EXITED and OUT_OF_FUEL; after a wall-clock
interrupt wasmtime may not have written back the fuel of the interrupted function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from daemon.errors import DaemonError
from protocol.messages.tasks import TaskStatus

PAGE = 65536
OOM_MARGIN_PAGES = 16  # 1 MiB: a typical malloc growth step plus allocator overhead


class LimitsError(DaemonError, ValueError):
    """A limit outside what the sandbox accepts (one line: which and why)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-task limits. Fuel is deterministic (the same on every volunteer); wall time is not,
    so it is a safety net set well above the expected run time, never a result."""

    fuel: int = 10_000_000_000
    memory_pages: int = 1024  # 64 MiB
    wall_s: float = 60.0
    max_output: int = 1 << 20
    max_input: int = 64 << 20

    def __post_init__(self) -> None:
        if not 0 < self.fuel < 2**63:
            raise LimitsError(f"fuel must be between 1 and 2**63-1, got {self.fuel}")
        if not 1 <= self.memory_pages <= 65536:
            raise LimitsError(f"memory_pages must be 1..65536 (64 KiB each), got {self.memory_pages}")
        if not 0 < self.wall_s <= 86400:
            raise LimitsError(f"wall_s must be in (0, 86400], got {self.wall_s}")
        if not 0 <= self.max_output <= 1 << 30:
            raise LimitsError(f"max_output must be 0..1 GiB, got {self.max_output}")

    def to_wire(self) -> list[int | float]:
        return [self.fuel, self.memory_pages, self.wall_s, self.max_output, self.max_input]

    @classmethod
    def from_wire(cls, wire: list[int | float]) -> Limits:
        fuel, pages, wall, out, inp = wire
        return cls(int(fuel), int(pages), float(wall), int(out), int(inp))


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How one run ended. ``status``, ``output``, ``exit_code``, ``fuel_used`` and ``stderr``
    (its last ``abi.STDERR_TAIL`` bytes) are deterministic: replicas agree on them. ``wall_s``
    is for people."""

    status: TaskStatus
    detail: str
    output: bytes = b""
    exit_code: int | None = None
    fuel_used: int = 0
    memory_pages: int = 0
    wall_s: float = 0.0
    stderr: bytes = b""

    def to_wire(self) -> dict[str, object]:
        return {"status": int(self.status), "detail": self.detail, "output": self.output,
                "exit_code": self.exit_code, "fuel_used": self.fuel_used,
                "memory_pages": self.memory_pages, "wall_s": self.wall_s, "stderr": self.stderr}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> TaskOutcome:
        code = wire["exit_code"]
        return cls(TaskStatus(int(wire["status"])), str(wire["detail"]), bytes(wire["output"]),
                   None if code is None else int(code), int(wire["fuel_used"]),
                   int(wire["memory_pages"]), float(wire["wall_s"]), bytes(wire["stderr"]))


class EndKind(Enum):
    RETURNED = "returned"
    EXITED = "exited"
    TRAPPED = "trapped"
    OUTPUT_TOO_LARGE = "output too large"
    INSTANTIATE_FAILED = "instantiate failed"


@dataclass(frozen=True, slots=True)
class Ending:
    """How ``_start`` stopped, as the sandbox saw it."""

    kind: EndKind
    exit_code: int | None = None
    trap_code: str | None = None  # wasmtime.TrapCode name, e.g. "UNREACHABLE", "OUT_OF_FUEL"
    message: str = ""  # the trap's own words, first line
    where: str = ""  # "func 3 (main)" for traps with a frame


_TRAP_WORDS = {
    "UNREACHABLE": "wasm `unreachable` instruction executed (abort() or a failed assert)",
    "INTEGER_DIVISION_BY_ZERO": "integer division by zero",
    "INTEGER_OVERFLOW": "integer overflow",
    "MEMORY_OUT_OF_BOUNDS": "out-of-bounds memory access",
    "STACK_OVERFLOW": "call stack exhausted (too deep recursion)",
    "INDIRECT_CALL_TO_NULL": "indirect call to a null table entry",
    "BAD_SIGNATURE": "indirect call signature mismatch",
    "BAD_CONVERSION_TO_INTEGER": "invalid float-to-integer conversion",
    "TABLE_OUT_OF_BOUNDS": "out-of-bounds table access",
}


def classify(end: Ending, limits: Limits, *, memory_pages: int, stderr: bytes) -> tuple[TaskStatus, str]:
    """The status and one-line detail for a run that ended as ``end``."""
    margin = max(1, min(OOM_MARGIN_PAGES, limits.memory_pages // 8))
    near_limit = memory_pages + margin > limits.memory_pages
    mem = f"{memory_pages} of {limits.memory_pages} pages in use"
    oom = (f"memory limit {limits.memory_pages} pages ({_mib(limits.memory_pages)}) reached")
    if end.kind is EndKind.RETURNED or (end.kind is EndKind.EXITED and end.exit_code == 0):
        return TaskStatus.OK, "ok"
    if end.kind is EndKind.OUTPUT_TOO_LARGE:
        return TaskStatus.OUTPUT_TOO_LARGE, f"output passed the limit of {limits.max_output:,} bytes"
    if end.kind is EndKind.INSTANTIATE_FAILED:
        if "memory" in end.message and ("limit" in end.message or "minimum" in end.message):
            return (TaskStatus.OUT_OF_MEMORY,
                    f"module's initial memory does not fit the limit of {limits.memory_pages} "
                    f"pages ({_mib(limits.memory_pages)}): {end.message}")
        return TaskStatus.TRAPPED, f"could not instantiate: {end.message}"
    if end.kind is EndKind.EXITED:
        last = _last_line(stderr)
        said = f"; stderr: {last}" if last else ""
        if near_limit:
            return TaskStatus.OUT_OF_MEMORY, f"{oom}; then exited with code {end.exit_code}{said}"
        return TaskStatus.EXITED, f"exited with code {end.exit_code}{said}"
    # trapped
    code = end.trap_code or ""
    if code == "OUT_OF_FUEL":
        return TaskStatus.OUT_OF_FUEL, f"out of fuel after {limits.fuel:,} units"
    if code == "INTERRUPT":
        return TaskStatus.TIMED_OUT, f"wall-clock limit {limits.wall_s:g} s exceeded"
    words = _TRAP_WORDS.get(code, end.message or "trap")
    where = f" in {end.where}" if end.where else ""
    if near_limit:
        return TaskStatus.OUT_OF_MEMORY, f"{oom}; then trapped: {words}{where}"
    return TaskStatus.TRAPPED, f"trap: {words}{where} ({mem})"


def _mib(pages: int) -> str:
    size = pages * PAGE
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size // 1024} KiB"


def _last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else ""
