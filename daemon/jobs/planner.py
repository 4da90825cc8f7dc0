"""What a shard committee member decides for jobs, as pure functions of its ledger and clock.

The trio shell (``daemon.jobs.member.MemberDuties``) and the job simulator
(``testnet.job_sim``) run this same code; the shell only sends what it returns.

- ``announce``       -- after a committed batch: the offers to send to workers and the signed
                        result votes to send to submitters (again when a submitter asks,
                        ``AskVotes``), from the ledger's events.
- ``ProposalTimer``  -- which jobs this member proposes placements for now: the primary at
                        once; another member only when a job's slots stay open and nothing
                        of it was placed for ``PLACE_FALLBACK_S`` times its rank after the
                        primary (a silent primary must not stall jobs, but members racing a
                        working primary only cost PBFT rounds of refused proposals).
- ``placements``     -- the ``Place`` operations for one job's open slots (a generator that
                        also yields ``None`` where the shell may let other tasks run).
- ``AbsenceWatch``   -- which workers to report ``Unreachable``, and to which shards.
- ``OfferResends``   -- offers to send again: replicas whose worker reported nothing a while
                        after their placement (the offers may not have reached it).

Time comes in as arguments: ``now`` (monotonic seconds) and ``now_ms`` (wall-clock ms).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from daemon.ledger.certificate import sign_vote
from daemon.ledger.events import Accepted, LedgerEvent, Offered, VotesAsked
from daemon.ledger.checkpoints import resume_chain
from daemon.ledger.placing import (effective_load, expected_duration, job_is_resumable,
                                   majority_runtime, propose, retried_workers, task_runtime,
                                   used_workers)
from daemon.ledger.records import Answer, Job, JobState, ReplicaOutcome, Task
from daemon.ledger.state import UNREACHABLE_WINDOW_MS, JobLedger
from protocol.canonical import packb
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.tasks import MAX_MIRRORS, ResultVote, TaskOffer, TaskStatus
from protocol.schema import encode_body

PLACE_FALLBACK_S = 8.0
"""How long the member next after the primary waits, with slots open and nothing placed,
before it proposes itself; the one after it twice as long, and so on. At least
``FALLBACK_ORDERINGS`` times what ordering a request takes now (``fallback_s``)."""
FALLBACK_ORDERINGS = 3
"""A busy committee takes seconds to order each request: on a 30-daemon testnet 3-15 s
during a job, so the primary's proposal was still being ordered when the 8 s fallback ran
out, and the next two members proposed the same tasks (17 of 42 proposals, nearly all
refused as "needs no replica", each a batch the committee ordered for nothing)."""


def fallback_s(ordering_s: float) -> float:
    """The fallback delay of rank 1 when ordering a request takes ``ordering_s``."""
    return max(PLACE_FALLBACK_S, FALLBACK_ORDERINGS * ordering_s)


UNREACHABLE_S = 15.0
"""Disconnected this long (the host redials known peers all along) and a worker is reported."""
UNREACHABLE_SCAN_S = 2.0
LOST_FORGET_S = 900.0
"""How long a member shuns a worker it lost (``AbsenceWatch.lost``) unless it reconnects: longer
than a small network's soft-state live window (two 5-minute refreshes and a minute), so a
crashed volunteer's record has gone stale by then."""
MAX_LOST = 4096
MAX_PLACE_OP_BYTES = 40_000
OFFER_RESEND_S = 20.0
"""A replica whose worker has reported neither a start nor a result this long after its
placement (ledger time) is offered again by every member, then after twice as long each
time, up to ``OFFER_RESEND_MAX_S``. Offers were sent once, after the placing batch, and a
worker runs one only when f+1 members' copies arrived: on a 30-daemon planet testnet a
member on a 0.65 Mbit/s uplink never got enough of them, and its replica held the task until
its lease ended (twice the wall-clock limit), the last 300 s of a 480 s job."""
OFFER_RESEND_MAX_S = 160.0
OFFER_RESEND_SCAN_S = 5.0
"""How often a member looks for such replicas (a walk over the open tasks of each job)."""
MAX_SLOTS_PER_PROPOSAL = 2048
"""Open tasks one placement round looks at. A round places only what the workers can queue
(``QUEUE_CAP`` tasks a slot), so looking at all 100,000 open tasks of a big job only blocked
the daemon for seconds (and its committee with it) to find no worker for the rest."""
FULL_AFTER_EMPTY = 16
"""Consecutive tasks that found no worker after which a round stops: every worker is full."""
YIELD_EVERY = 64
"""Tasks placed between two pauses of ``placements`` (the shell lets consensus run)."""


# -- after each committed batch ---------------------------------------------------------------


@dataclass
class Announcements:
    offers: dict[str, list[TaskOffer]] = field(default_factory=dict)
    """Worker node id -> offers for it."""
    votes: dict[str, list[ResultVote]] = field(default_factory=dict)
    """Submitter node id -> signed votes for its accepted tasks."""
    placed: set[bytes] = field(default_factory=set)
    """Jobs of which a replica was placed (by anyone's proposal): ``ProposalTimer.placed``."""


def announce(events: Iterable[LedgerEvent], ledger: JobLedger, shard: int, epoch: int,
             identity: NodeIdentity, network: str) -> Announcements:
    out = Announcements()
    holders: dict[bytes, list[str]] = {}
    for ev in events:
        if isinstance(ev, Offered):
            out.placed.add(ev.job)
            job = ledger.jobs[ev.job]
            if ev.job not in holders:
                holders[ev.job] = job_holders(job)
            out.offers.setdefault(ev.worker, []).append(
                offer(job, ev.task, ev.replica, shard, epoch, holders[ev.job]))
        elif isinstance(ev, Accepted):
            job = ledger.jobs[ev.job]
            out.votes.setdefault(job.submitter, []).append(
                vote(identity, network, job, ev.task, ev.answer, shard, epoch))
        elif isinstance(ev, VotesAsked) and ev.job in ledger.jobs:
            job = ledger.jobs[ev.job]
            for i in ev.tasks:
                answer = job.tasks[i].accepted
                if answer is not None:
                    out.votes.setdefault(job.submitter, []).append(
                        vote(identity, network, job, i, answer, shard, epoch))
    return out


MAX_PER_MESSAGE = 256
MESSAGE_BYTES = 128 * 1024
"""Offers (or votes) per message stop at this many encoded bytes, well under a frame: an
offer may carry 16 KB of argv, and 256 such in one message could not be sent at all."""


def in_messages(items: Iterable[Any], limit: int = MAX_PER_MESSAGE,
                budget: int = MESSAGE_BYTES) -> Iterator[tuple[Any, ...]]:
    """``items`` in groups of at most ``limit`` and ``budget`` encoded bytes (an item larger
    than the budget alone goes alone: the schema bounds it)."""
    group: list[Any] = []
    size = 0
    for item in items:
        n = len(packb(encode_body(item, validate=False)))
        if group and (len(group) >= limit or size + n > budget):
            yield tuple(group)
            group, size = [], 0
        group.append(item)
        size += n
    if group:
        yield tuple(group)


def offer(job: Job, task: int, replica: int, shard: int, epoch: int,
          holders: list[str] | None = None) -> TaskOffer:
    """``holders``: ``job_holders(job)``, if the caller has it (one scan for many offers)."""
    t = job.tasks[task]
    s = job.spec
    earlier = mirrors(t, replica)
    return TaskOffer(shard, epoch, job.id, task, replica, job.submitter, s.module_hash,
                     s.module_size, t.input.hash, t.input.size, t.input.inline, s.argv, s.fuel,
                     s.memory_pages, s.wall_ms, s.max_output, job.clock_ns,
                     t.replicas[replica].lease_ms, t.runtime or s.runtime,
                     ops.checkpoint_interval(s), *resume_chain(t.checkpoints),
                     mirrors=earlier,
                     holders=module_holders(job_holders(job) if holders is None else holders,
                                            {t.replicas[replica].worker, *earlier}, task))


def mirrors(task: Task, replica: int) -> tuple[str, ...]:
    """Workers of ``task``'s earlier replicas that hold its module and input: those that
    reported a result, then those still running it, latest first, at most ``MAX_MIRRORS``
    (from the ledger, so every member offers the same). One whose replica ended without a
    result may never have fetched them (the worker that could not reach the submitter)."""
    me = task.replicas[replica].worker
    earlier = list(reversed(task.replicas[:replica]))
    ran = [r.worker for r in earlier if r.result is not None]
    running = [r.worker for r in earlier if r.result is None and r.started
               and r.outcome == ReplicaOutcome.PENDING]
    out: list[str] = []
    for w in ran + running:
        if w != me and w not in out:
            out.append(w)
    return tuple(out[:MAX_MIRRORS])


HOLDER_SCAN_TASKS = 256
"""Tasks looked at for workers that hold a job's module (its first ones: a bounded walk)."""
MAX_HOLDERS = 32


def job_holders(job: Job) -> list[str]:
    """Up to ``MAX_HOLDERS`` workers that reported a result for one of the job's first
    ``HOLDER_SCAN_TASKS`` tasks: they fetched its module. On a 30-daemon planet testnet the
    submitter's 1.1 Mbit/s uplink served a 46 KB module to every worker itself: 57 of 257
    replicas gave up after three rounds of fetching (70 s) and crashed."""
    found: dict[str, None] = {}
    for t in islice(job.tasks, HOLDER_SCAN_TASKS):
        for r in t.replicas:
            if r.result is not None:
                found[r.worker] = None
                if len(found) >= MAX_HOLDERS:
                    return list(found)
    return list(found)


def module_holders(holders: list[str], skip: set[str], task: int) -> tuple[str, ...]:
    """The ``holders`` (``job_holders``) an offer names: up to ``MAX_MIRRORS``, none in ``skip``
    (the replica's worker and the task's own ``mirrors``), taken from the list from ``task``
    on (modulo its length), so the tasks of a wave ask different holders. From the ledger, so
    every member offers the same."""
    found = [w for w in holders if w not in skip]
    if not found:
        return ()
    k = task % len(found)
    return tuple((found[k:] + found[:k])[:MAX_MIRRORS])


def vote(identity: NodeIdentity, network: str, job: Job, task: int, winner: Answer, shard: int,
         epoch: int) -> ResultVote:
    status, output_hash, size, exit_code, stderr_hash, stderr_size = winner
    t = job.tasks[task]
    workers = tuple(r.worker for r in t.replicas if r.result == winner)
    sig = sign_vote(identity, network, shard, epoch, t.accepted_seq, job.id, task, status,
                    exit_code, output_hash, size, len(set(workers)), stderr_hash, stderr_size)
    return ResultVote(shard, epoch, t.accepted_seq, job.id, task, TaskStatus(status), exit_code,
                      output_hash, size, workers, stderr_hash, stderr_size, sig)


# -- placement --------------------------------------------------------------------------------

Key = tuple[int, bytes]
"""(shard, job id)."""


def rank(me: int, primary: int, n: int) -> int:
    """This member's rank after the current primary (0: it is the primary; 1: the primary of
    the next view)."""
    return (me - primary) % n


@dataclass
class ProposalTimer:
    """Which jobs need a proposal from this member now."""

    open_since: dict[Key, float] = field(default_factory=dict)
    proposing: set[Key] = field(default_factory=set)
    placed_at: dict[Key, float] = field(default_factory=dict)
    """When (by ``due``'s clock) a committed batch last placed a replica of the job, anyone's
    proposal: a fallback proposer stays quiet while the primary places."""
    _placed: set[Key] = field(default_factory=set)
    """Jobs placed in batches committed since the last ``due``."""

    def placed(self, key: Key) -> None:
        """A committed batch placed a replica of ``key``'s job (``Announcements.placed``)."""
        self._placed.add(key)

    def due(self, shard: int, ledger: JobLedger, rank: int, now: float, ordering_s: float = 0.0
            ) -> list[tuple[Key, Job, list[int]]]:
        """(key, job, open task indices) for each job to propose for now; each is marked
        in flight until ``finished``. ``rank``: this member's, after the primary (``rank``):
        deterministic, so a silent primary's job is taken up by one member, not all;
        ``ordering_s``: what ordering a request takes now (``fallback_s``)."""
        for key in self._placed:
            self.placed_at[key] = now
        self._placed.clear()
        out = []
        for job in ledger.jobs.values():
            key = (shard, job.id)
            if job.state != JobState.OPEN or key in self.proposing:
                continue
            slots = list(islice((i for i, t in job.open_tasks() if ledger.open_slots(job, t)),
                                MAX_SLOTS_PER_PROPOSAL))
            if not slots:
                self.open_since.pop(key, None)
                self.placed_at.pop(key, None)
                continue
            since = max(self.open_since.setdefault(key, now), self.placed_at.get(key, 0.0))
            if rank == 0 or now - since >= fallback_s(ordering_s) * rank:
                self.proposing.add(key)
                out.append((key, job, slots))
        return out

    def finished(self, key: Key, now: float) -> None:
        """The proposal for ``key`` is done (ordered, refused or failed): the fallback waits
        ``fallback_s`` from now before this member proposes for it again."""
        self.proposing.discard(key)
        self.open_since[key] = now


def loaded_candidates(candidates: Iterable[ops.CandidateWire], pending: Mapping[str, int]
                      ) -> tuple[ops.CandidateWire, ...]:
    """A worker's load: what its record says, or what the ledger has queued on it, whichever
    is higher (the two count the same tasks, seen from two sides)."""
    return tuple(
        dataclasses.replace(c, load_permille=max(c.load_permille, int(1000 * effective_load(
            0.0, c.cores, pending.get(c.node_id, 0)))))
        for c in candidates)


OUTPUT_SAMPLE_TASKS = 256
"""Tasks looked at for a job's typical output size (its first ones: a bounded walk)."""


def expected_output_bytes(job: Job) -> int:
    """The median output size of the job's accepted tasks among its first
    ``OUTPUT_SAMPLE_TASKS`` (0 before any): what a worker's link to the submitter must carry,
    so placement can count the time (``daemon.softstate.candidates.with_link_costs``)."""
    sizes = sorted(t.accepted.output_size for t in islice(job.tasks, OUTPUT_SAMPLE_TASKS)
                   if t.accepted is not None)
    return sizes[len(sizes) // 2] if sizes else 0


def placements(ledger: JobLedger, job: Job, slots: list[int],
               candidates: tuple[ops.CandidateWire, ...], now_ms: int
               ) -> Iterator[ops.Place | None]:
    """The ``Place`` operations for ``slots`` of ``job`` (each under ``MAX_PLACE_OP_BYTES``),
    and ``None`` every ``YIELD_EVERY`` tasks. The shell orders each ``Place`` before asking
    for the next, so later tasks see the slots the earlier ones filled."""
    cands = loaded_candidates(candidates, ledger.pending_by_worker())
    if not cands:
        return
    now_ms = max(ledger.now_ms, now_ms)
    batch: list[ops.TaskAssignment] = []
    extra: Counter[str] = Counter()
    duration = expected_duration(job.spec, job.runtimes_ms, job_is_resumable(job))
    basis = ledger.basis.latest
    reputation = ledger.basis.reputations(basis, ledger.workers) or {}
    empty = ops.Place(job.id, now_ms, duration[0], cands, (), basis)
    majority = majority_runtime(cands, job.spec.runtime)
    base = len(packb([ops.encode_op(empty)]))
    size = base
    empty_in_a_row = 0
    for k, i in enumerate(slots):
        if k % YIELD_EVERY == YIELD_EVERY - 1:
            yield None
        t = job.tasks[i]
        n = ledger.open_slots(job, t)
        if n == 0:
            continue
        used = used_workers(t)
        if batch and size > MAX_PLACE_OP_BYTES:
            yield dataclasses.replace(empty, assignments=tuple(batch))
            batch, extra, size = [], Counter(), base
        _, assignment = propose(job.id, i, job.spec, n, cands, used, reputation, now_ms,
                                duration, task_runtime(t, majority), extra, retried_workers(t))
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
        yield dataclasses.replace(empty, assignments=tuple(batch))


# -- unreachable workers ----------------------------------------------------------------------


def held_replicas(ledgers: Iterable[tuple[int, JobLedger]]) -> dict[str, list[int]]:
    """Worker -> the shards where it holds replicas it has not reported yet."""
    held: dict[str, list[int]] = {}
    for shard, ledger in ledgers:
        for worker in ledger.pending_by_worker():
            held.setdefault(worker, []).append(shard)
    return held


@dataclass
class AbsenceWatch:
    """Workers holding our replicas that we are not connected to: reported ``Unreachable``
    once ``UNREACHABLE_S`` apart, then again every half ``UNREACHABLE_WINDOW_MS`` while away.

    It also remembers the workers that went while they held replicas and are still away
    (``lost``), so this member does not propose them again (``shunned``). Soft state cannot
    tell: a crashed volunteer's capability record stays fresh for minutes (two refresh periods),
    so without this a task whose worker was killed could be placed on the same dead worker
    again, wait for its release, and again, until its ``max_replicas`` were spent (a task
    failed ``NO_RESULT`` this way while three live volunteers were free). A lost worker is
    forgiven once connected again (a restarted volunteer takes work at once), or after
    ``LOST_FORGET_S``."""

    absent_since: dict[str, float] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)
    lost: dict[str, float] = field(default_factory=dict)
    """Worker -> since when it has been away, for workers whose replicas were released."""
    scanned: float = float("-inf")

    def due(self, now: float) -> bool:
        """Time for a scan (every ``UNREACHABLE_SCAN_S``)?"""
        if now - self.scanned < UNREACHABLE_SCAN_S:
            return False
        self.scanned = now
        return True

    def scan(self, held: Mapping[str, list[int]], connected: set[str], now: float
             ) -> list[tuple[int, str]]:
        """(shard, worker) reports to send now."""
        for worker in list(self.absent_since):
            if worker in connected:
                del self.absent_since[worker]
                self.reported.pop(worker, None)
            elif worker not in held:  # its replicas were released while it stayed away
                since = self.absent_since.pop(worker)
                if worker in self.reported:
                    self.lost[worker] = since
                self.reported.pop(worker, None)
        for worker, since in list(self.lost.items()):
            if worker in connected or now - since >= LOST_FORGET_S:
                del self.lost[worker]
        while len(self.lost) > MAX_LOST:  # oldest first: a bound, not a policy
            del self.lost[min(self.lost, key=self.lost.__getitem__)]
        out = []
        for worker, shards in held.items():
            if worker in connected:
                continue
            since = self.absent_since.setdefault(worker, now)
            last = self.reported.get(worker)
            if now - since >= UNREACHABLE_S and (
                    last is None or now - last >= UNREACHABLE_WINDOW_MS / 2000):
                self.reported[worker] = now
                out += [(shard, worker) for shard in shards]
        return out

    def shunned(self, connected: set[str]) -> set[str]:
        """Workers this member will not propose: reported gone (holding replicas or after)
        and not connected since."""
        return (set(self.reported) | set(self.lost)) - connected

    def failed(self, worker: str) -> None:
        """A report could not be sent: the next scan tries again."""
        self.reported.pop(worker, None)


ResendKey = tuple[int, bytes, int, int]
"""(shard, job, task, replica)."""


@dataclass
class OfferResends:
    """Which offers to send again now (``OFFER_RESEND_S``). Every member computes the same
    times from the ledger (placement time and ledger clock), so the copies a worker gets again
    come from many members at about once, and an offer is rebuilt from the ledger as it was
    first built (``offer``): copies of members at the same ledger state are identical."""

    due_ms: dict[ResendKey, tuple[int, int]] = field(default_factory=dict)
    """Key -> (ledger time of its next re-send, the wait after that one)."""
    scanned_at: dict[int, float] = field(default_factory=dict)

    def due(self, shard: int, epoch: int, ledger: JobLedger, now: float
            ) -> dict[str, list[TaskOffer]]:
        """Worker -> the offers to send it again now (empty between scans)."""
        if now - self.scanned_at.get(shard, float("-inf")) < OFFER_RESEND_SCAN_S:
            return {}
        self.scanned_at[shard] = now
        first, cap = int(OFFER_RESEND_S * 1000), int(OFFER_RESEND_MAX_S * 1000)
        out: dict[str, list[TaskOffer]] = {}
        holders: dict[bytes, list[str]] = {}
        kept: dict[ResendKey, tuple[int, int]] = {k: v for k, v in self.due_ms.items()
                                                  if k[0] != shard}
        for job, task, replica, worker in ledger.unstarted(ledger.now_ms - first):
            key = (shard, job.id, task, replica)
            placed = job.tasks[task].replicas[replica].placed_ms
            at, wait = self.due_ms.get(key, (placed + first, first))
            if ledger.now_ms >= at:
                if job.id not in holders:
                    holders[job.id] = job_holders(job)
                out.setdefault(worker, []).append(offer(job, task, replica, shard, epoch,
                                                        holders[job.id]))
                wait = min(2 * wait, cap)
                at = ledger.now_ms + wait
            if len(kept) < MAX_RESEND_KEYS:
                kept[key] = (at, wait)
        self.due_ms = kept
        return out


MAX_RESEND_KEYS = 65_536
"""Replicas whose re-send times are kept at most (beyond it one is simply sent again at the
first wait: bounded memory, never a missed offer)."""
