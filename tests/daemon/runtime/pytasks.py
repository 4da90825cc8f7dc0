"""Helpers for Python-runtime tests: a bundle from source text, and a run in one call."""

from __future__ import annotations

from daemon.runtime.bundle import Bundle
from daemon.runtime.outcome import Limits, TaskOutcome
from daemon.runtime.pysandbox import PythonSandbox

LIMITS = Limits(fuel=20_000_000_000, memory_pages=4096, wall_s=120.0, max_output=1 << 16)


def bundle(source: str, files: dict[str, bytes] | None = None) -> bytes:
    return Bundle("task.py", {"task.py": source.encode(), **(files or {})}).encode()


def run(sandbox: PythonSandbox, source: str, stdin: bytes = b"", limits: Limits = LIMITS,
        seed: bytes = b"seed", argv: tuple[bytes, ...] = (b"task",),
        files: dict[str, bytes] | None = None) -> TaskOutcome:
    return sandbox.run(bundle(source, files), stdin, limits, seed=seed, argv=argv)
