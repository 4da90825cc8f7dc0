"""Job specs: the TOML a researcher writes, checked field by field with one-line errors.

See ``examples/pi/job.toml`` for every field explained. ``load_spec(path)`` reads the file, the
module and any input file (that is its only I/O) and returns a ``JobSpec`` holding everything
the network needs: the module bytes, the task inputs, limits, replication and schedule.
``check_spec(path)`` does the same checks and returns every problem (``novacron check``).

Every mistake is a ``SpecError`` whose message names the file, the field and the fix, e.g.
``job.toml: [limits] fuel must be a positive integer (e.g. fuel = 1_000_000_000), got -5``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from typing import Any

from daemon.storage.userfile import UserFileError, read_capped, read_capped_text
from daemon.errors import DaemonError
from daemon.jobs.split import MAX_PARTS
from protocol.attestation import AttestationLevel

MAX_SPEC_BYTES = 16 << 20
MAX_MODULE_BYTES = 16 << 20
MAX_TASKS = 100_000
MAX_INPUT_BYTES = 1 << 20
MAX_TOTAL_INPUT_BYTES = 64 << 20
MAX_ARGV = 64
MAX_REPLICAS = 16
MAX_FUEL = 10**13
MAX_MEMORY_MB = 4096
MAX_WALL_S = 24 * 3600
MAX_OUTPUT = 1 << 20
WASM_MAGIC = b"\x00asm\x01\x00\x00\x00"
PYTHON_FUEL = 50_000_000_000
"""Default fuel of a Python task: starting the interpreter costs ~0.35e9, ``import numpy`` ~1e9."""

LEVELS = {
    "none": AttestationLevel.NONE,
    "tpm-unendorsed": AttestationLevel.TPM_UNENDORSED,
    "tpm": AttestationLevel.TPM,
    "tee": AttestationLevel.TEE,
}
COMBINE = ("concat", "files")

_KNOWN: dict[str, tuple[str, ...]] = {
    "job": ("name", "module", "script", "files", "argv"),
    "inputs": ("list", "lines", "range", "template"),
    "limits": ("fuel", "memory_mb", "wall_s", "max_output_bytes"),
    "replication": ("replicas", "quorum", "max_replicas", "min_attestation", "adaptive"),
    "schedule": ("deadline",),
    "sandbox": ("clock",),
    "result": ("combine",),
    "checkpoint": ("every_fuel",),
    "placement": ("shards",),
}


class SpecError(DaemonError):
    """One line: the file, the field, what is wrong and how to fix it."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    module: bytes
    argv: tuple[str, ...]
    inputs: tuple[bytes, ...]
    fuel: int = 1_000_000_000
    memory_pages: int = 256
    wall_s: float = 60.0
    max_output: int = 64 * 1024
    replicas: int = 2
    quorum: int = 2
    max_replicas: int = 6
    min_attestation: AttestationLevel = AttestationLevel.NONE
    adaptive: bool = False
    """Adaptive replication (BOINC's): a task may run on one volunteer with a long record of
    agreeing results, accepted on its word alone. Off unless the job file asks for it."""
    deadline_s: int = 24 * 3600
    clock_ns: int | None = None
    combine: str = "concat"
    source: str = field(default="", compare=False)
    runtime: str = "wasm32-wasi"
    """``python`` when the job names a ``script`` (then ``module`` is a ``bundle``)."""
    checkpoint_fuel: int = 0
    """``[checkpoint] every_fuel``: a resumable module's checkpoint interval; 0: the default."""
    shards: int = 0
    """``[placement] shards``: how many shards' committees the job is split across, one part
    of contiguous tasks each (``daemon.jobs.split``); 0: ``auto``, by the job's size."""

    @property
    def module_hash(self) -> bytes:
        return hashlib.sha256(self.module).digest()


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * _UNITS[m.group(2)]


class _Fields:
    """Typed access to one table of the spec, raising ``SpecError`` with the field's name."""

    def __init__(self, where: str, section: str, table: dict[str, Any]) -> None:
        self.where = where
        self.section = section
        self.table = table
        for key in table:
            if key not in _KNOWN[section]:
                near = difflib.get_close_matches(key, _KNOWN[section], n=1)
                hint = f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(_KNOWN[section])
                raise SpecError(f"{where}: unknown field [{section}] {key} ({hint})")

    def fail(self, key: str, what: str) -> SpecError:
        return SpecError(f"{self.where}: [{self.section}] {key} {what}")

    def int(self, key: str, default: int | None, lo: int, hi: int, example: str) -> int:
        v = self.table.get(key, default)
        if v is None:
            raise self.fail(key, f"is required (e.g. {key} = {example})")
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(key, f"must be an integer from {lo:,} to {hi:,} (e.g. {key} = {example}), got {v!r}")
        return v

    def number(self, key: str, default: float, lo: float, hi: float, example: str) -> float:
        v = self.table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
            raise self.fail(key, f"must be a number of seconds in ({lo:g}, {hi:g}] (e.g. {key} = {example}), got {v!r}")
        return float(v)

    def bool(self, key: str, default: bool, example: str) -> bool:
        v = self.table.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"must be true or false (e.g. {key} = {example}), got {v!r}")
        return v

    def str(self, key: str, default: str | None, example: str) -> str:
        v = self.table.get(key, default)
        if v is None:
            raise self.fail(key, f"is required (e.g. {key} = {example})")
        if not isinstance(v, str):
            raise self.fail(key, f"must be a string (e.g. {key} = {example}), got {v!r}")
        return v


def load_spec(path: Path) -> JobSpec:
    """The job at ``path``; the first problem found is a ``SpecError``."""
    spec, problems = check_spec(path)
    if spec is None:
        raise SpecError(problems[0])
    return spec


def check_spec(path: Path) -> tuple[JobSpec | None, list[str]]:
    """The job at ``path`` and every problem found in it, one line each (``novacron check``).

    Sections are checked independently, so a mistake in ``[limits]`` does not hide one in
    ``[replication]``; within a section, the first mistake is reported."""
    where = str(path)
    try:
        doc = tomllib.loads(read_capped_text(path, MAX_SPEC_BYTES))
    except UserFileError as err:
        if err.missing:
            return None, [f"job spec {path} does not exist"]
        if str(err).startswith("is a directory"):
            return None, [f"{path} is a directory; give the job's .toml file"]
        return None, [f"job spec {path} {err}"]
    except tomllib.TOMLDecodeError as err:
        return None, [f"{where} is not valid TOML: {err}"]
    problems: list[str] = []
    for section, value in doc.items():
        if section not in _KNOWN or not isinstance(value, dict):
            near = difflib.get_close_matches(section, list(_KNOWN), n=1)
            hint = f" (did you mean [{near[0]}]?)" if near else f" (sections: {', '.join(_KNOWN)})"
            problems.append(f"{where}: unknown section [{section}]{hint}")
    base = path.parent

    def part(check: Callable[[], Any]) -> Any:
        try:
            return check()
        except SpecError as err:
            problems.append(str(err))
            return None

    t = {s: part(lambda s=s: _Fields(where, s, doc.get(s, {}) if isinstance(doc.get(s), dict) else {}))
         for s in _KNOWN}
    job = part(lambda: _job(t["job"], base, path.stem)) if t["job"] else None
    inputs = part(lambda: _inputs(t["inputs"], base)) if t["inputs"] else None
    python = bool(t["job"]) and "script" in t["job"].table
    limits = part(lambda: _limits(t["limits"], python)) if t["limits"] else None
    replication = part(lambda: _replication(t["replication"])) if t["replication"] else None
    deadline_s = part(lambda: _deadline(t["schedule"])) if t["schedule"] else None
    clock_ns = part(lambda: _clock(t["sandbox"])) if t["sandbox"] else None
    combine = part(lambda: _combine(t["result"])) if t["result"] else None
    checkpoint_fuel = part(lambda: _checkpoint(t["checkpoint"])) if t["checkpoint"] else None
    shards = part(lambda: _placement(t["placement"], inputs)) if t["placement"] else None
    if problems or None in (job, inputs, limits, replication, deadline_s, combine,
                            checkpoint_fuel, shards):
        return None, problems
    name, module, argv, runtime = job
    fuel, memory_mb, wall_s, max_output = limits
    replicas, quorum, max_replicas, level, adaptive = replication
    return JobSpec(name=name, module=module, argv=argv, inputs=inputs, fuel=fuel,
                   memory_pages=memory_mb * 16, wall_s=wall_s, max_output=max_output,
                   replicas=replicas, quorum=quorum, max_replicas=max_replicas,
                   min_attestation=level, adaptive=adaptive, deadline_s=deadline_s,
                   clock_ns=clock_ns,
                   combine=combine, source=where, runtime=runtime,
                   checkpoint_fuel=checkpoint_fuel, shards=shards), []


def _job(job: _Fields, base: Path, stem: str) -> tuple[str, bytes, tuple[str, ...], str]:
    name = job.str("name", stem, '"my-job"')
    if not 1 <= len(name) <= 128:
        raise job.fail("name", "must be 1 to 128 characters")
    runtime = "wasm32-wasi"
    if "script" in job.table:
        if "module" in job.table:
            raise job.fail("script", "and module are both given: a job runs either a Python "
                           "script or a WebAssembly module")
        module = _python_bundle(job, base)
        runtime = "python"
    else:
        if "files" in job.table:
            raise job.fail("files", "ships files for a Python script; this job has no script")
        module = _wasm_module(job, base)
    argv = job.table.get("argv", [name])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or len(argv) > MAX_ARGV:
        raise job.fail("argv", f'must be a list of at most {MAX_ARGV} strings (e.g. argv = ["pi"])')
    return name, module, tuple(argv), runtime


def _wasm_module(job: _Fields, base: Path) -> bytes:
    module_path = base / job.str("module", None, '"pi.wasm"')
    try:
        module = read_capped(module_path, MAX_MODULE_BYTES)
    except UserFileError as err:
        raise _file_error(job, "module", module_path, err, "the module's .wasm file") from None
    if not module.startswith(WASM_MAGIC):
        raise job.fail("module", f"names {module_path}, which is not a WebAssembly module (build it "
                       "with clang --target=wasm32-wasi, see examples/build.sh)")
    return module


def _python_bundle(job: _Fields, base: Path) -> bytes:
    """The script and the ``files`` (modules, data; directories taken whole) as one bundle;
    each keeps its path relative to the spec's directory, under ``/job`` in the sandbox."""
    from daemon.runtime.bundle import MAX_BUNDLE, MAX_FILES, Bundle, BundleError

    script = job.str("script", None, '"task.py"')
    named = job.table.get("files", [])
    if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
        raise job.fail("files", 'must be a list of paths (e.g. files = ["model.py", "data/"])')
    root = base.resolve()
    found: dict[str, Path] = {}
    for key, entry in [("script", script)] + [("files", n) for n in named]:
        path = (base / entry).resolve()
        if not path.is_relative_to(root):
            raise job.fail(key, f"names {entry}, which is outside the spec's directory {root}")
        if not path.exists():
            raise job.fail(key, f"names {base / entry}, which does not exist")
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for member in members:
            if "__pycache__" not in member.parts:
                found[member.relative_to(root).as_posix()] = member
            if len(found) > MAX_FILES:
                raise job.fail("files", f"names more than {MAX_FILES} files")
    total = 0
    contents = {}
    for name, path in found.items():
        total += path.stat().st_size
        if total > MAX_BUNDLE:
            raise job.fail("files", f"the script and its files pass {MAX_BUNDLE:,} bytes together")
        try:
            contents[name] = path.read_bytes()
        except OSError as err:
            raise job.fail("files", f"cannot read {path}: {err.strerror}") from None
    try:
        return Bundle((base / script).resolve().relative_to(root).as_posix(), contents).encode()
    except BundleError as err:
        raise job.fail("files", str(err)) from None


def _limits(lim: _Fields, python: bool = False) -> tuple[int, int, float, int]:
    # the interpreter and numpy need more of everything
    fuel = lim.int("fuel", PYTHON_FUEL if python else 1_000_000_000, 1, MAX_FUEL, "1_000_000_000")
    memory_mb = lim.int("memory_mb", 256 if python else 16, 1, MAX_MEMORY_MB, "16")
    wall_s = lim.number("wall_s", 120.0 if python else 60.0, 0, MAX_WALL_S, "60")
    max_output = lim.int("max_output_bytes", 64 * 1024, 1, MAX_OUTPUT, "65536")
    return fuel, memory_mb, wall_s, max_output


def _replication(rep: _Fields) -> tuple[int, int, int, AttestationLevel, bool]:
    replicas = rep.int("replicas", 2, 1, MAX_REPLICAS, "2")
    quorum = rep.int("quorum", replicas, 1, MAX_REPLICAS, str(replicas))
    if quorum > replicas:
        raise rep.fail("quorum", f"({quorum}) cannot exceed replicas ({replicas}): a result is "
                       "accepted when this many replicas agree")
    max_replicas = rep.int("max_replicas", min(MAX_REPLICAS, replicas + 4), replicas, MAX_REPLICAS,
                           str(replicas + 4))
    level_name = rep.str("min_attestation", "none", '"none"')
    if level_name not in LEVELS:
        raise rep.fail("min_attestation", f"must be one of {', '.join(LEVELS)}, got {level_name!r}")
    adaptive = rep.bool("adaptive", False, "true")
    if adaptive and quorum < 2:
        raise rep.fail("adaptive", "needs quorum >= 2: with quorum 1 every task already runs "
                       "on one volunteer")
    return replicas, quorum, max_replicas, LEVELS[level_name], adaptive


def _checkpoint(ck: _Fields) -> int:
    """The checkpoint interval in fuel (0: the default, a hundredth of the fuel limit)."""
    if "every_fuel" not in ck.table:
        return 0
    return ck.int("every_fuel", 0, 10_000_000, MAX_FUEL, "5_000_000_000")


def _placement(place: _Fields, inputs: tuple[bytes, ...] | None) -> int:
    """``[placement] shards``: ``"auto"`` (0) or how many shards to split the job across."""
    value = place.table.get("shards", "auto")
    if value == "auto":
        return 0
    if isinstance(value, str):
        raise place.fail("shards", f'must be "auto" or a number of shards (e.g. shards = 2), '
                         f"got {value!r}")
    shards = place.int("shards", 0, 1, MAX_PARTS, "2")
    if inputs is not None and shards > len(inputs):
        raise place.fail("shards", f"({shards}) cannot exceed the job's {len(inputs)} tasks: "
                         "each shard gets a part of at least one task")
    return shards


def _deadline(sched: _Fields) -> int:
    deadline = sched.str("deadline", "24h", '"24h"')
    try:
        deadline_s = parse_duration(deadline)
    except ValueError:
        raise sched.fail("deadline", f'must be a duration like "90m", "6h" or "2d", got {deadline!r}') from None
    if not 60 <= deadline_s <= 30 * 86400:
        raise sched.fail("deadline", f"must be between 1 minute and 30 days, got {deadline!r}")
    return deadline_s


def _clock(sandbox: _Fields) -> int | None:
    if "clock" not in sandbox.table:
        return None
    clock = sandbox.str("clock", None, '"2025-01-01T00:00:00Z"')
    try:
        dt = datetime.fromisoformat(clock.replace("Z", "+00:00"))
    except ValueError:
        raise sandbox.fail("clock", f'must be an ISO 8601 time like "2025-01-01T00:00:00Z", got {clock!r}') from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    clock_ns = int(dt.timestamp()) * 10**9
    if clock_ns < 0:
        raise sandbox.fail("clock", "must not be before 1970")
    return clock_ns


def _combine(result: _Fields) -> str:
    combine = result.str("combine", "concat", '"concat"')
    if combine not in COMBINE:
        raise result.fail("combine", f"must be one of {', '.join(COMBINE)}, got {combine!r}")
    return combine


def _file_error(t: _Fields, key: str, path: Path, err: UserFileError, want: str) -> SpecError:
    """A named file that cannot be used: what it is, and what to give instead."""
    hint = f" (give {want})" if "not a regular file" in str(err) else ""
    return t.fail(key, f"names {path}, which {err}{hint}")


def _inputs(t: _Fields, base: Path) -> tuple[bytes, ...]:
    given = [k for k in ("list", "lines", "range") if k in t.table]
    if len(given) != 1:
        raise SpecError(f"{t.where}: [inputs] needs exactly one of list, lines or range (one task "
                        f"per input), got {', '.join(given) or 'none'}")
    kind = given[0]
    if "template" in t.table and kind != "range":
        raise t.fail("template", "only goes with range")
    if kind == "list":
        items = t.table["list"]
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise t.fail("list", 'must be a list of strings (e.g. list = ["1 1000\\n", "2 1000\\n"])')
        inputs = [x.encode() for x in items]
    elif kind == "lines":
        file = base / t.str("lines", None, '"inputs.txt"')
        try:
            text = read_capped_text(file, MAX_TOTAL_INPUT_BYTES)
        except UserFileError as err:
            raise _file_error(t, "lines", file, err, "a text file, one task's input per line") from None
        inputs = [line.encode() + b"\n" for line in text.splitlines() if line.strip()]
    else:
        rng = t.table["range"]
        if (not isinstance(rng, list) or len(rng) != 2 or not all(type(x) is int for x in rng)
                or not 0 <= rng[0] < rng[1]):
            raise t.fail("range", "must be [first, end] with 0 <= first < end (e.g. range = [0, 100]: tasks 0..99)")
        template = t.str("template", "{i}\n", '"{i} 1000000\\n"')
        if "{i}" not in template:
            raise t.fail("template", 'must contain {i} (e.g. template = "{i} 1000000\\n")')
        if rng[1] - rng[0] > MAX_TASKS:
            raise t.fail("range", f"gives {rng[1] - rng[0]:,} tasks; the limit is {MAX_TASKS:,}")
        inputs = [template.replace("{i}", str(i)).encode() for i in range(rng[0], rng[1])]
    if not inputs:
        raise SpecError(f"{t.where}: [inputs] gives no tasks")
    if len(inputs) > MAX_TASKS:
        raise SpecError(f"{t.where}: [inputs] gives {len(inputs):,} tasks; the limit is {MAX_TASKS:,}")
    big = next((i for i, x in enumerate(inputs) if len(x) > MAX_INPUT_BYTES), None)
    if big is not None:
        raise SpecError(f"{t.where}: [inputs] task {big} input is {len(inputs[big]):,} bytes; the "
                        f"limit is {MAX_INPUT_BYTES:,}")
    if sum(map(len, inputs)) > MAX_TOTAL_INPUT_BYTES:
        raise SpecError(f"{t.where}: [inputs] total {sum(map(len, inputs)):,} bytes; the limit is "
                        f"{MAX_TOTAL_INPUT_BYTES:,}")
    return tuple(inputs)
