"""What a shard committee member does for jobs, beyond ordering: it acts on its ledger.

After every committed batch the member drains its ledger's events (``JobLedger.drain_events``):

- ``Offered``  -> send a signed ``TaskOffer`` to the assigned worker (every member does, and the
                  worker waits for f+1 identical offers);
- ``Accepted`` -> sign the result statement and send a ``ResultVote`` to the submitter (2f+1
                  votes are the result's certificate);
- anything that opens replica slots -> propose placements: the primary at once; another member
  only as a fallback, when a job's slots stay open and nothing of that job was placed for
  ``PLACE_FALLBACK_S`` times its rank after the primary (``fallback_delay``): a silent primary
  must not stall jobs, but members racing a working primary only cost PBFT rounds of
  proposals refused as duplicates (they did, every 8 s, for every big job).

And on its own clock: a worker holding unreported replicas that this member has not been
connected to for ``UNREACHABLE_S`` is reported ``Unreachable`` (again every half
``UNREACHABLE_WINDOW_MS`` while it stays away); f+1 such reports release its replicas.

Placement candidates come from the soft state (``candidates()``: capability records turned
into ``CandidateWire``), reputation from the ledger itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import trio

from consensus.actions import Committed
from consensus.committee import DIRECTORY_SHARD
from daemon.committees.runner import ReplicaRunner
from daemon.jobs.ports import CandidateSource, Ledger, Peers
from daemon.ledger.certificate import sign_vote
from daemon.ledger.placing import (effective_load, expected_duration, job_is_resumable,
                                   majority_runtime, propose, task_runtime)
from daemon.ledger.events import Accepted, Offered
from daemon.ledger.records import Answer, Job, JobState
from daemon.ledger.checkpoints import resume_chain
from daemon.ledger.state import UNREACHABLE_WINDOW_MS, JobLedger
from protocol.canonical import packb
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.tasks import ResultVote, ResultVotes, TaskOffer, TaskOffers, TaskStatus

log = logging.getLogger("novacron.jobs")

PLACE_FALLBACK_S = 8.0
"""How long the member next after the primary waits, with slots open and nothing placed,
before it proposes itself; the one after it twice as long, and so on."""
UNREACHABLE_S = 15.0
"""Disconnected this long (the host redials known peers all along) and a worker is reported."""
UNREACHABLE_SCAN_S = 2.0
MAX_PLACE_OP_BYTES = 40_000
MAX_SLOTS_PER_PROPOSAL = 2048
"""Open tasks one placement round looks at. A round places only what the workers can queue
(``QUEUE_CAP`` tasks a slot), so looking at all 100,000 open tasks of a big job only blocked
the daemon for seconds (and its committee with it) to find no worker for the rest."""
FULL_AFTER_EMPTY = 16
"""Consecutive tasks that found no worker after which a round stops: every worker is full."""


def fallback_delay(runner: ReplicaRunner) -> float:
    """How long this member lets a job's slots stay open, with nothing placed, before it
    proposes placements itself: ``PLACE_FALLBACK_S`` times its rank after the current primary
    (1 for the next member, which would be the primary of the next view). The primary never
    waits. Deterministic, so a silent primary's job is taken up by one member, not all."""
    r = runner.replica
    n = len(runner.config.committee)
    rank = (r.me - r.primary) % n
    return PLACE_FALLBACK_S * rank


class MemberDuties:
    def __init__(self, identity: NodeIdentity, ledger: Ledger, peers: Peers,
                 soft: CandidateSource) -> None:
        self.identity = identity
        self.ledger = ledger
        self.network = ledger.network
        self.peers = peers
        self.soft = soft
        self.absent_since: dict[str, float] = {}
        """Workers with unreported replicas we are not connected to -> since when."""
        self._reported: dict[str, float] = {}
        self._scanned = 0.0
        self.unreachable_reports = 0
        self.offers_sent = 0
        self.votes_sent = 0
        self.proposals = 0
        self.open_since: dict[tuple[int, bytes], float] = {}
        self.placed_at: dict[tuple[int, bytes], float] = {}
        """(shard, job) -> when (by ``tick``'s clock) a committed batch last placed a replica of
        the job, anyone's proposal: a fallback proposer stays quiet while the primary places."""
        self._placed: set[tuple[int, bytes]] = set()
        """Jobs placed in batches committed since the last tick."""
        self._proposing: set[tuple[int, bytes]] = set()
        self.wake = trio.Event()
        """Set when a committed batch may have freed replica slots: propose now, not at the
        next tick (an idle worker waiting half a second per round was most of a job's time)."""

    # -- after each committed batch -----------------------------------------------------------

    def on_committed(self, shard: int, runner: ReplicaRunner, event: Committed) -> None:
        if shard == DIRECTORY_SHARD:
            return
        ledger: JobLedger = runner.machine.ledger
        offers: dict[str, list[TaskOffer]] = {}
        votes: dict[str, list[ResultVote]] = {}
        for ev in ledger.drain_events():
            if isinstance(ev, Offered):
                self._placed.add((shard, ev.job))
                offers.setdefault(ev.worker, []).append(
                    self._offer(runner, ledger.jobs[ev.job], ev.task, ev.replica))
            elif isinstance(ev, Accepted):
                job = ledger.jobs[ev.job]
                votes.setdefault(job.submitter, []).append(self._vote(runner, job, ev.task, ev.answer))
        if event.requests:
            self.wake.set()
        # One message per worker and per submitter for the whole batch: fewer, fuller frames.
        for worker, batch in offers.items():
            for i in range(0, len(batch), 256):
                self.peers.send(worker, TaskOffers(tuple(batch[i:i + 256])))
            self.offers_sent += len(batch)
        for submitter, vbatch in votes.items():
            for i in range(0, len(vbatch), 256):
                self.peers.send(submitter, ResultVotes(tuple(vbatch[i:i + 256])))
            self.votes_sent += len(vbatch)

    def _offer(self, runner: ReplicaRunner, job: Job, task: int, replica: int) -> TaskOffer:
        t = job.tasks[task]
        s = job.spec
        return TaskOffer(runner.config.shard, runner.config.epoch, job.id, task, replica,
                         job.submitter, s.module_hash, s.module_size, t.input.hash, t.input.size,
                         t.input.inline, s.argv, s.fuel, s.memory_pages, s.wall_ms, s.max_output,
                         job.clock_ns, t.replicas[replica].lease_ms, t.runtime or s.runtime,
                         ops.checkpoint_interval(s), *resume_chain(t.checkpoints))

    def _vote(self, runner: ReplicaRunner, job: Job, task: int, winner: Answer) -> ResultVote:
        status, output_hash, size, exit_code, stderr_hash, stderr_size = winner
        t = job.tasks[task]
        cfg = runner.config
        workers = tuple(r.worker for r in t.replicas if r.result == winner)
        sig = sign_vote(self.identity, self.network, cfg.shard, cfg.epoch, t.accepted_seq, job.id,
                        task, status, exit_code, output_hash, size, len(set(workers)),
                        stderr_hash, stderr_size)
        return ResultVote(cfg.shard, cfg.epoch, t.accepted_seq, job.id, task, TaskStatus(status),
                          exit_code, output_hash, size, workers, stderr_hash, stderr_size, sig)

    # -- placement ------------------------------------------------------------------------------

    def tick(self, nursery: trio.Nursery, runners: list[ReplicaRunner], now: float) -> None:
        if now - self._scanned >= UNREACHABLE_SCAN_S:
            self._scanned = now
            self._report_unreachable(nursery, runners, now)
        for key in self._placed:
            self.placed_at[key] = now
        self._placed.clear()
        for runner in runners:
            ledger: JobLedger = runner.machine.ledger
            shard = runner.config.shard
            for job in ledger.jobs.values():
                key = (shard, job.id)
                if job.state != JobState.OPEN or key in self._proposing:
                    continue
                slots = list(islice((i for i, t in job.open_tasks()
                                     if ledger.open_slots(job, t)), MAX_SLOTS_PER_PROPOSAL))
                if not slots:
                    self.open_since.pop(key, None)
                    self.placed_at.pop(key, None)
                    continue
                since = max(self.open_since.setdefault(key, now), self.placed_at.get(key, 0.0))
                if runner.replica.is_primary or now - since >= fallback_delay(runner):
                    self._proposing.add(key)
                    nursery.start_soon(self._propose, shard, ledger, job, slots, key)

    def _report_unreachable(self, nursery: trio.Nursery, runners: list[ReplicaRunner],
                            now: float) -> None:
        held: dict[str, list[int]] = {}  # worker -> shards where it holds unreported replicas
        for runner in runners:
            for worker in runner.machine.ledger.pending_by_worker():
                held.setdefault(worker, []).append(runner.config.shard)
        connected = set(self.peers.connected()) | {self.identity.node_id}
        for worker in list(self.absent_since):
            if worker not in held or worker in connected:
                del self.absent_since[worker]
                self._reported.pop(worker, None)
        for worker, shards in held.items():
            if worker in connected:
                continue
            since = self.absent_since.setdefault(worker, now)
            last = self._reported.get(worker)
            if now - since >= UNREACHABLE_S and (
                    last is None or now - last >= UNREACHABLE_WINDOW_MS / 2000):
                self._reported[worker] = now
                log.info("worker %s unreachable for %.0f s: reporting it", worker, now - since)
                for shard in shards:
                    nursery.start_soon(self._send_unreachable, shard, worker)

    async def _send_unreachable(self, shard: int, worker: str) -> None:
        try:
            reply = await self.ledger.order(shard, ops.Unreachable(worker))
        except Exception as err:  # noqa: BLE001 - a background report: the next scan retries
            log.info("could not report worker %s unreachable: %s", worker, err)
            self._reported.pop(worker, None)
            return
        self.unreachable_reports += 1
        if reply.get("released"):
            log.info("released %d replicas of unreachable worker %s", reply["released"], worker)

    async def _propose(self, shard: int, ledger: JobLedger, job: Job, slots: list[int],
                       key: tuple[int, bytes]) -> None:
        placed_any = False
        try:
            pending = ledger.pending_by_worker()
            # A worker's load: what its record says, or what the ledger has queued on it,
            # whichever is higher (the two count the same tasks, seen from two sides).
            cands = tuple(
                dataclasses.replace(c, load_permille=max(c.load_permille, int(1000 * effective_load(
                    0.0, c.cores, pending.get(c.node_id, 0)))))
                for c in self.soft.candidates())
            if not cands:
                log.info("no candidate workers known yet for job %s", job.id.hex()[:12])
                return
            now_ms = max(ledger.now_ms, int(time.time() * 1000))
            batch: list[ops.TaskAssignment] = []
            extra: Counter[str] = Counter()
            duration = expected_duration(job.spec, job.runtimes_ms, job_is_resumable(job))
            empty = ops.Place(job.id, now_ms, duration[0], cands, ())
            majority = majority_runtime(cands, job.spec.runtime)
            size = len(packb([ops.encode_op(empty)]))
            empty_in_a_row = 0
            for k, i in enumerate(slots):
                if k % 64 == 63:
                    await trio.sleep(0)  # let consensus and the control socket run meanwhile
                t = job.tasks[i]
                n = ledger.open_slots(job, t)
                if n == 0:
                    continue
                used = {r.worker for r in t.replicas}
                if batch and size > MAX_PLACE_OP_BYTES:
                    await self._send_place(shard, empty, batch)
                    placed_any = True
                    batch, extra = [], Counter()
                    size = len(packb([ops.encode_op(empty)]))
                placement, assignment = propose(job.id, i, job.spec, n, cands, used,
                                                ledger.workers, now_ms, duration,
                                                task_runtime(t, majority), extra)
                if not assignment.workers:
                    empty_in_a_row += 1
                    if empty_in_a_row >= FULL_AFTER_EMPTY:
                        break
                    continue
                empty_in_a_row = 0
                size += len(packb(assignment.explanation)) + 80 * len(assignment.workers) + 16
                batch.append(assignment)
                extra.update(assignment.workers)
            if batch:
                await self._send_place(shard, empty, batch)
                placed_any = True
        except Exception as err:  # noqa: BLE001 - a background proposal: log and retry next tick
            log.warning("placement proposal for job %s failed: %s", job.id.hex()[:12], err)
        finally:
            self._proposing.discard(key)
            self.open_since[key] = time.monotonic()
            if placed_any:
                # Slots may have opened while we proposed. (After a round that found every
                # worker full, the next committed result wakes us: waking at once here made
                # the primary re-run fruitless rounds back to back for a big job.)
                self.wake.set()

    async def _send_place(self, shard: int, empty: ops.Place, batch: list[ops.TaskAssignment]) -> None:
        """Send ``empty`` (the job, time, duration and candidates) with ``batch`` assigned."""
        reply = await self.ledger.order(shard, dataclasses.replace(empty, assignments=tuple(batch)))
        self.proposals += 1
        if reply.get("refused"):
            log.info("placement for job %s: %d placed, refused %s", empty.job.hex()[:12],
                     reply.get("placed", 0), reply["refused"][:3])

    def status(self) -> dict[str, Any]:
        return {"offers_sent": self.offers_sent, "votes_sent": self.votes_sent,
                "placements_proposed": self.proposals,
                "unreachable_reports": self.unreachable_reports}
