"""A worker's Python side: which requests are Python tasks, and the sandbox that runs them.

A Python job's "module" is a bundle (``bundle``), moved and cached by hash like a wasm module.
The worker keeps the last ``capacity`` bundles it was sent, so a job's later tasks arrive with
the hash only, as wasm tasks do; an unknown hash without bytes is ``ModuleUnavailable`` and the
pool sends the bytes. The ``PythonSandbox`` (a 300 MB compiled interpreter) is created on the
first Python task, so a worker that never runs one never pays for it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.runtime.bundle import is_bundle
from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import TaskOutcome
from daemon.runtime.wire import RunRequest
from protocol.messages.tasks import TaskStatus

if TYPE_CHECKING:
    from daemon.runtime.pysandbox import PythonSandbox


class PythonTasks:
    def __init__(self, cache_dir: Path | None, capacity: int = 16) -> None:
        self.cache_dir = cache_dir
        self.capacity = capacity
        self._bundles: OrderedDict[bytes, bytes] = OrderedDict()
        self._sandbox: PythonSandbox | None = None
        self.unavailable: str | None = None

    def owns(self, digest: bytes, module: bytes | None) -> bool:
        """Whether this request is a Python task (bytes are a bundle, or the hash is a known one)."""
        if module is not None:
            return is_bundle(module)
        return digest in self._bundles

    def run(self, request: RunRequest) -> TaskOutcome:
        bundle = request.module
        if bundle is None:
            bundle = self._bundles[request.module_hash]
            self._bundles.move_to_end(request.module_hash)
        elif module_hash(bundle) != request.module_hash:
            return TaskOutcome(TaskStatus.REFUSED, "bundle bytes do not match their hash")
        else:
            self._bundles[request.module_hash] = bundle
            while len(self._bundles) > self.capacity:
                self._bundles.popitem(last=False)
        sandbox = self._get_sandbox()
        if sandbox is None:
            return TaskOutcome(TaskStatus.REFUSED, f"this node cannot run Python tasks now: "
                               f"{self.unavailable}")
        return sandbox.run(bundle, request.stdin, request.limits, seed=request.seed,
                           argv=request.argv, logical_time_ns=request.logical_time_ns,
                           files=request.files)

    def _get_sandbox(self) -> PythonSandbox | None:
        from daemon.runtime.pysandbox import PythonSandbox, PythonUnavailable

        if self._sandbox is None:
            try:
                self._sandbox = PythonSandbox(self.cache_dir)
            except PythonUnavailable as err:
                self.unavailable = str(err)
                return None
        return self._sandbox
