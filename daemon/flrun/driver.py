"""The FL driver: the node's round loop for the runs submitted from it (trio shell).

Theory of operation. ``FLDriver.run`` starts one ``drive`` task per run still running (after
a restart: every run the database says is running) and one per run submitted later. A
``drive`` loops over the run's rounds:

1. **plan** (``daemon.fl.rounds.plan_round``, pure) unless a round is in flight, and keep the
   plan in the run's record;
2. **submit** the round's job through the node's own job path (``RoundJobs.submit``: the
   round's bundle, one input line per client) and keep its id in the record. A round in flight
   whose job the node no longer knows is planned and submitted again;
3. **wait** for every task to end: certified (its output fetched and checked against the
   certificate) or lost (failed, or its job ended without it);
4. **close** (``close_round``, pure): decode and aggregate the updates;
5. **evaluate** the new model on the test set in the node's own sandbox (``Evaluator``);
6. **record**: the new model as a pinned blob, the history row, the clients' carried state and
   "no round in flight", in one transaction (``RunStore.save``); then the next round.

A daemon killed anywhere in this loop resumes at step 1-3 of the round it was in. The loop
itself decides nothing: which shards, which links, which levels and how to combine are the
pure planner's; the ports (``RoundJobs``, ``Evaluator``, ``Blobs``) do the I/O, so a test
drives the loop over in-process stand-ins and virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgpack
import trio

from daemon.errors import DaemonError
from daemon.fl.params import FLError, Params
from daemon.fl.rounds import (RoundPlan, RunState, TaskResult, close_round, finish_row,
                              max_output, plan_round, round_files)
from daemon.flrun.stage import load_model, model_bytes
from daemon.flrun.store import InFlight, Run, RunStore

log = logging.getLogger("novacron.fl")

POLL_S = 1.0
"""How often a round's job is asked for its progress (one ordered query on its committee)."""
GATHER_AFTER_S = 15.0
"""An accepted task without its certificate this long: ask the committee for its votes again."""
ROUND_ATTEMPTS = 3
"""A round none of whose updates was certified is submitted again, up to this many times in
all; then the run fails (the user's task is probably broken: its error says so)."""
RETRY_S = 5.0
"""A round that cannot be submitted or evaluated now (no committee, sandbox busy) waits."""


class Waiting(DaemonError):
    """Not now (the committee cannot be reached, the sandbox is not ready); tried again."""


class RoundJobs(Protocol):
    """The node's job path, as the driver uses it (``daemon.flrun.service.NodeJobs``)."""

    async def links(self) -> tuple[dict[str, Any], list[str]]:
        """The predicted link from every live volunteer to this node, and the volunteers."""

    async def staying(self, horizon_s: float) -> dict[str, float]:
        """Each live volunteer's predicted time before leaving, as a share of ``horizon_s``."""

    async def submit(self, name: str, files: dict[str, bytes], inputs: list[str], *,
                     replicas: int, fuel: int, memory_mb: int, wall_s: int,
                     max_output: int) -> bytes:
        """Submit a round's job (``files`` with ``fl_task.py`` as the script); its id.
        ``FLError``: refused for good; ``Waiting``: not now."""

    def known(self, job: bytes) -> bool:
        """Whether this node still knows the job (submitted from here, not forgotten)."""

    async def progress(self, job: bytes) -> tuple[str, list[tuple[int, str]]]:
        """The job's state and each task's (``Waiting`` if the committee cannot say now)."""

    async def certified(self, job: bytes, task: int) -> TaskResult | None:
        """The task's certified result (output fetched and checked); None: not yet."""

    async def gather(self, job: bytes) -> None:
        """Ask for the votes of accepted tasks this node holds no certificate for."""

    async def cancel(self, job: bytes) -> None: ...


class Evaluator(Protocol):
    async def evaluate(self, run: Run, files: dict[str, bytes], test: bytes,
                       model_npz: bytes) -> dict[str, float]:
        """``{"loss", "accuracy"}`` of the model on the test set. ``FLError``: the user's
        ``evaluate`` failed (the run stops); ``Waiting``: not now."""


class Blobs(Protocol):
    def put(self, data: bytes, pin: bool = False) -> bytes: ...

    def get(self, digest: bytes) -> bytes | None: ...

    def pin(self, digest: bytes) -> None: ...

    def unpin(self, digest: bytes) -> None: ...


class FLDriver:
    def __init__(self, store: RunStore, jobs: RoundJobs, evaluator: Evaluator, blobs: Blobs,
                 now_ms: Callable[[], int]) -> None:
        self.store = store
        self.jobs = jobs
        self.evaluator = evaluator
        self.blobs = blobs
        self.now_ms = now_ms
        self.runs: dict[bytes, Run] = {r.id: r for r in store.load()}
        self.changed = trio.Event()
        """Set (and replaced) whenever a run records a round or ends: ``watch`` wakes on it."""
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[bytes, trio.CancelScope] = {}
        for run in self.runs.values():  # the blob store's pins are in memory only
            for digest in (run.model,) if run.state.ended else (run.files, run.test, run.model):
                self.blobs.pin(digest)

    def _blob(self, digest: bytes) -> bytes:
        data = self.blobs.get(digest)
        if data is None:
            raise FLError(f"blob {digest.hex()[:12]} of an FL run is missing from this node's"
                          " blob store")
        return data

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for run in self.runs.values():
                if not run.state.ended:
                    self._start(run)
            task_status.started()
            await trio.sleep_forever()

    def add(self, run: Run) -> None:
        """A run just submitted (its first round is planned, maybe already submitted)."""
        self.runs[run.id] = run
        self.store.save(run)
        if self._nursery is not None:
            self._start(run)

    def _start(self, run: Run) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._scopes[run.id] = scope
        self._nursery.start_soon(self._drive_guarded, run, scope)

    async def cancel(self, run: Run) -> None:
        if run.state.ended:
            return
        scope = self._scopes.pop(run.id, None)
        if scope is not None:
            scope.cancel()
        job = run.inflight.job if run.inflight else None
        if job is not None:
            try:
                await self.jobs.cancel(job)
            except DaemonError as err:
                log.info("run %s: its round's job was not cancelled: %s", run.label[:15], err)
        self._end(run, RunState.CANCELLED, "cancelled by its submitter")

    def _end(self, run: Run, state: RunState, error: str = "") -> None:
        run.state, run.error, run.ended_ms = state, error, self.now_ms()
        run.activity = ""
        self.store.save(run)
        for digest in (run.files, run.test):
            self.blobs.unpin(digest)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _drive_guarded(self, run: Run, scope: trio.CancelScope) -> None:
        with scope:
            try:
                await self.drive(run)
            except FLError as err:
                log.warning("FL run %s failed: %s", run.label[:15], err)
                self._end(run, RunState.FAILED, str(err))

    async def drive(self, run: Run) -> None:
        spec = run.spec
        model = load_model(self._blob(run.model))
        while run.done < spec.rounds:
            if run.inflight is None or (run.inflight.job is not None
                                        and not self.jobs.known(run.inflight.job)):
                await self.plan(run, run.done + 1)
            await self.submit(run, model)
            assert run.inflight is not None and run.inflight.job is not None
            results = await self._wait(run, run.inflight.plan, run.inflight.job)
            if not any(r.status == "OK" for r in results) and \
                    run.inflight.attempt < ROUND_ATTEMPTS:
                # Nothing certified (e.g. every task failed while this node, which serves the
                # round's files, was down): the same round again, as a new job.
                attempt = run.inflight.attempt + 1
                log.warning("FL run %s: round %d: no update certified (%s); submitting it"
                            " again (attempt %d of %d)", run.label[:15], run.done + 1,
                            "; ".join(sorted({r.detail or r.status for r in results}))[:200],
                            attempt, ROUND_ATTEMPTS)
                await self.plan(run, run.done + 1, attempt)
                continue
            closed = close_round(spec, model, run.inflight.plan, results, run.clients,
                                 job=run.inflight.job.hex())
            new_npz = model_bytes(closed.model)
            metrics = await self._evaluate(run, new_npz)
            row = finish_row(spec, closed.row, metrics, closed.model)
            row["seconds"] = round(max(0, self.now_ms() - run.inflight.started_ms) / 1000, 1)
            if run.inflight.attempt > 1:
                row["attempts"] = run.inflight.attempt
            old, run.model = run.model, self.blobs.put(new_npz, pin=True)
            run.done, run.clients, run.inflight = run.done + 1, closed.clients, None
            run.progress, run.activity = {}, ""
            self.store.save(run, row)
            if old != run.model:
                self.blobs.unpin(old)
            model = closed.model
            self._wake()
            log.info("FL run %s: round %d/%d: %d/%d updates, accuracy %.4f", run.label[:15],
                     row["round"], spec.rounds, row["updates"], row["clients"], row["accuracy"])
        self._end(run, RunState.DONE)

    async def plan(self, run: Run, rnd: int, attempt: int = 1) -> None:
        """Plan round ``rnd`` and keep the plan (not submitted yet)."""
        run.activity = "planning"
        spec = run.spec
        links, volunteers = await self._retry(run, self.jobs.links) if (
            spec.adaptive or spec.error_feedback or spec.selection == "phi") else ({}, [])
        staying = await self.jobs.staying(float(spec.wall_s)) if spec.selection == "phi" \
            else None
        keep = 4 * sum(a.size for a in load_model(self._blob(run.model)).values()) \
            if spec.error_feedback else 0
        plan = plan_round(spec, run.shards, rnd, run.clients, links, volunteers,
                          staying=staying, keep=keep)
        began = run.inflight.started_ms if run.inflight and attempt > 1 else self.now_ms()
        run.inflight = InFlight(plan, attempt=attempt, started_ms=began)
        self.store.save(run)

    async def submit(self, run: Run, model: Params, *, once: bool = False) -> None:
        """Submit the planned round's job, if it is not submitted yet (``once``: one attempt,
        ``Waiting`` raised, as ``fl.submit`` does for the first round)."""
        assert run.inflight is not None
        if run.inflight.job is not None:
            return
        spec, plan = run.spec, run.inflight.plan
        task_files = _unpack(self._blob(run.files))
        files = round_files(task_files, run.shards, plan, model_bytes(model))

        async def submit() -> bytes:
            run.activity = "submitting"
            return await self.jobs.submit(
                f"{run.label[:11]} r{plan.round} {run.name}", files, plan.inputs,
                replicas=spec.replicas,
                fuel=spec.fuel, memory_mb=spec.memory_mb, wall_s=spec.wall_s,
                max_output=max_output(model))

        run.inflight.job = await (submit() if once else self._retry(run, submit))
        self.store.save(run)

    async def _retry(self, run: Run, fn: Callable[[], Any]) -> Any:
        while True:
            try:
                return await fn()
            except Waiting as err:
                run.activity = f"waiting: {err}"
                await trio.sleep(RETRY_S)

    async def _wait(self, run: Run, plan: RoundPlan, job: bytes) -> list[TaskResult]:
        """Every task's end: certified, or lost (failed, or its job ended without it)."""
        results: dict[int, TaskResult] = {}
        accepted_at: dict[int, float] = {}
        total = len(plan.clients)
        while True:
            run.activity = "training"
            try:
                state, tasks = await self.jobs.progress(job)
            except Waiting as err:
                run.activity = f"waiting: {err}"
                await trio.sleep(RETRY_S)
                continue
            ended = state not in ("open", "loading")
            if state == "gone":  # the ledger no longer has the job: what is not in is lost
                tasks = [(t, "gone") for t in range(total)]
            stuck = False
            for task, tstate in tasks:
                if task in results or task >= total:
                    continue
                if tstate == "accepted":
                    got = await self.jobs.certified(job, task)
                    if got is not None:
                        results[task] = got
                        continue
                    first = accepted_at.setdefault(task, trio.current_time())
                    stuck |= trio.current_time() - first > GATHER_AFTER_S
                elif tstate in ("failed", "cancelled") or ended:
                    results[task] = TaskResult(task, "FAILED" if tstate == "failed" else
                                               tstate.upper(), detail=f"task {tstate}")
            progress = {"tasks": total, "lost": sum(r.status != "OK" for r in results.values()),
                        "certified": sum(r.status == "OK" for r in results.values())}
            if progress != run.progress:
                run.progress = progress
                self._wake()  # a watcher shows the round's progress as it moves
            if len(results) >= total:
                return [results[t] for t in sorted(results)]
            if stuck:
                await self.jobs.gather(job)
                accepted_at.clear()
            await trio.sleep(POLL_S)

    async def _evaluate(self, run: Run, model_npz: bytes) -> dict[str, float]:
        task_files = _unpack(self._blob(run.files))
        test = self._blob(run.test)

        async def evaluate() -> dict[str, float]:
            run.activity = "evaluating"
            self._wake()
            return await self.evaluator.evaluate(run, task_files, test, model_npz)

        result: dict[str, float] = await self._retry(run, evaluate)
        return result


def pack_files(files: dict[str, bytes]) -> bytes:
    return bytes(msgpack.packb(dict(sorted(files.items())), use_bin_type=True))


def _unpack(data: bytes) -> dict[str, bytes]:
    files = msgpack.unpackb(data, raw=False, max_bin_len=len(data))
    if not isinstance(files, dict):
        raise FLError("an FL run's files blob is damaged")
    return files
