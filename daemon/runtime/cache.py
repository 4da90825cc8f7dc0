"""Compiled modules, cached by the SHA-256 of their bytes: in memory and on disk.

Why: compiling a module with Cranelift takes milliseconds to seconds; starting a task from an
already linked module (``InstancePre``) takes microseconds. Every worker process keeps an LRU of
linked modules; all workers of a node share a directory of serialized artifacts, so a module is
compiled once per node (and once more after a wasmtime upgrade), not once per task or worker.

Trust: ``Module.deserialize`` runs the artifact's native code unchecked, so an artifact must be
exactly what our own ``serialize`` wrote for this engine. Each file ends with a SHA-256 over
(artifact, module hash, engine fingerprint); a file that fails the check (truncated, written by
another wasmtime or config, tampered) is ignored and rebuilt from the module bytes. Files are
written to a temporary name and renamed, so a crash never leaves half a file under the real
name. The directory is private (0700).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from daemon.errors import DaemonError
from daemon.runtime.abi import check_imports
from daemon.runtime.resumable import is_resumable
from daemon.runtime.wasmglobals import WasmParseError, unexported_mutable_globals

DIGEST = 32


class ModuleRefused(DaemonError):
    """The module cannot run here; the message is the one-line reason shown to the submitter."""


class ModuleUnavailable(DaemonError):
    """Neither the caches nor the caller have the module's bytes: fetch them and ask again."""


@dataclass(frozen=True, slots=True)
class CachedModule:
    module_hash: bytes
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    source: str  # "memory", "disk" or "compiled": where this lookup found it


def module_hash(module_bytes: bytes) -> bytes:
    return hashlib.sha256(module_bytes).digest()


class ModuleCache:
    """hash -> linked module. ``get`` never compiles a module whose bytes do not match the hash."""

    def __init__(self, engine: wasmtime.Engine, linker: wasmtime.Linker, fingerprint: bytes,
                 directory: Path | None = None, capacity: int = 32) -> None:
        self.engine = engine
        self.linker = linker
        self.fingerprint = fingerprint
        self.directory = directory
        self.capacity = capacity
        self._lru: OrderedDict[bytes, CachedModule] = OrderedDict()
        self.compiled = 0  # counters for status and tests
        self.loaded = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def get(self, digest: bytes, module_bytes: bytes | None = None) -> CachedModule:
        """The linked module for ``digest``: from memory, else disk, else compiled from bytes.

        Raises ModuleRefused (bad bytes, hash mismatch, forbidden imports, not a command) or
        ModuleUnavailable (not cached here and no bytes given).
        """
        hit = self._lru.get(digest)
        if hit is not None:
            self._lru.move_to_end(digest)
            return hit
        module = self._load(digest)
        source = "disk"
        if module is None:
            if module_bytes is None:
                raise ModuleUnavailable(digest.hex())
            if module_hash(module_bytes) != digest:
                raise ModuleRefused(f"module bytes do not match hash {digest.hex()[:16]}...")
            module = self._compile(module_bytes)
            source = "compiled"
        pre = self._link(module)  # refused modules never reach the disk
        if source == "compiled":
            self._store(digest, module)
        self._lru[digest] = CachedModule(digest, module, pre, "memory")
        while len(self._lru) > self.capacity:
            self._lru.popitem(last=False)
        return CachedModule(digest, module, pre, source)

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._lru

    # -- compile, link ---------------------------------------------------------------------------

    def _compile(self, module_bytes: bytes) -> wasmtime.Module:
        try:
            module = wasmtime.Module(self.engine, module_bytes)
        except wasmtime.WasmtimeError as err:
            raise ModuleRefused(f"not a valid WebAssembly module: {_first_line(err)}") from None
        if is_resumable(module):
            try:
                hidden = unexported_mutable_globals(module_bytes)
            except WasmParseError as err:
                raise ModuleRefused(f"cannot read the module's globals: {err}") from None
            if hidden:
                raise ModuleRefused(
                    f"resumable module has {len(hidden)} mutable global(s) it does not export "
                    f"(index {hidden[0]}), so a checkpoint cannot save them: build with "
                    "-mmutable-globals -Wl,--export=__stack_pointer")
        self.compiled += 1
        return module

    def _link(self, module: wasmtime.Module) -> wasmtime.InstancePre:
        reason = check_imports(module)
        if reason is not None:
            raise ModuleRefused(reason)
        exports = {e.name: e.type for e in module.exports}
        start = exports.get("_start")
        if is_resumable(module):
            if start is not None:
                raise ModuleRefused("module exports both `_start` and `novacron_step`: a "
                                    "resumable task is a reactor (-mexec-model=reactor)")
            if not isinstance(exports.get("memory"), wasmtime.MemoryType):
                raise ModuleRefused("a resumable module must export its memory as `memory`")
        elif not isinstance(start, wasmtime.FuncType) or start.params or start.results:
            raise ModuleRefused("module has no `_start` function: build a WASI command "
                                "(clang --target=wasm32-wasi, with a main function), or a "
                                "resumable reactor exporting `novacron_step` (docs/jobs.md)")
        try:
            return self.linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as err:
            raise ModuleRefused(f"cannot link module: {_first_line(err)}") from None

    # -- disk ------------------------------------------------------------------------------------

    def _path(self, digest: bytes) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{digest.hex()}.cwasm"

    def _seal(self, digest: bytes, artifact: bytes) -> bytes:
        return hashlib.sha256(artifact + digest + self.fingerprint).digest()

    def _load(self, digest: bytes) -> wasmtime.Module | None:
        path = self._path(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        artifact, seal = data[:-DIGEST], data[-DIGEST:]
        if len(data) <= DIGEST or self._seal(digest, artifact) != seal:
            return None
        try:
            module = wasmtime.Module.deserialize(self.engine, artifact)
        except wasmtime.WasmtimeError:
            return None
        self.loaded += 1
        return module

    def _store(self, digest: bytes, module: wasmtime.Module) -> None:
        path = self._path(digest)
        if path is None:
            return
        artifact = bytes(module.serialize())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(artifact + self._seal(digest, artifact))
            os.replace(tmp, path)
        except OSError:
            # A full or read-only disk costs speed, not correctness: keep the module in memory.
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
