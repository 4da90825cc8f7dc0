"""FL runs from Python: submit a job file to the node, follow its rounds, fetch the result.

The round loop runs in the node (``daemon.flrun``): ``submit_fl(client, "job.toml")`` hands
the job file to the local node, which reads its files, keeps them, and returns the run's id
(``fl-...``) at once; the node then submits each round as a job of replicated, certified
Python tasks, aggregates the certified updates, evaluates the model on the test set in its own
sandbox (the test set never leaves this machine) and starts the next round. Stopping this
process stops nothing; a restarted daemon resumes the run at its round.

``follow(client, run, on_round)`` calls ``on_round(row)`` for each round as it finishes and
returns the run's final status; ``fetch_result(client, run, out)`` writes ``out/model.npz``
and ``out/history.json`` (one row per round: clients, updates certified and lost, levels,
update bytes, train and test loss, accuracy, each task's digest and certificate) and returns
the history. ``run_fl`` is the three in a row, as ``novacron fl run`` does (keeping the
directory current after every round; ``resume`` shows the rounds the directory lacks).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from daemon.fl import FLError, check_params
from daemon.fl.params import Params
from novacron.client import Client, NovaCronError

RUN_FILE = "run.json"
"""Written into the output directory at submission: which run it belongs to (``--resume``)."""
WAIT_S = 20.0


def submit_fl(client: Client, spec_path: str | Path) -> dict[str, Any]:
    """Submit the FL job file; the node's answer (``run``: the run id, ``rounds``, ...)."""
    path = Path(spec_path).resolve()
    if not path.is_file():
        raise FLError(f"{spec_path}: no such FL job file")
    return dict(client.call("fl.submit", spec=str(path)))


def status(client: Client, run: str, *, since: int = 0, wait_s: float = 0.0,
           tasks: bool = False) -> dict[str, Any]:
    return dict(client.call("fl.status", run=run, since=since, wait_s=wait_s, tasks=tasks))


def runs(client: Client) -> list[dict[str, Any]]:
    return list(client.call("fl.list")["runs"])


def cancel(client: Client, run: str) -> dict[str, Any]:
    return dict(client.call("fl.cancel", run=run))


def follow(client: Client, run: str, on_round: Callable[[dict[str, Any]], None] = lambda r: None,
           *, since: int = 0, timeout: float | None = None,
           on_progress: Callable[[dict[str, Any]], None] = lambda st: None) -> dict[str, Any]:
    """Wait for the run to end, calling ``on_round`` with each round after ``since`` as it
    finishes (and ``on_progress`` with the status between rounds); the final status.
    ``TimeoutError`` after ``timeout`` seconds (the run goes on)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = status(client, run, since=since, wait_s=WAIT_S)
        for row in st["history"]:
            on_round(row)
            since = max(since, int(row["round"]))
        if st["state"] != "running":
            return st
        on_progress(st)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run} still training after {timeout} s (round"
                               f" {st['done'] + 1} of {st['rounds']}); it goes on on the node")


def fetch_result(client: Client, run: str, out_dir: str | Path) -> list[dict[str, Any]]:
    """Write ``model.npz`` and ``history.json`` of the run into ``out_dir``; the history."""
    out = Path(out_dir).resolve()
    client.call("fl.result", run=run, out=str(out))
    history: list[dict[str, Any]] = json.loads((out / "history.json").read_text())
    return history


def run_fl(client: Client, spec_path: str | Path, out_dir: str | Path, *,
           on_round: Callable[[dict[str, Any]], None] = lambda row: None,
           timeout: float | None = None, resume: bool = False,
           on_submit: Callable[[dict[str, Any]], None] = lambda info: None,
           on_progress: Callable[[dict[str, Any]], None] = lambda st: None,
           ) -> list[dict[str, Any]]:
    """Submit (or, with ``resume``, re-attach to the run ``out_dir`` belongs to), follow the
    rounds, and write the result into ``out_dir``; returns the history. ``NovaCronError`` if
    the run failed or was cancelled (what it did is still written)."""
    out = Path(out_dir)
    earlier = _earlier(out, resume, spec_path)
    if earlier is None:
        info = submit_fl(client, spec_path)
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_FILE).write_text(json.dumps({"run": info["run"],
                                                "job": str(Path(spec_path).resolve()),
                                                "job_sha256": _digest(spec_path)}) + "\n")
        run, since = str(info["run"]), 0
        on_submit(info)
    else:
        run = earlier
        since = len(_history(out))  # the rounds this directory has: the rest are shown

    def each(row: dict[str, Any]) -> None:
        on_round(row)
        fetch_result(client, run, out)  # OUT stays current after every round

    final = follow(client, run, each, since=since, timeout=timeout, on_progress=on_progress)
    history = fetch_result(client, run, out)
    if final["state"] != "done":
        raise NovaCronError(f"run {run[:15]} {final['state']} after {final['done']} of"
                            f" {final['rounds']} rounds: {final.get('error') or 'no reason given'}"
                            f" (its rounds so far are in {out})")
    return history


def _digest(spec_path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(spec_path).read_bytes()).hexdigest()
    except OSError:
        return None


def _earlier(out: Path, resume: bool, spec_path: str | Path) -> str | None:
    """The run ``out`` belongs to (with ``resume``), None for a fresh directory.

    Re-attaching cannot change a run: if the job file changed since the run was submitted
    from it (more rounds, say), that is an error, not a silent re-attach to the old run."""
    marker = out / RUN_FILE
    held = marker.exists() or (out / "history.json").exists()
    if not held:
        if resume:
            raise FLError(f"{out} holds no run to resume; run without --resume to start one")
        return None
    try:
        held_run = json.loads(marker.read_text())
        run = str(held_run["run"])
    except (OSError, ValueError, KeyError, TypeError):
        raise FLError(f"{out} holds an FL history but no {RUN_FILE} naming its run; give"
                      " another -o directory") from None
    if not resume:
        raise FLError(f"{out} already holds run {run[:15]}: add --resume to re-attach to it,"
                      " or give another -o directory")
    submitted = held_run.get("job_sha256") if isinstance(held_run, dict) else None
    if submitted and _digest(spec_path) != submitted:
        raise FLError(f"{spec_path} changed since run {run[:15]} was submitted from it;"
                      " --resume re-attaches to the run as submitted and cannot change it: to"
                      " train with the new file, give another -o directory")
    return run


def _history(out: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads((out / "history.json").read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise FLError(f"{out / 'history.json'}: cannot read the run's history ({err})") from None
    if not isinstance(rows, list):
        raise FLError(f"{out / 'history.json'}: not a history written by novacron fl run")
    return rows


def load_npz(path: Path, what: str = "model") -> Params:
    try:
        with np.load(path, allow_pickle=False) as z:
            return check_params({name: z[name] for name in z.files}, what=what)
    except (OSError, ValueError) as err:
        raise FLError(f"{path}: cannot read the {what} as a numpy .npz file ({err})") from None


# Staging a round's files by hand (tests and benchmarks that run ``fl_task.py`` directly).
def load_spec(path: str | Path) -> Any:
    from daemon.flrun.stage import load_spec as load

    return load(Path(path).resolve())


def _shards(base: Path, spec: Any) -> list[str]:
    from daemon.flrun.stage import find_shards

    return find_shards(base, spec)


def _stage(dest: Path, base: Path, spec: Any, shards: list[str]) -> list[str]:
    from daemon.flrun.stage import write_task_files

    return write_task_files(dest, base, spec, shards)
