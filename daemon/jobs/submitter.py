"""What a researcher's node does for the jobs it submitted.

``submit``: check the spec, keep the module and large inputs as pinned blobs (workers fetch them
from here), and submit the job to its shard committee. ``on_vote``: collect the committee's
signed result votes per task; at 2f+1 distinct members the result is certified: keep the
certificate (votes missed while offline are asked for again, ``ask_votes``), fetch the
output (and the stderr) from a worker whose result agreed, verify it against the certified
hash, and keep it. Progress is read from the ledger (an ordered ``Query``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import trio

from daemon.clock import Clock, SystemClock
from daemon.blobs import BlobService, BlobUnavailable
from daemon.errors import DaemonError
from daemon.jobs.feasibility import Needs, Verdict, assess
from daemon.jobs.ports import CandidateSource, Ledger
from daemon.jobs.pins import JobPins
from daemon.jobs.spec import MAX_OUTPUT, JobSpec
from daemon.jobs.tally import ASK_VOTES_S, VoteTally, missing
from daemon.ledger.certificate import ResultCertificate
from daemon.ledger.records import job_id
from daemon.storage.db import Database
from protocol.canonical import packb, unpackb
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.tasks import CheckpointReady, OutputReady, ResultVote

log = logging.getLogger("novacron.jobs")

NS_JOBS = "jobs"
NS_CERTS = "certs"


@dataclass
class LocalJob:
    id: bytes
    name: str
    shard: int
    tasks: int
    submitted_ms: int
    combine: str
    source: str
    needs: list[int] = field(default_factory=list)
    """[replicas, memory MiB, min attestation] (empty: a job stored before they were kept)."""
    certified: set[int] = field(default_factory=set)
    whole: bytes = b""
    """The whole job this is a part of (``daemon.jobs.wholes``); empty: a job of its own."""

    def to_bytes(self) -> bytes:
        return packb([self.id, self.name, self.shard, self.tasks, self.submitted_ms, self.combine,
                      self.source, self.needs, self.whole])

    @classmethod
    def from_bytes(cls, data: bytes) -> "LocalJob":
        fields = unpackb(data)
        job = cls(*fields[:8])
        job.whole = fields[8] if len(fields) > 8 else b""
        return job

    def feasibility_needs(self) -> Needs | None:
        return Needs(*self.needs) if len(self.needs) == 3 else None


def needs_of(spec: JobSpec) -> Needs:
    return Needs(spec.replicas, max(1, spec.memory_pages * 64 // 1024), int(spec.min_attestation))


CHUNK_BYTES = 32 * 1024
HAND_OVER_FETCHES = 8
KEEP_CHECKPOINTS = 32
GATHER_VOTES_S = 20.0
"""How long ``result`` waits for votes it asked for again (a few committee round trips)."""
"""Checkpoint blobs kept pinned per task: two key-frame spans (``daemon.runtime.resumable``)."""
"""Outputs fetched at once on workers' hand-overs; more wait (their workers' reports too)."""


def to_submit(spec: JobSpec, nonce: int) -> tuple[ops.Submit, list[tuple[ops.TaskInput, ...]], list[bytes]]:
    """The ledger operation for a spec, the further input chunks (``AddInputs``), and the
    blobs (module, large inputs) to keep."""
    blobs = [spec.module]
    inputs = []
    for data in spec.inputs:
        inline = data if len(data) <= ops.MAX_INLINE_INPUT else None
        if inline is None:
            blobs.append(data)
        inputs.append(ops.TaskInput(hashlib.sha256(data).digest(), len(data), inline))
    chunks: list[tuple[ops.TaskInput, ...]] = []
    current: list[ops.TaskInput] = []
    size = 0
    for inp in inputs:
        cost = 48 + len(inp.inline or b"")
        if current and (size + cost > CHUNK_BYTES or len(current) >= ops.MAX_TASKS_PER_OP):
            chunks.append(tuple(current))
            current, size = [], 0
        current.append(inp)
        size += cost
    chunks.append(tuple(current))
    op = ops.Submit(
        name=spec.name, module_hash=spec.module_hash, module_size=len(spec.module),
        argv=spec.argv, inputs=chunks[0], fuel=spec.fuel, memory_pages=spec.memory_pages,
        wall_ms=int(spec.wall_s * 1000), max_output=spec.max_output, replicas=spec.replicas,
        quorum=spec.quorum, max_replicas=spec.max_replicas, min_attestation=int(spec.min_attestation),
        deadline_s=spec.deadline_s, clock_ns=spec.clock_ns or 0, nonce=nonce,
        total_tasks=len(inputs), adaptive=spec.adaptive, runtime=spec.runtime,
        checkpoint_fuel=spec.checkpoint_fuel)
    return op, chunks[1:], blobs


class Unplaceable(DaemonError):
    """No current network can place the job (one line: why, and what to change)."""


class SubmitterDuties:
    def __init__(self, identity: NodeIdentity, ledger: Ledger, db: Database, blobs: BlobService,
                 soft: CandidateSource, clock: Clock | None = None) -> None:
        self.identity = identity
        self.clock: Clock = clock or SystemClock()
        self.ledger = ledger
        self.network = ledger.network
        self.db = db
        self.blobs = blobs
        self.soft = soft
        """This node's soft-state candidates (what a job's feasibility is judged on)."""
        self.jobs: dict[bytes, LocalJob] = {}
        for _, raw in db.scan(NS_JOBS):
            j = LocalJob.from_bytes(raw)
            self.jobs[j.id] = j
        for key, _ in db.scan(NS_CERTS):
            jid, task = key[:32], int.from_bytes(key[32:36], "big")
            if jid in self.jobs:
                self.jobs[jid].certified.add(task)
        self.tally = VoteTally(self.network)
        self._settled: set[bytes] = set()
        """Jobs that ended with every accepted task certified: never asked about again."""
        self._fetch_send, self._fetch_recv = trio.open_memory_channel[tuple[bytes, int, ResultVote]](100_000)
        self._taking = trio.Semaphore(HAND_OVER_FETCHES)
        self.fetched = 0
        self.checkpoints_taken = 0
        self._checkpoints: dict[tuple[bytes, int], list[bytes]] = {}
        self.pins = JobPins(db, blobs.store)
        """Module, input and checkpoint blobs held while their job runs (across restarts)."""
        self.pins.restore(self.jobs)

    # -- submitting -----------------------------------------------------------------------------

    def assess(self, needs: Needs) -> Verdict:
        candidates, members = self.soft.candidates(), self.ledger.member_count()
        return assess(needs, candidates, members)

    async def submit_job(self, spec: JobSpec) -> tuple[LocalJob, dict[str, Any]]:
        """Submit ``spec``; the reply holds ``error`` when the committee refused it. A job no
        current network can place is refused here (``Unplaceable``), before anything is kept."""
        verdict = self.assess(needs_of(spec))
        if verdict.refuse:
            raise Unplaceable(verdict.refuse)
        op, more, blobs = to_submit(spec, int.from_bytes(os.urandom(8), "big"))
        digests = [self.blobs.store.put(data, pin=True) for data in blobs]
        jid = job_id(self.identity.public_key, ops.encode_op(op))
        self.pins.hold(jid, digests)
        shard = self.ledger.shard_of(jid)
        reply = await self.ledger.order(shard, op)
        first = len(op.inputs)
        for chunk in more:
            if "error" in reply:
                break
            reply = dict(await self.ledger.order(shard, ops.AddInputs(jid, first, chunk)), job=jid)
            first += len(chunk)
        if "error" in reply:
            self.pins.release(jid)
            return LocalJob(jid, spec.name, shard, len(spec.inputs), 0, spec.combine, spec.source), reply
        job = LocalJob(reply["job"], spec.name, shard, len(spec.inputs), int(self.clock.wall() * 1000),
                       spec.combine, spec.source, list(dataclasses.astuple(needs_of(spec)))[:3])
        with self.db.transaction():
            self.db.put(NS_JOBS, job.id, job.to_bytes())
        self.jobs[job.id] = job
        return job, reply

    # -- certificates ---------------------------------------------------------------------------

    def on_vote(self, sender: bytes, v: ResultVote) -> None:
        job = self.jobs.get(v.job)
        if job is None or v.task in job.certified:
            return
        cert = self.tally.add(sender, v, self.ledger.committee_of(v.shard, v.epoch))
        if cert is None:
            return
        import json

        key = v.job + v.task.to_bytes(4, "big")
        with self.db.transaction():
            self.db.put(NS_CERTS, key, json.dumps(cert.to_json()).encode())
            self.db.put(NS_CERTS + "-workers", key, packb(list(v.workers)))
        job.certified.add(v.task)
        kept = self._checkpoints.pop((v.job, v.task), None)
        if kept:  # the task is done: nobody will resume it
            self.pins.release(v.job, kept)
        try:
            self._fetch_send.send_nowait((v.job, v.task, v))
        except trio.WouldBlock:
            pass  # fetched on demand by `result`

    async def take_output(self, worker: str, m: OutputReady) -> bool:
        """A worker's output of one of our tasks is ready: fetch it now, while that worker is
        surely up (the certificate, later, says whether it is the accepted one)."""
        job = self.jobs.get(m.job)
        if job is None or m.task >= job.tasks or m.task in job.certified or m.output_size > MAX_OUTPUT:
            return False
        if self.blobs.store.has(m.output_hash):
            # Another replica handed the same output over (or we ran one ourselves): nothing
            # to fetch, but this worker's link to us may be unmeasured, and the next round of
            # an FL job plans its level on it.
            await self._measure_link(worker, m.output_hash)
            return True
        async with self._taking:
            fetched = await self._fetch_output(m.output_hash, m.output_size, (worker,)) is not None
        if fetched:
            # One fetch is one size: the link's latency and throughput are told apart only by
            # a second size (``LinkTable.fit``), which an FL round's outputs of one level never
            # give. Until then its throughput holds the per-request cost.
            await self._measure_link(worker, m.output_hash)
        return fetched

    async def _measure_link(self, worker: str, digest: bytes) -> None:
        """Probe ``worker``'s link on an output we hold while it wants samples (the blob
        service decides), before we answer its ``OutputReady``: it is between tasks then, so
        the probe shares its line with nothing of ours (its next task's fetches wait)."""
        if self.blobs.links.wants_samples(worker, time.monotonic()):
            async with self._taking:
                await self.blobs.measure(worker, digest)

    async def take_checkpoint(self, worker: str, m: CheckpointReady) -> bool:
        """A worker took a checkpoint of one of our tasks: fetch and keep its bytes, so the
        task can resume on another volunteer (who checks them against the ledger's agreed
        digest). The last ``KEEP_CHECKPOINTS`` a task sent stay pinned; older ones are left
        to the blob store's eviction."""
        job = self.jobs.get(m.job)
        mib = job.needs[1] if job is not None and len(job.needs) > 1 else 0
        bound = (mib << 20) + MAX_OUTPUT + (2 << 20)
        if job is None or m.task >= job.tasks or m.task in job.certified or m.size > bound:
            return False
        kept = self._checkpoints.setdefault((m.job, m.task), [])
        if not self.blobs.store.has(m.blob):
            async with self._taking:
                try:
                    await self.blobs.fetch(m.blob, [worker], max_size=max(m.size, 1))
                except BlobUnavailable as err:
                    log.info("checkpoint %d of task %d not fetched: %s", m.seq, m.task, err)
                    return False
        if m.blob not in kept:
            self.pins.hold(m.job, [m.blob])
            kept.append(m.blob)
            self.pins.release(m.job, kept[:-KEEP_CHECKPOINTS])
            del kept[:-KEEP_CHECKPOINTS]
        self.checkpoints_taken += 1
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ask_votes_loop)
            task_status.started()
            async for jid, task, vote in self._fetch_recv:
                await self._fetch_output(vote.output_hash, vote.output_size, vote.workers)
                if vote.stderr_size:
                    await self._fetch_output(vote.stderr_hash, vote.stderr_size, vote.workers)

    async def _ask_votes_loop(self) -> None:
        while True:
            await trio.sleep(ASK_VOTES_S)
            await self.ask_votes()

    async def ask_votes(self) -> int:
        """Votes for an accepted task reach us only while we are online: ask the committee to
        vote again for the tasks we hold no certificate for (``AskVotes``). Returns the
        number of jobs asked about; a job is left alone once it ended with nothing missing."""
        asked = 0
        for job in list(self.jobs.values()):
            if job.id in self._settled:
                continue
            tasks = missing(job.tasks, job.certified)
            if not tasks:
                self._settle(job.id)
                continue
            reply = await self._ask_votes(job, tasks)
            if reply is None:
                continue
            asked += 1
            if "no job" in str(reply.get("error", "")) or (
                    reply.get("asked") == 0 and reply.get("state") not in ("open", "loading")):
                self._settle(job.id)
        return asked

    async def gather_votes(self, jid: bytes, wait_s: float = GATHER_VOTES_S) -> int:
        """Before ``result`` writes a job out: ask the committee to vote again for its
        accepted tasks this node holds no certificate for (``watch`` may say "done" while the
        last votes are still on their way) and wait up to ``wait_s`` for them. Returns how
        many tasks were still missing a certificate when the wait ended."""
        job = self.jobs.get(jid)
        if job is None:
            return 0
        tasks = missing(job.tasks, job.certified)
        if not tasks:
            return 0
        reply = await self._ask_votes(job, tasks)
        if reply is None:
            return len(missing(job.tasks, job.certified))
        # Only accepted tasks are voted for; failed ones without a result never will be.
        want = len(tasks) - int(reply.get("asked", 0))
        if want < len(tasks):
            with trio.move_on_after(wait_s):
                while len(missing(job.tasks, job.certified)) > want:
                    await trio.sleep(0.1)  # votes arrive on their own stream (on_vote)
        return len(missing(job.tasks, job.certified))

    async def _ask_votes(self, job: LocalJob, tasks: tuple[int, ...]) -> dict[str, Any] | None:
        """Order ``AskVotes`` for ``tasks`` of ``job``; None (logged) when the committee could
        not be asked."""
        try:
            return await self.ledger.order(job.shard, ops.AskVotes(job.id, tasks))
        except DaemonError as err:
            log.info("could not ask for the votes of job %s: %s", job.id.hex()[:12], err)
            return None

    def _settle(self, jid: bytes) -> None:
        """The job ended with nothing missing: its blobs need not be kept for it any more."""
        self._settled.add(jid)
        freed = self.pins.release(jid)
        if freed:
            log.info("job %s ended: %d blob(s) no longer kept for it", jid.hex()[:12], freed)

    async def _fetch_output(self, digest: bytes, size: int, workers: tuple[str, ...]) -> bytes | None:
        try:
            data = await self.blobs.fetch(digest, list(workers), max_size=max(size, 1))
            self.fetched += 1
            return data
        except BlobUnavailable as err:
            log.warning("output %s not fetched yet: %s", digest.hex()[:12], err)
            return None

    def certificate(self, jid: bytes, task: int) -> ResultCertificate | None:
        import json

        raw = self.db.get(NS_CERTS, jid + task.to_bytes(4, "big"))
        return ResultCertificate.from_json(json.loads(raw)) if raw else None

    def workers_of(self, jid: bytes, task: int) -> tuple[str, ...]:
        raw = self.db.get(NS_CERTS + "-workers", jid + task.to_bytes(4, "big"))
        return tuple(unpackb(raw)) if raw else ()

    async def output(self, cert: ResultCertificate, workers: tuple[str, ...]) -> bytes | None:
        data = self.blobs.store.get(cert.output_hash)
        if data is None and workers:
            data = await self._fetch_output(cert.output_hash, cert.output_size, workers)
        return data

    async def stderr(self, cert: ResultCertificate, workers: tuple[str, ...]) -> bytes | None:
        """The task's agreed stderr, checked against its certificate (None: not fetched)."""
        if cert.agreed is None or not cert.stderr_size:
            return b""
        data = self.blobs.store.get(cert.stderr_hash)
        if data is None and workers:
            data = await self._fetch_output(cert.stderr_hash, cert.stderr_size, workers)
        return data if data is not None and hashlib.sha256(data).digest() == cert.stderr_hash else None

    def status(self) -> dict[str, Any]:
        return {"jobs": len(self.jobs), "outputs_fetched": self.fetched,
                "tasks_certified": sum(len(j.certified) for j in self.jobs.values())}
