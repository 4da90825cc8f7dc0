"""A researcher's node: submits its planned jobs to their shards at their times, and builds a
certificate from the members' votes for each task (``daemon.jobs.tally.VoteTally``, the
daemon's own code). Certificates are kept as the daemon keeps them: durably (a crash keeps
them), each checked by ``checker`` offline afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.jobs.tally import ASK_VOTES_S, VoteTally, missing
from daemon.ledger.certificate import ResultCertificate
from daemon.ledger.records import job_id
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.pbft import Reply
from protocol.messages.tasks import ResultVotes
from testnet.job_sim.world import NETWORK, JobMessage, Orders, World
from testnet.sim import Simulation


@dataclass
class PlannedJob:
    at: float
    """Virtual time of submission."""
    op: ops.Submit
    id: bytes = b""
    shard: int = 0
    reply: dict[str, Any] | None = None


class SubmitterNode:
    def __init__(self, world: World, name: str, ident: NodeIdentity,
                 jobs: list[PlannedJob]) -> None:
        self.world = world
        self.name = name
        self.ident = ident
        self.jobs = {}
        for p in jobs:
            p.id = job_id(ident.public_key, ops.encode_op(p.op))
            p.shard = world.shard_of(p.id)
            self.jobs[p.id] = p
        self.unsent = sorted(jobs, key=lambda p: p.at)
        self.certificates: dict[tuple[bytes, int], ResultCertificate] = {}
        self.asked = 0
        self._fresh()

    def _fresh(self) -> None:
        self.orders = Orders(self.world, self.name, self.ident)
        self.tally = VoteTally(NETWORK)
        self.next_ask = self.world.sim.now + ASK_VOTES_S
        self.settled: set[bytes] = set()
        """Jobs that ended with every accepted task certified: no more asking."""

    # -- Process --------------------------------------------------------------------------------

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        if isinstance(data, JobMessage):
            if isinstance(data.body, ResultVotes):
                for v in data.body.votes:
                    if v.job not in self.jobs or (v.job, v.task) in self.certificates:
                        continue
                    cert = self.tally.add(data.sender, v,
                                          self.world.committee_of(v.shard, v.epoch))
                    if cert is not None:
                        self.certificates[(v.job, v.task)] = cert
            return
        try:
            env = self.world.keys.verifier.open(data)
        except RemoteProtocolError:
            return
        if isinstance(env.body, Reply):
            self.orders.receive(env)

    def on_tick(self, sim: Simulation, now: float) -> None:
        while self.unsent and self.unsent[0].at <= now:
            p = self.unsent.pop(0)
            self.orders.order(p.shard, p.op, lambda reply, p=p: setattr(p, "reply", reply))
        if now >= self.next_ask:
            self.next_ask = now + ASK_VOTES_S
            self._ask_again()
        self.orders.tick(now)

    def _ask_again(self) -> None:
        """As the daemon's submitter: votes again for the tasks without a certificate."""
        for p in self.jobs.values():
            if p.reply is None or "error" in p.reply or p.id in self.settled:
                continue
            certified = {t for (j, t) in self.certificates if j == p.id}
            tasks = missing(len(p.op.inputs), certified)
            if not tasks:
                self.settled.add(p.id)
                continue
            self.asked += 1

            def done(reply: dict[str, Any], p: PlannedJob = p) -> None:
                if reply.get("asked") == 0 and reply.get("state") not in ("open", "loading"):
                    self.settled.add(p.id)

            self.orders.order(p.shard, ops.AskVotes(p.id, tasks), done)

    def on_crash(self, sim: Simulation) -> None:
        pass

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        self._fresh()
