"""What a volunteer does for jobs: run the replicas its committee assigned it, and report.

An offer counts once f+1 members of the job's shard committee (of the epoch the offer names)
sent the same one: then at least one correct member's ledger assigned it, so the work is
real. The worker fetches the module (and a large input) by hash from the submitter, else from
the workers of the task's earlier replicas the offer names (``mirrors``); the module also
from workers of the job's other tasks (``holders``), the task index choosing whom it asks
first (``module_sources``). It runs the
task in the sandbox pool (its volunteered share of cores, its hours, its idle rule), keeps the
output as a blob, hands it over to the submitter (``OutputReady``: the submitter fetches it
at once; its stderr too), and then reports ``Result`` (status, exit code, output and
stderr hashes and sizes, fuel) to the ledger. Handing over first means a result the ledger accepts is already with the submitter
when the worker goes offline: with adaptive replication a task may have only this copy.
Each task's random stream is seeded from (job, task), the same on every replica, so honest
replicas agree byte for byte.

A resumable task checkpoints every ``checkpoint_fuel`` of the offer; each checkpoint is kept
here, handed to the submitter's node (``CheckpointReady``) and its digest reported to the
ledger (``CheckpointReport``), in order. An offer naming a checkpoint chain (``resume``: the
task's last agreed one) continues from it, fetched from the submitter and checked against the
agreed digest; if it cannot be fetched the task starts over.

A task input may name sticky files (``protocol.sticky``): state an earlier task of the same
work left on the volunteers that ran it. They come from this node's store or their holders, and
one that cannot be had is this node's fault (below). A task allowed to may leave such a file
here: the worker keeps it (pinned, bounded) and never sends it anywhere.

Accepted offers are kept in the node's database until their task ends here
(``daemon.jobs.held``): a daemon that crashed runs them again when it starts, while the
ledger still holds them for it, instead of leaving them to their leases; a clean stop hands
them back (``Leave``) and forgets them.

Faults of this node, not of the task (the pool refusing work now, a crashed worker process, a
blob it could not fetch) are reported as ``CRASHED``: the ledger frees the replica at once
instead of waiting out its lease, and never counts it as a result.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import trio

from daemon.blobs import BlobService, BlobUnavailable
from daemon.blobs.store import BlobTooLarge
from daemon.capabilities import RUNTIME, offered_runtimes
from daemon.errors import DaemonError
from protocol import sticky
from daemon.jobs.held import HeldOffers
from daemon.jobs.ports import Ledger, Peers
from daemon.jobs.tally import MAX_ACCEPTED, OfferTally
from daemon.runtime import Limits, PoolPaused, TaskOutcome, WorkerPool
from daemon.runtime.abi import STDERR_TAIL
from daemon.runtime.cache import ModuleUnavailable
from daemon.runtime.outcome import PAGE
from daemon.runtime.resumable import Checkpoint
from daemon.runtime.pool import runtime_id
from protocol.messages import ledger as ops
from protocol.messages.tasks import CheckpointReady, OutputReady, TaskOffer, TaskStatus

log = logging.getLogger("novacron.worker")

MAX_PENDING_CHECKPOINTS = 64
KEEP_CHECKPOINTS = 32


class Declined(DaemonError):
    """An offer this node will not run: pinned to a runtime it does not run, or the volunteer
    has left. Reported as a node fault, so the replica is placed elsewhere and never votes."""


def module_sources(o: TaskOffer) -> list[str]:
    """Who to ask for the task's module, in order: the submitter, the task's ``mirrors`` and
    the job's ``holders``, turned by the task index so one wave's fetches spread over them."""
    sources = list(dict.fromkeys([o.submitter, *o.mirrors, *o.holders]))
    k = o.task % len(sources)
    return sources[k:] + sources[:k]


def task_seed(job: bytes, task: int) -> bytes:
    return hashlib.sha256(b"novacron/task-seed/v1" + job + task.to_bytes(4, "big")).digest()


class WorkerDuties:
    def __init__(self, pool: WorkerPool, blobs: BlobService, ledger: Ledger, peers: Peers,
                 held: HeldOffers | None = None, wall_ms: Callable[[], int] | None = None
                 ) -> None:
        """``held``: where accepted offers are kept across a crash (``daemon.jobs.held``;
        None: nowhere), with the wall clock ``wall_ms`` that dates them."""
        self.pool = pool
        self.runtime = offered_runtimes(runtime_id())[-1]
        self.more_runtimes: tuple[str, ...] = ()
        """Exact runtimes offered beyond wasm (``python@ID`` once the interpreter is ready)."""
        self.declining: str | None = None
        """Why every offer is declined now (``daemon.membership``), or None."""
        self.ledger = ledger
        self.peers = peers
        self.blobs = blobs
        self.tally = OfferTally(MAX_ACCEPTED)
        self.unfinished: set[tuple[bytes, int, int]] = set()
        self._send, self._recv = trio.open_memory_channel[TaskOffer](MAX_ACCEPTED)
        self._reports: trio.Nursery
        self.ran = 0
        self.results: dict[str, int] = {}
        self.handed_over = 0
        self.checkpoints = 0
        self.resumed = 0
        self.kept: OrderedDict[bytes, int] = OrderedDict()
        """Sticky files tasks left here (digest -> size), oldest first."""
        self.sticky_held = 0
        self.sticky_fetched = 0
        self.held = held
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.held_resumed = 0

    # -- offers ---------------------------------------------------------------------------------

    def on_offer(self, sender: bytes, offer: TaskOffer) -> None:
        taken = self.tally.add(sender, offer, self.ledger.committee_of(offer.shard, offer.epoch))
        if taken is None:
            return
        if self._queue(taken) and self.held is not None:
            self.held.keep(taken, self._wall_ms())

    def _queue(self, offer: TaskOffer) -> bool:
        try:
            self._send.send_nowait(offer)
        except trio.WouldBlock:
            log.warning("task queue full: dropping an offer (its lease will expire)")
            return False
        self.unfinished.add((offer.job, offer.task, offer.replica))
        return True

    def _resume_held(self) -> None:
        """Queue again the tasks accepted before this daemon last died (``daemon.jobs.held``):
        the ledger still holds them for us, and a late copy of their offer is not run twice."""
        if self.held is None:
            return
        offers = self.held.take(self._wall_ms())
        for offer in offers:  # kept as accepted: their leases count from then, not from now
            key = (offer.job, offer.task, offer.replica)
            self.tally.accepted[key] = offer
            if self._queue(offer):
                self.held_resumed += 1
            else:
                self.held.drop(*key)
        if offers:
            log.info("resuming %d task(s) held when this daemon last stopped", len(offers))

    @property
    def accepted(self) -> dict[tuple[bytes, int, int], TaskOffer]:
        return self.tally.accepted

    @property
    def ignored_offers(self) -> int:
        return self.tally.ignored

    # -- running --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._reports = nursery
            self._resume_held()
            for _ in range(max(1, self.pool.size)):
                nursery.start_soon(self._loop)
            task_status.started()

    async def _loop(self) -> None:
        async for offer in self._recv:
            try:
                await self._run_one(offer)
            except Exception:  # noqa: BLE001 - one task's failure must not stop the worker
                log.exception("task %s/%d failed in the worker", offer.job.hex()[:12], offer.task)
            finally:
                self.unfinished.discard((offer.job, offer.task, offer.replica))
                if self.held is not None:
                    self.held.drop(offer.job, offer.task, offer.replica)

    async def _run_one(self, o: TaskOffer) -> None:
        """Run one replica. Reports go to the ledger in the background (the node's requests
        are batched), so the slot takes its next task while the committee orders this one's."""
        shard = o.shard
        try:
            if self.declining:
                raise Declined(self.declining)
            if o.runtime not in (RUNTIME, self.runtime, *self.more_runtimes):
                raise Declined(f"the task is pinned to {o.runtime}, this node runs "
                               f"{self.runtime}: run it elsewhere")
            self._reports.start_soon(self._report, shard, ops.Start(o.job, o.task, o.replica))
            sources = [o.submitter, *o.mirrors]  # the submitter, then earlier replicas' workers
            module = await self.blobs.fetch(o.module_hash, module_sources(o), max_size=o.module_size)
            data = o.input_inline if o.input_inline is not None else await self.blobs.fetch(
                o.input_hash, sources, max_size=o.input_size)
            envelope = sticky.decode(data)  # None: an ordinary input
            files: tuple[tuple[str, bytes], ...] = ()
            if envelope is not None:
                data = envelope.stdin
                files = await self._sticky_files(envelope)
            keep = envelope.keep if envelope is not None else 0
            limits = Limits(fuel=o.fuel, memory_pages=o.memory_pages, wall_s=o.wall_ms / 1000,
                            max_output=o.max_output + (keep and keep + sticky.KEEP_OVERHEAD))
            bound = o.memory_pages * PAGE + o.max_output + (2 << 20)
            resume: tuple[bytes, ...] = ()
            try:
                resume = tuple([await self.blobs.fetch(h, [o.submitter], max_size=bound)
                                for h in o.resume])
            except BlobUnavailable as err:  # start from the beginning: slower, never wrong
                log.warning("task %d: cannot fetch its checkpoint (%s): starting it over",
                            o.task, err)
            self.resumed += bool(resume)
            send, recv = trio.open_memory_channel[Checkpoint](MAX_PENDING_CHECKPOINTS)
            self._reports.start_soon(self._report_checkpoints, o, recv)

            async def checkpointed(c: Checkpoint) -> None:
                try:
                    send.send_nowait(c)
                except trio.WouldBlock:
                    log.warning("checkpoint %d of task %d not reported: reports are behind",
                                c.seq, o.task)
            with send:
                outcome = await self.pool.run_task(o.module_hash, module, data, limits,
                                                   seed=task_seed(o.job, o.task),
                                                   argv=tuple(a.encode() for a in o.argv),
                                                   logical_time_ns=o.clock_ns,
                                                   origin=(o.job, o.task, o.replica),
                                                   checkpoint_fuel=o.checkpoint_fuel,
                                                   resume=resume,
                                                   resume_digest=o.resume_digest if resume else b"",
                                                   on_checkpoint=checkpointed,
                                                   files=files)
            if keep and outcome.status == TaskStatus.OK:
                # the kept frame does not count against the output's limit; the rest does
                kept, rest = sticky.split_kept(outcome.output, keep)
                if len(rest) > o.max_output:
                    outcome = TaskOutcome(TaskStatus.OUTPUT_TOO_LARGE, f"output of {len(rest):,}"
                                          f" bytes passes the limit of {o.max_output:,}")
                elif kept is not None:
                    self._keep(kept)
                    outcome = replace(outcome, output=rest)
        except sticky.StickyError as err:  # the input's fault, the same on every replica
            outcome = TaskOutcome(TaskStatus.REFUSED, f"bad sticky-file envelope: {err}")
        except BlobUnavailable as err:
            outcome = TaskOutcome(TaskStatus.CRASHED, f"could not fetch the task's data: {err}")
        except PoolPaused as err:
            outcome = TaskOutcome(TaskStatus.CRASHED, f"this volunteer is not running tasks now: {err}")
        except ModuleUnavailable as err:
            outcome = TaskOutcome(TaskStatus.CRASHED, f"module unavailable: {err}")
        except Declined as err:
            outcome = TaskOutcome(TaskStatus.CRASHED, str(err))
        self.ran += 1
        name = TaskStatus(outcome.status).name
        self.results[name] = self.results.get(name, 0) + 1
        output_hash = hashlib.sha256(outcome.output).digest()
        stderr = outcome.stderr[-STDERR_TAIL:]
        stderr_hash = hashlib.sha256(stderr).digest()
        result = ops.Result(o.job, o.task, o.replica, int(outcome.status), outcome.exit_code or 0,
                            output_hash, len(outcome.output), outcome.fuel_used, outcome.detail[:1000],
                            stderr_hash, len(stderr))
        ready = []
        if outcome.status not in (TaskStatus.CRASHED, TaskStatus.TIMED_OUT):
            # The stderr travels like the output: kept here, handed to the submitter.
            for data, digest in ((outcome.output, output_hash), (stderr, stderr_hash)):
                self.blobs.store.put(data, pin=True)
                if data and o.submitter != self.blobs.host.node_id:
                    ready.append(OutputReady(o.job, o.task, o.replica, digest, len(data)))
        self._reports.start_soon(self._hand_over_and_report, o.submitter, ready, shard, result)

    async def _sticky_files(self, envelope: sticky.StickyInput) -> tuple[tuple[str, bytes], ...]:
        """The files the task's input names: from this node's store if it kept them (the
        placement hoped so), else from their holders. ``BlobUnavailable`` if one cannot be had:
        the replica must not run without it (it would disagree with the others)."""
        out = []
        for f in envelope.files:
            held = self.blobs.store.get(f.sha256) is not None
            data = await self.blobs.fetch(f.sha256, f.holders, max_size=f.size)
            if len(data) != f.size:
                raise BlobUnavailable(f"sticky file {f.name} is {len(data):,} bytes, its task"
                                      f" says {f.size:,}")
            self.sticky_held += held
            self.sticky_fetched += not held
            out.append((f"{sticky.STICKY_DIR}/{f.name}", data))
        return tuple(out)

    def _keep(self, data: bytes) -> None:
        """Keep a task's sticky file here (pinned: the latest ``KEEP_COUNT`` and ``KEEP_BYTES``
        of them), for the same work's next task, here or fetched by another volunteer."""
        try:
            digest = self.blobs.store.put(data, pin=True)
        except BlobTooLarge:
            log.warning("a task's sticky file of %d bytes is too large to keep", len(data))
            return
        self.kept[digest] = len(data)
        self.kept.move_to_end(digest)
        while len(self.kept) > sticky.KEEP_COUNT or (
                len(self.kept) > 1 and sum(self.kept.values()) > sticky.KEEP_BYTES):
            old, _ = self.kept.popitem(last=False)
            self.blobs.store.pinned.discard(old)

    async def _report_checkpoints(self, o: TaskOffer,
                                  recv: trio.MemoryReceiveChannel[Checkpoint]) -> None:
        """In order, one at a time: keep each checkpoint's bytes here, hand them to the
        submitter (where another volunteer would resume from), then report its digest to the
        ledger. A checkpoint too large for the blob store is still reported (replicas are
        still checked against it); the task then cannot move from it."""
        kept: list[bytes] = []
        async with recv:
            async for c in recv:
                try:
                    blob = self.blobs.store.put(c.blob, pin=True)
                except BlobTooLarge:
                    blob = hashlib.sha256(c.blob).digest()
                else:
                    kept.append(blob)
                    for old in kept[:-KEEP_CHECKPOINTS]:
                        self.blobs.store.pinned.discard(old)
                    del kept[:-KEEP_CHECKPOINTS]
                    if o.submitter != self.blobs.host.node_id:
                        await self.peers.hand_over(o.submitter, CheckpointReady(
                            o.job, o.task, o.replica, c.seq, blob, len(c.blob)))
                self.checkpoints += 1
                await self._report(o.shard, ops.CheckpointReport(
                    o.job, o.task, o.replica, c.seq, c.steps, c.fuel_used, c.digest, blob,
                    c.keyframe))
        for old in kept:  # the task ended here: the submitter's node holds what it needs
            self.blobs.store.pinned.discard(old)

    async def _hand_over_and_report(self, submitter: str, ready: list[OutputReady], shard: int,
                                    result: ops.Result) -> None:
        """In the background, so the slot takes its next task while this one is reported."""
        for r in ready:
            if await self.peers.hand_over(submitter, r):
                self.handed_over += 1
        await self._report(shard, result)

    async def _report(self, shard: int, op: Any) -> None:
        try:
            reply = await self.ledger.order(shard, op)
        except Exception as err:  # noqa: BLE001 - the lease covers a lost report
            log.warning("could not report %s: %s", type(op).__name__, err)
            return
        if "error" in reply:
            log.info("ledger refused %s: %s", type(op).__name__, reply["error"])

    async def leave(self, reason: str) -> int:
        """Tell the ledgers we are going, so our unfinished replicas are placed again now.
        Returns how many shards were told."""
        shards = {self.accepted[k].shard for k in self.unfinished if k in self.accepted}
        for shard in shards:
            with trio.move_on_after(1.0):
                await self._report(shard, ops.Leave(reason))
        if self.held is not None:
            self.held.clear()  # handed back: placed again, not resumed here
        return len(shards)

    def status(self) -> dict[str, Any]:
        return {"tasks_run": self.ran, "results": self.results,
                "queued": self._recv.statistics().current_buffer_used,
                "running": len(self.unfinished), "ignored_offers": self.ignored_offers,
                "outputs_handed_over": self.handed_over, "checkpoints": self.checkpoints,
                "resumed": self.resumed, "held_resumed": self.held_resumed,
                "sticky_kept": len(self.kept), "sticky_held": self.sticky_held, "sticky_fetched": self.sticky_fetched}
