"""What a shard committee member does for jobs, beyond ordering: it acts on its ledger.

The decisions are ``daemon.jobs.planner``'s (pure, shared with the job simulator); this shell
carries them out:

- after every committed batch, the offers (``TaskOffer``, every member sends them and the
  worker waits for f+1 identical ones) and signed result votes (``ResultVote``, 2f+1 are the
  result's certificate) that ``planner.announce`` builds from the ledger's events;
- on its tick, the offers of replicas whose worker reported nothing a while after their
  placement, again (``planner.OfferResends``: an offer lost on a full line held its task
  until the lease ended);
- on its tick, placement proposals for open replica slots (``planner.ProposalTimer`` says
  for which jobs: the primary at once, another member only when nothing of the job was placed
  for ``planner.fallback_s`` times its rank after the primary (longer while the committee
  is slow to order);
  ``planner.placements`` says what), and ``Unreachable`` reports for workers it has lost
  (``planner.AbsenceWatch``): f+1 such reports release their replicas.

Placement candidates come from the soft state (``candidates()``: capability records turned
into ``CandidateWire``), reputation from the ledger itself. Time is the injected clock's.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from consensus.actions import Committed
from consensus.committee import DIRECTORY_SHARD
from daemon.clock import Clock, SystemClock
from daemon.committees.runner import ReplicaRunner
from daemon.jobs import planner
from daemon.jobs.planner import PLACE_FALLBACK_S, UNREACHABLE_S  # noqa: F401 - re-exported
from daemon.jobs.ports import CandidateSource, Ledger, Peers
from daemon.ledger.records import Job, JobState
from daemon.ledger.state import JobLedger
from daemon.tick import RestingTick
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.tasks import ResultVotes, TaskOffers

TICK_S = 0.5
"""The member's tick while a job is open on its shards: proposals, re-sent offers, watching
the workers that hold replicas."""
REST_TICK_S = 2.0
"""The tick with no job open (``resting``): a submission wakes it when it commits, and the
only timers left are an epoch's new replicas, which wait at most this long."""

log = logging.getLogger("novacron.jobs")

class MemberDuties:
    def __init__(self, identity: NodeIdentity, ledger: Ledger, peers: Peers,
                 soft: CandidateSource, clock: Clock | None = None) -> None:
        self.identity = identity
        self.ledger = ledger
        self.network = ledger.network
        self.peers = peers
        self.soft = soft
        self.clock: Clock = clock or SystemClock()
        self.timer = planner.ProposalTimer()
        self.absence = planner.AbsenceWatch()
        self.resends = planner.OfferResends()
        self.offers_resent = 0
        self.unreachable_reports = 0
        self.offers_sent = 0
        self.votes_sent = 0
        self.proposals = 0
        self.pace = RestingTick(TICK_S, REST_TICK_S)
        """Run now when a committed batch may have freed replica slots: propose now, not at
        the next tick (an idle worker waiting half a second per round was most of a job's
        time)."""

    @property
    def absent_since(self) -> dict[str, float]:
        return self.absence.absent_since

    @property
    def open_since(self) -> dict[planner.Key, float]:
        return self.timer.open_since

    @property
    def _proposing(self) -> set[planner.Key]:
        return self.timer.proposing

    # -- after each committed batch -----------------------------------------------------------

    def on_committed(self, shard: int, runner: ReplicaRunner, event: Committed) -> None:
        if shard == DIRECTORY_SHARD:
            return
        ledger: JobLedger = runner.machine.ledger
        out = planner.announce(ledger.drain_events(), ledger, runner.config.shard,
                               runner.config.epoch, self.identity, self.network)
        for job in out.placed:
            self.timer.placed((shard, job))
        if event.requests:
            self.pace.run_now()
        # One message per worker and per submitter for the whole batch: fewer, fuller frames.
        self.offers_sent += self._send_offers(out.offers)
        for submitter, votes in out.votes.items():
            for group in planner.in_messages(votes):
                self.peers.send(submitter, ResultVotes(group))
            self.votes_sent += len(votes)

    def _send_offers(self, offers: dict[str, list[Any]]) -> int:
        """Each worker's offers in as few bounded messages as fit; how many offers went."""
        for worker, theirs in offers.items():
            for group in planner.in_messages(theirs):
                self.peers.send(worker, TaskOffers(group))
        return sum(len(theirs) for theirs in offers.values())

    # -- on the tick ----------------------------------------------------------------------------

    def resting(self, runners: list[ReplicaRunner]) -> bool:
        """Nothing to time: no job open or loading on our shards, no proposal in flight and no
        worker being watched. A submission wakes the loop when it commits (``on_committed``)."""
        if self.timer.proposing or self.absence.absent_since:
            return False
        return not any(job.state in (JobState.OPEN, JobState.LOADING)
                       for r in runners for job in r.machine.ledger.jobs.values())

    def tick(self, nursery: trio.Nursery, runners: list[ReplicaRunner], now: float) -> None:
        if self.absence.due(now):
            self._report_unreachable(nursery, runners, now)
        for runner in runners:
            ledger: JobLedger = runner.machine.ledger
            self.offers_resent += self._send_offers(
                self.resends.due(runner.config.shard, runner.config.epoch, ledger, now))
            r = runner.replica
            rank = planner.rank(r.me, r.primary, len(runner.config.committee))
            ordering = self.ledger.ordering_s(runner.config.shard)
            for key, job, slots in self.timer.due(runner.config.shard, ledger, rank, now, ordering):
                nursery.start_soon(self._propose, key[0], ledger, job, slots, key)

    def _report_unreachable(self, nursery: trio.Nursery, runners: list[ReplicaRunner],
                            now: float) -> None:
        held = planner.held_replicas((r.config.shard, r.machine.ledger) for r in runners)
        connected = set(self.peers.connected()) | {self.identity.node_id}
        for shard, worker in self.absence.scan(held, connected, now):
            log.info("worker %s unreachable for %.0f s: reporting it", worker,
                     now - self.absence.absent_since[worker])
            nursery.start_soon(self._send_unreachable, shard, worker)

    async def _send_unreachable(self, shard: int, worker: str) -> None:
        try:
            reply = await self.ledger.order(shard, ops.Unreachable(worker))
        except Exception as err:  # noqa: BLE001 - a background report: the next scan retries
            log.info("could not report worker %s unreachable: %s", worker, err)
            self.absence.failed(worker)
            return
        self.unreachable_reports += 1
        if reply.get("released"):
            log.info("released %d replicas of unreachable worker %s", reply["released"], worker)

    async def _propose(self, shard: int, ledger: JobLedger, job: Job, slots: list[int],
                       key: planner.Key) -> None:
        placed_any = False
        try:
            shunned = self.absence.shunned(set(self.peers.connected()))
            cands = tuple(c for c in self.soft.candidates(
                toward=job.submitter, nbytes=planner.expected_output_bytes(job))
                if c.node_id not in shunned)
            if not cands:
                log.info("no candidate workers known yet for job %s", job.id.hex()[:12])
                return
            now_ms = int(self.clock.wall() * 1000)
            for place in planner.placements(ledger, job, slots, cands, now_ms):
                if place is None:
                    await trio.sleep(0)  # let consensus and the control socket run meanwhile
                else:
                    await self._send_place(shard, place)
                    placed_any = True
        except Exception as err:  # noqa: BLE001 - a background proposal: log and retry next tick
            log.warning("placement proposal for job %s failed: %s", job.id.hex()[:12], err)
        finally:
            self.timer.finished(key, self.clock.now())
            if placed_any:
                # Slots may have opened while we proposed. (After a round that found every
                # worker full, the next committed result wakes us: waking at once here made
                # the primary re-run fruitless rounds back to back for a big job.)
                self.pace.run_now()

    async def _send_place(self, shard: int, place: ops.Place) -> None:
        reply = await self.ledger.order(shard, place)
        self.proposals += 1
        if reply.get("refused"):
            log.info("placement for job %s: %d placed, refused %s", place.job.hex()[:12],
                     reply.get("placed", 0), reply["refused"][:3])

    def status(self) -> dict[str, Any]:
        return {"offers_sent": self.offers_sent, "offers_resent": self.offers_resent,
                "votes_sent": self.votes_sent,
                "placements_proposed": self.proposals,
                "unreachable_reports": self.unreachable_reports}
