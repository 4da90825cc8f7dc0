"""A shard committee member: a real PBFT replica of the real ledger (``ShardMachine``), and
the member's job duties from ``daemon.jobs.planner`` (the code the daemon's shell runs).

After each committed batch it sends the offers and signed votes ``planner.announce`` builds;
on each tick it reports its clock (``LedgerShards.tick``), proposes placements when
``ProposalTimer`` says so, and reports workers it cannot reach (``AbsenceWatch``). Its durable
records (``Persist``) live in a dict standing for its disk, so a crash keeps them.

At an epoch change the old committee ends its epoch (``EndEpoch``) and then only serves its
final state; each member of the new committee fetches that state (``HandoffFetch``), checks
it against the old committee's proof, and starts its replica from it (``next_genesis``).
"""

from __future__ import annotations

from typing import Any

from consensus.actions import Broadcast, Committed, EpochEnded, Persist, Send
from consensus.checkpoint import Diverged
from consensus.config import ReplicaConfig
from consensus.reconfig import Handoff, HandoffFetch, next_genesis
from consensus.replica import Replica
from daemon.jobs import planner
from daemon.ledger.shard import LedgerShards, ShardMachine
from daemon.ledger.state import JobLedger
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.pbft import Reply
from protocol.messages.tasks import ResultVotes, TaskOffers
from testnet.job_sim.world import NETWORK, JobMessage, Orders, World
from testnet.sim import Simulation


class MemberNode:
    """A member of ``cfg``'s committee. ``handoff``: a member of a later epoch's committee,
    which first fetches the state the previous committee handed over."""

    def __init__(self, world: World, name: str, ident: NodeIdentity, cfg: ReplicaConfig,
                 candidates: "Any", handoff: Handoff | None = None) -> None:
        self.world = world
        self.name = name
        self.ident = ident
        self.cfg = cfg
        self.shard = cfg.shard
        self.epoch = cfg.epoch
        self.candidates = candidates
        """() -> the placement candidates this member's soft state holds."""
        self.disk: dict[str, bytes] = {}
        self.signer = world.keys.signer(ident.public_key)
        self.diverged: Exception | None = None
        self.ended: EpochEnded | None = None
        self.handoff = handoff
        self.genesis: bytes | None = None
        self.offers_sent = self.votes_sent = self.proposals = self.reports = 0
        self._fresh()

    def _fresh(self) -> None:
        cfg = self.cfg
        self.fetch = None
        if self.handoff is not None and self.genesis is None and not self.disk:
            self.fetch = HandoffFetch(self.handoff, self.signer, self.world.keys.verifier,
                                      retry_after=1.0)
        self.replica: Replica | None = None if self.fetch is not None else Replica(
            cfg, self.signer, self.world.keys.verifier, ShardMachine(list(cfg.committee), cfg.f),
            genesis=self.genesis, stored=self.disk or None, now=self.world.sim.now)
        self.orders = Orders(self.world, self.name, self.ident)
        self.app = LedgerShards()
        self.timer = planner.ProposalTimer()
        self.absence = planner.AbsenceWatch()

    @property
    def ledger(self) -> JobLedger | None:
        if self.replica is None:
            return None
        machine: ShardMachine = self.replica.service.machine  # type: ignore[assignment]
        return machine.ledger

    # -- Process --------------------------------------------------------------------------------

    @property
    def current(self) -> bool:
        """A member of its shard's committee now (not one that handed over)."""
        return self.world.shards[self.shard].epoch == self.epoch and self.ended is None

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        if isinstance(data, JobMessage):
            return
        try:
            env = self.world.keys.verifier.open(data)
        except RemoteProtocolError:
            return
        if self.fetch is not None:
            self._join(sim, env)
            return
        if self.replica is None:
            return
        if isinstance(env.body, Reply):
            self.orders.receive(env)
            return
        self._run(lambda r: r.receive(env, sim.now))

    def _join(self, sim: Simulation, env: Any) -> None:
        """Fetching the handed-over state; then the replica starts from it."""
        assert self.fetch is not None and self.handoff is not None
        for a in self.fetch.receive(env, sim.now):
            self.world.send_raw(self.name, a.to, a.data)
        if self.fetch.snapshot is not None:
            self.genesis = next_genesis(self.handoff, self.fetch.snapshot,
                                        ShardMachine(list(self.cfg.committee), self.cfg.f))
            self._fresh()

    def on_tick(self, sim: Simulation, now: float) -> None:
        if self.fetch is not None:
            for a in self.fetch.tick(now):
                self.world.send_raw(self.name, a.to, a.data)
            return
        if self.replica is None:
            return
        self._run(lambda r: r.tick(now))
        ledger = self.ledger
        if ledger is None or not self.current:
            return  # an old committee only serves its final state to the new one
        machine = self.replica.service.machine
        for raw in self.app.tick(self.shard, machine, now, self.world.wall_ms(self.name),
                                 self.orders.queued(self.shard)):
            self.orders.order(self.shard, ops.decode_op(raw[1:]))
        self._propose(ledger, now)
        self._report_unreachable(ledger, now)
        self.orders.tick(now)

    def on_crash(self, sim: Simulation) -> None:
        self.replica = None

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        if not keep_state:
            self.disk.clear()
        self._fresh()

    # -- duties ---------------------------------------------------------------------------------

    def _propose(self, ledger: JobLedger, now: float) -> None:
        assert self.replica is not None
        r = self.replica
        rank = planner.rank(r.me, r.primary, len(self.cfg.committee))
        for key, job, slots in self.timer.due(self.shard, ledger, rank, now):
            shunned = {w for w in self.absence.shunned(set())
                       if not self.world.reachable(self.name, w)}
            cands = tuple(c for c in self.candidates() if c.node_id not in shunned)
            places = [p for p in planner.placements(ledger, job, slots, cands,
                                                    self.world.wall_ms(self.name)) if p is not None]
            if not places:
                self.timer.finished(key, now)
                continue
            self.proposals += len(places)
            for p in places[:-1]:
                self.orders.order(self.shard, p)
            self.orders.order(self.shard, places[-1],
                              lambda _reply, key=key: self.timer.finished(key, self.world.sim.now))

    def _report_unreachable(self, ledger: JobLedger, now: float) -> None:
        if not self.absence.due(now):
            return
        held = planner.held_replicas([(self.shard, ledger)])
        connected = {w for w in held if self.world.reachable(self.name, w)}
        for shard, worker in self.absence.scan(held, connected, now):
            self.reports += 1
            self.orders.order(shard, ops.Unreachable(worker))

    # -- actions --------------------------------------------------------------------------------

    def _run(self, step: Any) -> None:
        assert self.replica is not None
        try:
            actions = step(self.replica)
        except Diverged as err:
            self.diverged = err
            self.replica = None
            return
        for a in actions:
            t = type(a)
            if t is Send:
                self.world.send_raw(self.name, a.to, a.data)
            elif t is Broadcast:
                for pk in self.cfg.committee:
                    if pk != self.ident.public_key and pk not in a.skip:
                        self.world.send_raw(self.name, pk, a.data)
            elif t is Persist:
                if a.value is None:
                    self.disk.pop(a.key, None)
                else:
                    self.disk[a.key] = a.value
            elif t is Committed:
                self._announce()
            elif t is EpochEnded:
                self.ended = a

    def _announce(self) -> None:
        ledger = self.ledger
        assert ledger is not None and self.replica is not None
        cfg = self.replica.cfg
        out = planner.announce(ledger.drain_events(), ledger, cfg.shard, cfg.epoch, self.ident,
                               NETWORK)
        for job in out.placed:
            self.timer.placed((self.shard, job))
        pk = self.ident.public_key
        for worker, offers in out.offers.items():
            self.world.send_job(self.name, pk, worker, TaskOffers(tuple(offers)))
            self.offers_sent += len(offers)
        for submitter, votes in out.votes.items():
            self.world.send_job(self.name, pk, submitter, ResultVotes(tuple(votes)))
            self.votes_sent += len(votes)
