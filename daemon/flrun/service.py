"""The node's FL service: ``fl.*`` control methods, and the driver's ports over the node.

``fl.submit`` reads the job's directory (``daemon.flrun.stage``), keeps its files, test set and
model as pinned blobs, plans and submits round 1 at once (so a job no network can place is
refused in one line, keeping nothing) and returns the run's id (``fl-`` and hex digits); the
driver (``daemon.flrun.driver``) takes it from there. ``fl.list``, ``fl.status`` (with
``since``/``wait_s``: the rounds after ``since``, waiting up to ``wait_s`` for one),
``fl.cancel`` and ``fl.result`` (``model.npz`` and ``history.json`` into a directory) serve
``novacron jobs | status | watch | cancel | result`` and ``novacron fl run``.

The ports: ``NodeJobs`` submits a round as an ordinary Python job through this node's
submitter and reads its progress and certificates; ``SandboxEvaluator`` runs the user's
``evaluate`` in this node's own Python sandbox (the worker pool), on the test set, which no
task of the network ever names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from collections.abc import Callable
from typing import Any

import trio

from daemon.blobs.store import BlobStore
from daemon.control.jsonrpc import NOT_FOUND, REJECTED, RpcError
from daemon.control.params import get, only
from daemon.control.server import ControlServer
from daemon.errors import DaemonError
from daemon.flrun.driver import FLDriver, Waiting, pack_files
from daemon.fl.params import FLError
from daemon.fl.rounds import TaskResult
from daemon.flrun.stage import (EVAL_MODEL, EVAL_SCRIPT, TASK_SCRIPT, codec_files, eval_script,
                                load_model, read_job)
from daemon.flrun.store import PREFIX, Run, RunStore
from daemon.genesis import Genesis
from daemon.jobs.service import JobsService
from daemon.jobs.spec import JobSpec
from daemon.jobs.submitter import Unplaceable
from daemon.ledger.certificate import verify_certificate
from daemon.runtime import Limits, PoolPaused, WorkerPool
from daemon.runtime.bundle import Bundle, BundleError
from daemon.storage.db import Database
from protocol.messages.tasks import TaskStatus

MAX_WAIT_S = 30.0
TASK_FIELDS = ("task", "shard", "status", "detail", "codec", "bytes", "why", "link")
"""What ``fl.status`` shows of each client of a round (``fl.result`` writes every field)."""


class NodeJobs:
    """``RoundJobs`` over this node's jobs service and soft state."""

    def __init__(self, jobs: JobsService, soft: Any, genesis: Genesis | None) -> None:
        self.jobs = jobs
        self.soft = soft
        self.genesis = genesis

    async def links(self) -> tuple[dict[str, Any], list[str]]:
        known = await self.soft.rpc_links({})
        return dict(known.get("links", {})), list(known.get("volunteers", []))

    async def staying(self, horizon_s: float) -> dict[str, float]:
        return dict((await self.soft.rpc_forecast({"horizon_s": horizon_s}))["staying"])

    async def submit(self, name: str, files: dict[str, bytes], inputs: list[str], *,
                     replicas: int, fuel: int, memory_mb: int, wall_s: int,
                     max_output: int) -> bytes:
        try:
            bundle = Bundle(TASK_SCRIPT, files).encode()
        except BundleError as err:
            raise FLError(f"the round's files: {err}") from None
        spec = JobSpec(name=name[:128], module=bundle, argv=(TASK_SCRIPT,),
                       inputs=tuple(line.encode() + b"\n" for line in inputs), fuel=fuel,
                       memory_pages=memory_mb * 16, wall_s=float(wall_s),
                       max_output=max_output, replicas=replicas, quorum=replicas,
                       max_replicas=min(16, replicas + 4), runtime="python", source=name)
        try:
            job, reply = await self.jobs.submitter.submit_job(spec)
        except Unplaceable as err:
            raise Waiting(f"no current network can place the round: {err}") from None
        except DaemonError as err:  # CommitteeUnavailable, QueueFull
            raise Waiting(f"could not submit the round: {err}") from None
        if "error" in reply:
            raise FLError(f"the committee refused the round's job: {reply['error']}")
        return job.id

    def known(self, job: bytes) -> bool:
        return job in self.jobs.submitter.jobs

    async def progress(self, job: bytes) -> tuple[str, list[tuple[int, str]]]:
        try:
            st = await self.jobs.rpc_status({"job": job.hex(), "tasks": True})
        except RpcError as err:
            if err.code == NOT_FOUND:
                return "gone", []
            raise Waiting(err.message) from None
        return str(st["state"]), [(int(t["task"]), str(t["state"])) for t in st.get("tasks", [])]

    async def certified(self, job: bytes, task: int) -> TaskResult | None:
        sub = self.jobs.submitter
        cert = sub.certificate(job, task)
        if cert is None:
            return None
        workers = sub.workers_of(job, task)
        if cert.status != TaskStatus.OK:
            return TaskResult(task, TaskStatus(cert.status).name, workers=workers,
                              detail=f"its replicas agreed it ended {TaskStatus(cert.status).name}"
                                     " (see `novacron logs` of the round's job)")
        data = await sub.output(cert, workers)
        if data is None:
            return None  # fetched on a later poll
        # An update's certificate travels alone in the run's rows (``fl status``): with the
        # epoch chain, as a job's result directory keeps it beside its certificates. Read
        # here, once the output is in: the chain is every notice since the genesis.
        cert = dataclasses.replace(cert, chain=self.jobs.ledger.chain_before(cert.epoch))
        checks = verify_certificate(cert, self.genesis, data)
        if not all(c.ok for c in checks):
            bad = next(c.what for c in checks if not c.ok)
            return TaskResult(task, "UNVERIFIED", detail=bad)
        return TaskResult(task, "OK", data, tuple(workers), cert.output_hash.hex(),
                          tuple(c.what for c in checks), cert.to_json())

    async def gather(self, job: bytes) -> None:
        await self.jobs.submitter.gather_votes(job, wait_s=5.0)

    async def cancel(self, job: bytes) -> None:
        try:
            await self.jobs.rpc_cancel({"job": job.hex()})
        except RpcError as err:
            raise Waiting(err.message) from None


class SandboxEvaluator:
    """``Evaluator`` in this node's own Python sandbox (its worker pool)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    async def evaluate(self, run: Run, files: dict[str, bytes], test: bytes,
                       model_npz: bytes) -> dict[str, float]:
        spec = run.spec
        skip = set(run.shards) | set(codec_files())
        user = {k: v for k, v in files.items() if k not in skip}
        try:
            bundle = Bundle(EVAL_SCRIPT, {**user, EVAL_SCRIPT: eval_script(), spec.test: test,
                                          EVAL_MODEL: model_npz}).encode()
        except BundleError as err:
            raise FLError(f"the evaluation's files: {err}") from None
        limits = Limits(fuel=spec.fuel, memory_pages=spec.memory_mb * 16,
                        wall_s=float(spec.wall_s), max_output=4096)
        try:
            out = await self.pool.run_task(hashlib.sha256(bundle).digest(), bundle,
                                           spec.test.encode(), limits, seed=b"novacron-fl-eval",
                                           argv=(EVAL_SCRIPT.encode(),))
        except PoolPaused as err:
            raise Waiting(f"this node's sandbox is paused ({err})") from None
        if out.status == TaskStatus.REFUSED and "Python" in out.detail:
            raise Waiting(out.detail)
        if out.status == TaskStatus.CRASHED:
            raise Waiting(f"the evaluation's sandbox worker crashed: {out.detail}")
        if out.status != TaskStatus.OK:
            tail = out.stderr.decode("utf-8", "replace").strip().splitlines()
            said = f"; it said: {tail[-1][:200]}" if tail else ""
            raise FLError(f"evaluate() in the FL script failed in the sandbox:"
                          f" {out.status.name}: {out.detail}{said}")
        try:
            metrics = json.loads(out.output)
            return {"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])}
        except (ValueError, KeyError, TypeError):
            raise FLError("evaluate() in the FL script must return {'loss': ..., 'accuracy':"
                          " ...}") from None


class StoreBlobs:
    """``Blobs`` over the node's blob store."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def put(self, data: bytes, pin: bool = False) -> bytes:
        return self.store.put(data, pin=pin)

    def get(self, digest: bytes) -> bytes | None:
        return self.store.get(digest)

    def pin(self, digest: bytes) -> None:
        self.store.pinned.add(digest)

    def unpin(self, digest: bytes) -> None:
        self.store.pinned.discard(digest)


class FLService:
    name = "fl"

    def __init__(self, db: Database, jobs: JobsService, soft: Any, pool: WorkerPool,
                 genesis: Genesis | None,
                 python: Callable[[], tuple[str, str]] = lambda: ("ready", "")) -> None:
        self.python = python
        """This node's Python runtime: (state, detail), as ``PythonRuntimeService`` says."""
        self.store = RunStore(db)
        self.blobs = StoreBlobs(jobs.blobs.store)
        self.clock = jobs.clock
        self.driver = FLDriver(self.store, NodeJobs(jobs, soft, genesis), SandboxEvaluator(pool),
                               self.blobs, lambda: int(self.clock.wall() * 1000))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.driver.run(task_status=task_status)

    def status(self) -> dict[str, Any]:
        runs = self.driver.runs.values()
        running = sum(not r.state.ended for r in runs)
        return {"health": "ok", "summary": f"{running} FL runs training, {len(runs)} in all",
                "runs": len(runs), "running": running}

    def register_rpc(self, server: ControlServer) -> None:
        for name in ("submit", "list", "status", "cancel", "result"):
            server.register(f"fl.{name}", getattr(self, f"rpc_{name}"))

    def _find(self, params: dict[str, Any]) -> Run:
        text = get(params, "run", str).lower()
        digits = text[len(PREFIX):] if text.startswith(PREFIX) else text
        if len(digits) < 4 or any(c not in "0123456789abcdef" for c in digits):
            raise RpcError(NOT_FOUND, f"{text!r} is not an FL run id (fl- and at least 4 hex"
                                      " digits; see `novacron jobs`)")
        found = [r for r in self.driver.runs.values() if r.id.hex().startswith(digits)]
        if not found:
            raise RpcError(NOT_FOUND, f"no FL run {text} submitted from this node; see"
                                      " `novacron jobs`")
        if len(found) > 1:
            raise RpcError(NOT_FOUND, f"{text} matches {len(found)} FL runs; give more digits")
        return found[0]

    async def rpc_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "spec")
        path = Path(get(params, "spec", str))
        refusal = python_refusal(*self.python())
        if refusal:
            raise RpcError(REJECTED, refusal)
        try:
            job = await trio.to_thread.run_sync(read_job, path)
        except FLError as err:
            raise RpcError(REJECTED, str(err)) from None
        digests = [self.blobs.put(data, pin=True) for data in
                   (pack_files(job.task), job.test, job.model)]
        run_id = hashlib.sha256(b"".join(digests) + job.text.encode() + os.urandom(16)).digest()
        files, test, model = digests
        run = Run(run_id, path.parent.name or path.stem, job.text, job.where, str(path),
                  job.shards, files=files, test=test, model=model,
                  submitted_ms=int(self.clock.wall() * 1000))
        try:
            await self.driver.plan(run, 1)
            await self.driver.submit(run, load_model(job.model), once=True)
        except (FLError, Waiting) as err:
            self.store.delete(run_id)
            for d in digests:
                self.blobs.unpin(d)
            raise RpcError(REJECTED, f"{job.where}: {err}") from None
        self.driver.add(run)
        return {"run": run.label, "name": run.name, "rounds": job.spec.rounds,
                "clients_per_round": job.spec.clients_per_round, "shards": len(job.shards)}

    async def rpc_list(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return {"runs": [self._summary(r) for r in sorted(
            self.driver.runs.values(), key=lambda r: r.submitted_ms, reverse=True)]}

    def _summary(self, run: Run) -> dict[str, Any]:
        inflight = run.inflight
        return {"run": run.label, "name": run.name, "state": run.state.value,
                "rounds": run.spec.rounds, "done": run.done, "error": run.error or None,
                "submitted_ms": run.submitted_ms, "ended_ms": run.ended_ms or None,
                "source": run.source, "activity": run.activity or None,
                "progress": dict(run.progress) or None,
                "round_job": inflight.job.hex() if inflight and inflight.job else None,
                "clients_per_round": run.spec.clients_per_round}

    async def rpc_status(self, params: dict[str, Any]) -> dict[str, Any]:
        """The run and its rounds after ``since`` (0: all); with ``wait_s``, waits up to that
        long (at most 30 s) for a round to finish or the run to end, if none has yet."""
        only(params, "run", "since", "wait_s", "tasks")
        run = self._find(params)
        since = get(params, "since", int, 0)
        wait_s = min(MAX_WAIT_S, max(0.0, float(get(params, "wait_s", (int, float), 0))))
        if wait_s and run.done <= since and not run.state.ended:
            with trio.move_on_after(wait_s):
                await self.driver.changed.wait()
        rows = [r for r in self.store.history(run.id) if r["round"] > since]
        full = get(params, "tasks", bool, False)
        for r in rows:
            r["tasks"] = [t if full else {k: t[k] for k in TASK_FIELDS if k in t}
                          for t in r["tasks"]]
        return {**self._summary(run), "history": rows}

    async def rpc_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "run")
        run = self._find(params)
        was = run.state
        await self.driver.cancel(run)
        return {"run": run.label, "state": run.state.value, "was": was.value,
                "done": run.done}

    async def rpc_result(self, params: dict[str, Any]) -> dict[str, Any]:
        """``model.npz`` (the model after the last finished round) and ``history.json``."""
        only(params, "run", "out")
        run = self._find(params)
        out = Path(get(params, "out", str))
        if not out.is_absolute():
            raise RpcError(REJECTED, "give the output directory as an absolute path")
        model = self.blobs.get(run.model)
        if model is None:
            raise RpcError(NOT_FOUND, f"run {run.label[:15]}: its model is missing from this"
                                      " node's blob store")
        history = self.store.history(run.id)
        try:
            await trio.to_thread.run_sync(_write, out, model, history)
        except OSError as err:
            raise RpcError(REJECTED, f"cannot write to {out}: {err.strerror}") from None
        return {"run": run.label, "dir": str(out), "rounds": run.done,
                "of": run.spec.rounds, "state": run.state.value, "error": run.error or None}


def python_refusal(state: str, detail: str) -> str | None:
    """Why this node cannot take an FL run, if its Python runtime will never be ready (each
    round's model is evaluated in this node's own sandbox); None while it is, or may become,
    ready."""
    if state in ("declined", "missing", "failed"):
        return (f"this node evaluates the model after every round in its own Python sandbox,"
                f" and its Python runtime is {state}" + (f" ({detail})" if detail else "")
                + "; enable it (volunteer.python) or submit from a node that has it")
    return None


def _write(out: Path, model: bytes, history: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (("model.npz", model),
                       ("history.json", (json.dumps(history, indent=1) + "\n").encode())):
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / name)
