"""The sandbox runtime: WebAssembly tasks in wasmtime, deterministic, limited, isolated.

Modules:

- ``abi``       -- the WASI preview1 function table, errno values, and the import check that
                   refuses a module importing anything else.
- ``wasi``      -- the deterministic WASI subset (stdin/stdout, argv, logical clock, seeded
                   randomness; no files, network, environment or real time), fuel-metered.
- ``outcome``   -- ``Limits``, ``TaskOutcome`` and the pure rules from "how the run stopped" to
                   a ``TaskStatus`` and a one-line detail.
- ``cache``     -- compiled and linked modules by SHA-256, in an LRU and on disk.
- ``sandbox``   -- ``Sandbox.run``: one task in a fresh Store with fuel, memory and wall limits.
- ``resumable`` -- the step ABI (``novacron_step``), deterministic checkpoints, restore elsewhere.
- ``checkpoint`` -- the checkpoint format: page deltas + globals + WASI state, zstd, digests.
- ``wasmglobals`` -- reads which mutable globals a module hides (a resumable one must not).
- ``wire``      -- the msgpack-over-pipe protocol between the pool and its workers.
- ``worker``    -- the worker process (lower priority, rlimits, dies with its parent).
- ``pool``      -- ``WorkerPool``: the trio service that runs tasks in worker processes.
- ``interpreter`` -- the pinned CPython-for-WASI build: fetch, verify, compile once per machine.
- ``bundle``    -- a Python job's script, modules and data files as one content-addressed blob.
- ``pyfs``      -- the read-only file tree a Python task sees (stdlib zip, ``/job``), pure.
- ``pywasi``    -- the WASI subset plus that tree, for the interpreter.
- ``pysandbox`` -- ``PythonSandbox.run``: one Python task, same limits and determinism as wasm.
- ``python_tasks`` -- a worker's Python side: bundles by hash, the sandbox made on first use.
- ``volunteer`` -- the volunteer's preferences (cores, hours, idle-only) and ``may_run_now``.
- ``__main__``  -- ``python -m daemon.runtime MODULE --input ...``: run one task locally.
"""

from daemon.runtime.cache import ModuleCache, ModuleRefused, ModuleUnavailable, module_hash
from daemon.runtime.outcome import Limits, LimitsError, TaskOutcome
from daemon.runtime.pool import PoolConfig, PoolPaused, WorkerPool, default_pool_config
from daemon.runtime.sandbox import Sandbox
from daemon.runtime.volunteer import (HoursWindow, PrefsError, VolunteerPrefs, may_run_now,
                                      parse_hours)

__all__ = [
    "HoursWindow", "Limits", "LimitsError", "ModuleCache", "ModuleRefused", "ModuleUnavailable",
    "PoolConfig", "PoolPaused", "PrefsError", "Sandbox", "TaskOutcome", "VolunteerPrefs",
    "WorkerPool", "default_pool_config", "may_run_now", "module_hash", "parse_hours",
]
