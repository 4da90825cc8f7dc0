"""An FL job's files, read once from the job's directory into what the node keeps (I/O).

``read_job(path)`` is what ``fl.submit`` does on the node (the control socket is local, so the
node reads the job's directory as ``jobs.submit`` does): check the job file
(``daemon.fl.spec``), resolve the shard patterns, check the model and that the script defines
``train`` and ``evaluate`` (by reading it, never by running it: the user's code runs only in
a sandbox), and return ``JobFiles``:

- ``task``: the files every round's bundle starts from: the task script ``fl_task.py``, the
  codec (``protocol/...`` and the raw stand-in for ``zstandard``), the user's script as
  ``train.py``, its ``files`` and every shard;
- ``test``: the test set, evaluated after every round in the node's own sandbox (it never
  leaves this machine: no task of the network ever names it);
- ``model``: the initial parameters as ``.npz`` bytes.

Every size is bounded before it is read; every mistake is one ``FLError`` line.
"""

from __future__ import annotations

import ast
import glob
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import daemon.fl.sandbox
import protocol
from daemon.fl.params import FLError, Params, check_params
from daemon.fl.spec import FLSpec, parse_fl_spec
from daemon.fl.rounds import max_output as max_update
from daemon.jobs.spec import MAX_OUTPUT
from daemon.runtime.bundle import MAX_BUNDLE
from daemon.storage.userfile import UserFileError, read_capped

MAX_JOB_FILE = 1 << 20
PROTOCOL_FILES = ("errors.py", "compression.py", "tensor/codec.py", "tensor/wire.py",
                  "tensor/lossless.py", "tensor/quant.py", "tensor/sparse.py",
                  "tensor/choice.py")
"""The codec's modules the task carries (their package ``__init__``s are left empty)."""
TASK_SCRIPT = "fl_task.py"
EVAL_SCRIPT = "fl_eval.py"
EVAL_MODEL = "novacron_model.npz"
"""The round's model in the evaluation's bundle (``fl_eval.py`` reads this name)."""
MAX_ALL_FILES = 48 << 20
"""The task files, shards and test set together (a blob holds at most 64 MiB)."""


@dataclass(frozen=True)
class JobFiles:
    spec: FLSpec
    text: str
    """The job file as written (kept by the node, parsed again after a restart)."""
    where: str
    shards: tuple[str, ...]
    task: dict[str, bytes]
    test: bytes
    model: bytes


def load_spec(path: Path) -> FLSpec:
    return parse_fl_spec(tomllib.loads(_text(path)), path.name)


def _text(path: Path) -> str:
    try:
        text = read_capped(path, MAX_JOB_FILE).decode()
    except UserFileError as err:
        raise FLError(f"{path}: cannot read it ({err})") from None
    except UnicodeDecodeError:
        raise FLError(f"{path}: not a text file") from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FLError(f"{path}: not valid TOML: {err}") from None
    return text


def read_job(path: Path) -> JobFiles:
    """Everything the node needs from the job's directory (see the module docstring)."""
    if not path.is_absolute():
        raise FLError(f"{path}: give the job file as an absolute path (the CLI does this)")
    text = _text(path)
    spec = parse_fl_spec(tomllib.loads(text), path.name)
    base = path.parent
    shards = find_shards(base, spec)
    if spec.clients_per_round > len(shards):
        raise FLError(f"{path.name}: [fl] clients_per_round is {spec.clients_per_round}"
                      f" but the shards patterns match {len(shards)} files")
    budget = [MAX_ALL_FILES]

    def read(rel: str, what: str) -> bytes:
        try:
            data = read_capped(base / rel, budget[0])
        except UserFileError as err:
            raise FLError(f"{path.name}: [fl] {what} {rel!r}: {err} (the job's files, shards"
                          f" and test set may take {MAX_ALL_FILES >> 20} MiB together)") from None
        budget[0] -= len(data)
        return data

    model = read(spec.model, "model")
    script = read(spec.script, "script")
    check_script(script, spec.script)
    task: dict[str, bytes] = {**codec_files(), "train.py": script}
    for rel in spec.files:
        src = base / rel
        members = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for member in members:
            if "__pycache__" not in member.parts:
                name = member.relative_to(base).as_posix()
                task[name] = read(name, "files")
    for rel in shards:
        task[rel] = read(rel, "shard")
    test = read(spec.test, "test")
    fixed = sum(len(v) for k, v in task.items() if k not in shards)
    biggest = sorted((len(task[s]) for s in shards), reverse=True)[:spec.clients_per_round]
    if fixed + sum(biggest) + 2 * len(model) + 4096 > MAX_BUNDLE:
        raise FLError(f"{path.name}: a round's task files ({fixed:,} B), its"
                      f" {spec.clients_per_round} largest shards ({sum(biggest):,} B) and the"
                      f" model pass the {MAX_BUNDLE >> 20} MiB a task's bundle may hold; use"
                      " smaller shards or fewer clients per round")
    user = sum(len(v) for k, v in task.items() if k not in shards and k not in codec_files())
    if user + len(test) + len(model) + 4096 > MAX_BUNDLE:
        raise FLError(f"{path.name}: the evaluation's files (your script and files, the test"
                      f" set {spec.test!r} of {len(test):,} B and the model) pass the"
                      f" {MAX_BUNDLE >> 20} MiB a sandbox bundle may hold; use a smaller test set")
    params = load_model(model, f"model {spec.model}")
    if max_update(params) > MAX_OUTPUT:
        raise FLError(f"{path.name}: [fl] model {spec.model!r} has"
                      f" {sum(a.size for a in params.values()):,} parameters; a client's update"
                      f" must fit the {MAX_OUTPUT >> 20} MiB a task's output may hold (about"
                      " 130,000 float32 parameters)")
    return JobFiles(spec, text, path.name, tuple(shards), task, test, model)


def find_shards(base: Path, spec: FLSpec) -> list[str]:
    found: list[str] = []
    for pattern in spec.shards:
        matches = sorted(glob.glob(pattern, root_dir=base))
        if not matches:
            raise FLError(f"[fl] shards pattern {pattern!r} matches no file under {base}")
        for m in matches:
            if Path(m).is_absolute() or ".." in Path(m).parts or " " in m:
                raise FLError(f"[fl] shard {m!r} must be a relative path inside the job's"
                              " directory, without spaces")
            if m not in found and (base / m).is_file():
                found.append(m)
    if not found:
        raise FLError(f"[fl] shards patterns {list(spec.shards)} match no file under {base}")
    return found


def check_script(source: bytes, name: str) -> None:
    """The script defines ``train`` and ``evaluate`` (read, not run)."""
    try:
        tree = ast.parse(source, filename=name)
    except (SyntaxError, ValueError) as err:
        raise FLError(f"{name}: the FL script does not parse: {err}") from None
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
                for a in n.names}
    for fn in ("train", "evaluate"):
        if fn not in defined:
            raise FLError(f"{name}: an FL script must define {fn}() (see docs/fl.md)")


def codec_files() -> dict[str, bytes]:
    """The task script and the codec it imports, as the sandbox sees them under ``/job``."""
    sandbox = Path(daemon.fl.sandbox.__file__).parent
    proto = Path(protocol.__file__).parent
    files = {TASK_SCRIPT: (sandbox / TASK_SCRIPT).read_bytes(),
             "zstandard.py": (sandbox / "zstandard_raw.py").read_bytes(),
             "protocol/__init__.py": b"", "protocol/tensor/__init__.py": b""}
    for rel in PROTOCOL_FILES:
        files[f"protocol/{rel}"] = (proto / rel).read_bytes()
    return files


def write_task_files(dest: Path, base: Path, spec: FLSpec, shards: list[str]) -> list[str]:
    """A round's task files (every shard) written under ``dest``, for running ``fl_task.py``
    outside the network (tests, benchmarks); the names, without the task script itself."""
    files = {**codec_files(), "train.py": (base / spec.script).read_bytes()}
    for rel in list(spec.files) + shards:
        src = base / rel
        members = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for member in members:
            files[member.relative_to(base).as_posix()] = member.read_bytes()
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return sorted(n for n in files if n != TASK_SCRIPT)


def eval_script() -> bytes:
    return (Path(daemon.fl.sandbox.__file__).parent / EVAL_SCRIPT).read_bytes()


def load_model(data: bytes, what: str = "model") -> Params:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return check_params({name: z[name] for name in z.files}, what=what)
    except (OSError, ValueError) as err:
        raise FLError(f"cannot read the {what} as a numpy .npz file ({err})") from None


def model_bytes(model: Params) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **model)  # type: ignore[arg-type]
    return buf.getvalue()
