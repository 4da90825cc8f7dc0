"""Run one Python task: the pinned interpreter, a fresh Store, the job's bundle as read-only files.

One ``PythonSandbox`` per worker process, created on its first Python task: it loads the
compiled interpreter from the machine's cache (never compiles: that is the daemon's background
job, see ``interpreter``), links it once (``InstancePre``) and maps the standard library zip
once; every task then gets a fresh Store, fresh linear memory and a fresh file table.

The interpreter (a WASI reactor: ``_initialize``, then ``run()`` as ``main``) runs as
``python -I -B -c BOOT SCRIPT ARGS...``: isolated mode (no environment,
no user site), no bytecode writing, and a five-line boot that makes ``/job`` the working
directory and the first import path, then runs the script as ``__main__`` with ``sys.argv ==
[SCRIPT, *ARGS]``. The task's input is on stdin; what it prints is its output.

Limits and determinism are the C runtime's (``sandbox``): fuel on (an endless loop ends as
OUT_OF_FUEL on every replica), memory cap (Python sees ``MemoryError``), wall-clock deadline,
output cap, the logical clock and virtual sleep, seeded randomness. CPython reads random bytes at
start-up (hash seed) and on ``import numpy``; those come from the task's seed too, so ``hash()``
of a string and dict order of a set of strings are the same on every replica.
"""

from __future__ import annotations

import mmap
import time
from pathlib import Path

import wasmtime

from daemon.errors import DaemonError
from daemon.runtime import interpreter
from daemon.runtime.bundle import JOB_DIR, BundleError, check_name, decode
from daemon.runtime.outcome import EndKind, Ending, Limits, TaskOutcome
from daemon.runtime.pyfs import Tree
from daemon.runtime.pywasi import PythonWasi
from daemon.runtime.sandbox import Watchdog
from daemon.runtime.store import ending_of, memory_export, new_store, outcome_of
from daemon.runtime.wasi import TaskIO
from protocol.messages.tasks import TaskStatus

BOOT = ("import os, sys, runpy\n"
        f"os.chdir({JOB_DIR!r}); sys.path.insert(0, {JOB_DIR!r}); sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")


ARGV0 = b"/usr/local/bin/python.wasm"  # the interpreter finds its prefix (/usr/local) from it


class PythonUnavailable(DaemonError):
    """The interpreter is not fetched or not compiled on this machine (one line: why)."""


class PythonSandbox:
    """Runs Python tasks one at a time, each in a fresh Store."""

    def __init__(self, cache_dir: Path | None = None,
                 build: interpreter.InterpreterBuild = interpreter.PINNED, *,
                 fuel: bool = True) -> None:
        """``fuel=False``: an engine without fuel metering, for benchmarks only (replicas could
        then disagree on how an endless loop ends)."""
        cache_dir = cache_dir or interpreter.default_cache_dir()
        try:
            files = interpreter.find_files(cache_dir, build)
        except interpreter.InterpreterMissing as err:
            raise PythonUnavailable(str(err)) from None
        settings = {**interpreter.engine_settings(), "consume_fuel": fuel}
        cfg, _ = interpreter.engine_config(settings)
        self.engine = wasmtime.Engine(cfg)
        module = interpreter.load(self.engine, cache_dir, build, settings)
        if module is None:
            raise PythonUnavailable("the Python interpreter is not compiled on this machine yet")
        self.build = build
        self.runtime = interpreter.runtime_name(build)
        self.wasi = PythonWasi()
        self.wasi.metered = self.fuel = fuel
        linker = wasmtime.Linker(self.engine)
        self.wasi.define(linker)
        self.pre = linker.instantiate_pre(module)
        with files.stdlib.open("rb") as f:
            self.stdlib = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.watchdog = Watchdog(self.engine)

    def run(self, bundle_bytes: bytes, stdin: bytes, limits: Limits, *, seed: bytes = b"",
            argv: tuple[bytes, ...] = (b"task",), logical_time_ns: int = 0,
            files: tuple[tuple[str, bytes], ...] = ()) -> TaskOutcome:
        """Run the bundle's script on ``stdin``; ``argv[1:]`` are the script's arguments;
        ``files`` are more read-only files under ``/job`` (sticky files: ``protocol.sticky``),
        which may not replace the bundle's."""
        began = time.perf_counter()
        if len(stdin) > limits.max_input:
            return TaskOutcome(TaskStatus.REFUSED, f"input is {len(stdin):,} bytes, "
                               f"limit {limits.max_input:,}")
        try:
            bundle = decode(bundle_bytes)
        except BundleError as err:
            return TaskOutcome(TaskStatus.REFUSED, str(err))
        tree: dict[str, object] = {f"{JOB_DIR}/{name}": data for name, data in bundle.files.items()}
        for name, data in files:
            try:
                check_name(name)
            except BundleError as err:
                return TaskOutcome(TaskStatus.REFUSED, f"extra file: {err}")
            path = "/".join((JOB_DIR, name))
            if path in tree or any(p.startswith(path + "/") or path.startswith(p + "/")
                                   for p in tree):
                return TaskOutcome(TaskStatus.REFUSED, f"extra file {name!r} would replace the"
                                   " bundle's own")
            tree[path] = data
        tree[self.build.stdlib_path] = self.stdlib
        self.wasi.reset_files(Tree.build(tree))
        args = (ARGV0, b"-I", b"-B", b"-c", BOOT.encode(), bundle.script.encode(), *argv[1:])

        store = new_store(self.engine, limits, fuel=self.fuel)
        io = TaskIO(stdin, args, seed, logical_time_ns, limits.max_output)
        self.wasi.io = io
        self.watchdog.arm(limits.wall_s)
        memory: wasmtime.Memory | None = None
        try:
            instance = self.pre.instantiate(store)
            memory = memory_export(instance, store)
            exports = instance.exports(store)
            init = exports.get("_initialize")
            if isinstance(init, wasmtime.Func):
                init(store)
            main = exports["run"]  # this build is a reactor: run() is main() and returns its code
            assert isinstance(main, wasmtime.Func)
            code = main(store)
            end = Ending(EndKind.EXITED, exit_code=code) if code else Ending(EndKind.RETURNED)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            end = ending_of(err, io)
        finally:
            self.watchdog.disarm()
            self.wasi.io = None
            self.wasi.reset_files(Tree.build({}))
        return outcome_of(end, store, memory, io, limits, began, fuel=self.fuel)
