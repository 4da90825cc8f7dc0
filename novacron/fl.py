"""Run an FL job: every round a job of replicated, certified training tasks, aggregated here.

``run_fl(client, "job.toml", out_dir)`` reads the FL job file (``daemon.fl.spec``), then per
round: picks ``clients_per_round`` shards (seeded), writes the global model into the round's
files, submits one Python task per shard through the node (each task runs the user's
``train`` on its shard in the volunteers' sandbox and sends ``local - global`` encoded with
the job's codec), takes the results as their certificates arrive (each one verified, as
``Client.map`` does), decodes and aggregates them, evaluates the new model with the user's
``evaluate`` on the test set (here, on the submitter's machine: the test data never leaves
it), and reports the round. A shard whose task fails for good is a lost update: the round goes
on without it. At the end ``out_dir`` holds ``model.npz`` and ``history.json`` (one row per
round, with each task's output digest and certificate).

The aggregation runs in the submitter's client process, attached to its node: if that
process stops, the job stops after the current round (the rounds' jobs stay in the ledger).
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import importlib.util
import json
import random
import shutil
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import daemon.fl.sandbox
import protocol
from daemon.fl import (FLError, aggregate, check_params, clip, decode_update, epsilon,
                       noisy_mean, select_random)
from daemon.fl.linkplan import ClientLink, client_link
from daemon.fl.params import Params, add
from daemon.fl.spec import FLSpec, parse_fl_spec
from novacron.client import Client, NovaCronError
from protocol.errors import RemoteProtocolError

PROTOCOL_FILES = ("errors.py", "compression.py", "tensor/codec.py", "tensor/wire.py",
                  "tensor/lossless.py", "tensor/quant.py", "tensor/sparse.py",
                  "tensor/choice.py")
"""The codec's modules the task carries (their package ``__init__``s are left empty)."""
DP_DELTA = 1e-5


def load_spec(path: Path) -> FLSpec:
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as err:
        raise FLError(f"{path}: cannot read it ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise FLError(f"{path}: not valid TOML: {err}") from None
    return parse_fl_spec(doc, path.name)


def load_npz(path: Path, what: str) -> Params:
    try:
        with np.load(path, allow_pickle=False) as z:
            return check_params({name: z[name] for name in z.files}, what=what)
    except (OSError, ValueError) as err:
        raise FLError(f"{path}: cannot read the {what} as a numpy .npz file ({err})") from None


def run_fl(client: Client, spec_path: str | Path, out_dir: str | Path, *,
           on_round: Callable[[dict[str, Any]], None] = lambda row: None,
           timeout: float | None = None, resume: bool = False) -> list[dict[str, Any]]:
    """Train; returns the per-round history (also written to ``out_dir``).

    ``out_dir`` holding an earlier run's history is refused unless ``resume``: then training
    goes on from its ``model.npz`` after its last round (checked against the digest the
    history recorded), with the same shard selection a run without the interruption would
    have made (DP noise is drawn afresh).
    """
    spec_path = Path(spec_path).resolve()
    base = spec_path.parent
    spec = load_spec(spec_path)
    shards = _shards(base, spec)
    if spec.clients_per_round > len(shards):
        raise FLError(f"{spec_path.name}: [fl] clients_per_round is {spec.clients_per_round}"
                      f" but the shards patterns match {len(shards)} files")
    model = load_npz(base / spec.model, "model")
    user = _user_module(base / spec.script)
    test_path = base / spec.test
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pick = random.Random(spec.seed)
    dp_rng = np.random.default_rng(spec.seed)
    history = _earlier(out, resume)
    if history:
        model = load_npz(out / "model.npz", "model")
        check_params(model, like=load_npz(base / spec.model, "model"), what="saved model")
        if history[-1].get("model_sha256") != _model_digest(model):
            raise FLError(f"{out / 'model.npz'} is not the model after round"
                          f" {history[-1].get('round')} of {out / 'history.json'} (interrupted"
                          " while saving?); start again in another -o directory")
        for _ in history:  # replay the selections already made
            select_random(pick, len(shards), spec.clients_per_round)
    last_workers = _last_workers(history)
    model_bytes = sum(a.nbytes for a in model.values())
    with tempfile.TemporaryDirectory(prefix=".novacron-fl-", dir=base) as tmp:
        stage = Path(tmp)
        files = _stage(stage, base, spec, shards)
        for rnd in range(len(history) + 1, spec.rounds + 1):
            chosen = select_random(pick, len(shards), spec.clients_per_round)
            np.savez(stage / "global.npz", **model)
            prox = f" {spec.mu!r}" if spec.mu > 0 else ""
            plans = _plan_links(client, spec, [shards[i] for i in chosen], last_workers)
            inputs = [f"{shards[i]} {rnd} {_codec_field(spec, plan)} {spec.local_epochs}"
                      f" {spec.seed}{prox}" for i, plan in zip(chosen, plans)]
            updates, weights, losses, tasks = [], [], [], []
            update_bytes = 0
            for r in client.map(stage / "fl_task.py", inputs, replicas=spec.replicas,
                                files=_round_files(files, shards, chosen), timeout=timeout,
                                raise_on_failure=False, fuel=spec.fuel,
                                memory_mb=spec.memory_mb, wall_s=spec.wall_s,
                                max_output_bytes=2 * model_bytes + 64 * len(model) + 4096):
                if r.status != "OK":
                    tasks.append({"task": r.task, "shard": shards[chosen[r.task]],
                                  "status": r.status})
                    continue
                head, update = _parse_output(r.output, model)
                updates.append(update)
                weights.append(float(head["samples"]))
                losses.append(float(head["loss"]))
                update_bytes += len(r.output)
                workers = _workers(client, r.job, r.task, r.output_sha256)
                last_workers[head["shard"]] = workers
                tasks.append({"task": r.task, "shard": head["shard"], "status": "OK",
                              "samples": head["samples"], "loss": head["loss"],
                              "codec": head.get("codec", spec.codec),
                              **_why(plans[r.task], head), "workers": workers,
                              "bytes": len(r.output), "output_sha256": r.output_sha256,
                              "checks": list(r.checks), "certificate": r.certificate})
                job = r.job
            if not updates:
                raise NovaCronError(f"round {rnd}: every client's task failed; stopping"
                                    " (see novacron logs for the tasks' errors)")
            if spec.dp_clip > 0:
                step = noisy_mean([clip(u, spec.dp_clip) for u in updates],
                                  max_norm=spec.dp_clip, noise_multiplier=spec.dp_noise,
                                  rng=dp_rng)
            else:
                step = aggregate(spec.aggregation, updates, weights, trim=spec.trim)
            model = add(model, step)
            metrics = _evaluate(user, model, test_path)
            row = {"round": rnd, "job": job, "clients": len(chosen), "updates": len(updates),
                   "lost": len(chosen) - len(updates), "codec": spec.codec,
                   "levels": dict(sorted(Counter(t["codec"] for t in tasks
                                                 if t["status"] == "OK").items())),
                   "update_bytes": update_bytes,
                   "train_loss": round(float(np.average(losses, weights=weights)), 6),
                   "test_loss": round(float(metrics["loss"]), 6),
                   "accuracy": round(float(metrics["accuracy"]), 6),
                   "model_sha256": _model_digest(model),
                   "tasks": sorted(tasks, key=lambda t: t["task"])}
            if spec.dp_clip > 0:
                row["epsilon"] = epsilon(rounds=rnd, noise_multiplier=spec.dp_noise,
                                         delta=DP_DELTA)
            history.append(row)
            _write_atomically(out / "model.npz", _npz_bytes(model))
            _write_atomically(out / "history.json", (json.dumps(history, indent=1) + "\n")
                              .encode())
            on_round(row)
    return history


def _plan_links(client: Client, spec: FLSpec, shards: list[str],
                last_workers: dict[str, list[str]]) -> list[ClientLink | None]:
    """Per chosen shard, the link its level is chosen for (None: the job fixed the level).

    The node answers with the predicted link from every live volunteer to itself, read from
    the soft state's published link summaries (``daemon.links.summary``)."""
    if not spec.adaptive:
        return [None] * len(shards)
    known = client.call("links")
    links, volunteers = known.get("links", {}), known.get("volunteers", [])
    return [client_link(last_workers.get(s, []), volunteers, links, spec.replicas)
            for s in shards]


def _codec_field(spec: FLSpec, plan: ClientLink | None) -> str:
    if plan is None:
        return spec.codec
    return plan.task_field(spec.time_budget_s, spec.error_budget)


def _why(plan: ClientLink | None, head: dict[str, Any]) -> dict[str, Any]:
    """The history's account of a client's level: the link it was planned on, and the reward
    of every level on its update (as the task measured and the certificate covers)."""
    if plan is None:
        return {"why": "fixed by the job file"}
    return {"link": plan.as_dict(), "levels": head.get("levels"),
            "why": f"largest reward for {plan.bandwidth / 1e3:,.0f} kB/s,"
                   f" {plan.rtt_s * 1000:.1f} ms ({plan.describe()})"}


def _workers(client: Client, job: str, task: int, digest: str) -> list[str]:
    """The volunteers that sent the certified result ``digest`` for ``task`` (the next round
    plans on their links)."""
    try:
        ex = client.call("jobs.explain", job=job, task=task)
    except NovaCronError:
        return []  # only the plan of a later round loses its hint
    return sorted({str(rep["worker"]) for rep in ex.get("replicas", [])
                   if (rep.get("result") or {}).get("output_sha256") == digest})


def _last_workers(history: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Shard -> the volunteers that ran its latest certified task in ``history``."""
    out: dict[str, list[str]] = {}
    for row in history:
        for t in row.get("tasks", []):
            if t.get("status") == "OK" and isinstance(t.get("workers"), list):
                out[str(t["shard"])] = [str(w) for w in t["workers"]]
    return out


def _model_digest(model: Params) -> str:
    """SHA-256 over the model's tensors in name order (names, shapes and float32 bytes)."""
    h = hashlib.sha256()
    for name in sorted(model):
        array = np.ascontiguousarray(model[name], dtype=np.float32)
        h.update(f"{name}:{array.shape};".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _npz_bytes(model: Params) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **model)
    return buf.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _round_files(files: list[str], shards: list[str], chosen: list[int]) -> list[str]:
    """The round's bundle: the task's files and the global model, but only the chosen shards
    (a shard not trained this round would be fetched by every worker for nothing)."""
    unused = set(shards) - {shards[i] for i in chosen}
    return [f for f in files if f not in unused] + ["global.npz"]


def _earlier(out: Path, resume: bool) -> list[dict[str, Any]]:
    path = out / "history.json"
    if not path.exists():
        return []
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FLError(f"{path}: cannot read the earlier run's history ({err})") from None
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise FLError(f"{path}: not a history written by novacron fl run")
    if not resume:
        raise FLError(f"{out} already holds {len(history)} rounds of a run: add --resume to"
                      " go on from them, or give another -o directory")
    return history


def _evaluate(user: ModuleType, model: Params, test_path: Path) -> dict[str, float]:
    try:
        metrics = user.evaluate(dict(model), str(test_path))
        return {"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])}
    except Exception as err:  # the user's code, on the user's machine: say so in one line
        raise FLError(f"evaluate() in the FL script failed: {type(err).__name__}: {err}"
                      " (it must return {'loss': ..., 'accuracy': ...})") from None


def _shards(base: Path, spec: FLSpec) -> list[str]:
    found: list[str] = []
    for pattern in spec.shards:
        matches = sorted(glob.glob(pattern, root_dir=base))
        if not matches:
            raise FLError(f"[fl] shards pattern {pattern!r} matches no file under {base}")
        for m in matches:
            if Path(m).is_absolute() or ".." in Path(m).parts or " " in m:
                raise FLError(f"[fl] shard {m!r} must be a relative path inside the job's"
                              " directory, without spaces")
            if m not in found:
                found.append(m)
    return found


def _user_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("novacron_fl_user_task", path)
    if spec is None or spec.loader is None:
        raise FLError(f"{path}: cannot load the FL script")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's script: one line, not a traceback
        raise FLError(f"{path}: importing the FL script failed: {type(err).__name__}: {err}"
                      ) from None
    for name in ("train", "evaluate"):
        if not callable(getattr(module, name, None)):
            raise FLError(f"{path}: an FL script must define {name}() (see docs/fl.md)")
    return module


def _stage(stage: Path, base: Path, spec: FLSpec, shards: list[str]) -> list[str]:
    """The round's files: the task, the codec, the user's script as ``train.py``, shards."""
    sandbox = Path(daemon.fl.sandbox.__file__).parent
    shutil.copy(sandbox / "fl_task.py", stage / "fl_task.py")
    shutil.copy(sandbox / "zstandard_raw.py", stage / "zstandard.py")
    proto = Path(protocol.__file__).parent
    for rel in PROTOCOL_FILES:
        (stage / "protocol" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(proto / rel, stage / "protocol" / rel)
    (stage / "protocol" / "__init__.py").write_text("")
    (stage / "protocol" / "tensor" / "__init__.py").write_text("")
    shutil.copy(base / spec.script, stage / "train.py")
    for rel in list(spec.files) + shards:
        src, dst = base / rel, stage / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)
    return sorted(str(p.relative_to(stage)) for p in stage.rglob("*")
                  if p.is_file() and p.name != "fl_task.py")


def _parse_output(output: bytes, like: Params) -> tuple[dict[str, Any], Params]:
    line, sep, rest = output.partition(b"\n")
    try:
        head = json.loads(line) if sep else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or not {"shard", "samples", "loss"} <= head.keys():
        raise NovaCronError("an FL task's output does not start with its JSON line;"
                            " was the job's script changed?")
    try:
        return head, decode_update(rest, like)
    except RemoteProtocolError as err:
        raise NovaCronError(f"shard {head['shard']}: its certified update does not decode"
                            f" against the model ({err}); does train() keep every tensor's"
                            " name and shape?") from None

