"""A volunteer: takes offers once f+1 members sent the same one (``daemon.jobs.tally``, the
daemon's own code), reports ``Start``, runs the task for a while of virtual time, and reports
its ``Result`` through the daemon's request queue. Running is modelled: an honest worker's
output is ``honest_output`` (the real sandbox is deterministic, so honest replicas agree).

Behaviours (``BEHAVIOURS``), the Byzantine ones after honest:

- ``honest``
- ``liar``       -- a wrong output of its own for every task (never agrees with anyone);
- ``colluder``   -- the wrong output every colluder reports for that task (they agree);
- ``flaky``      -- wrong on about half its tasks, right on the others (builds a record);
- ``equivocator``-- reports two different results for each replica, in a random order;
- ``withholder`` -- starts, never reports (its lease or the members' reports free the slot);
- ``crasher``    -- reports its node failing (``CRASHED``) on about a third of its tasks.

A crash loses the tasks in hand and the offers counted; a restarted worker takes new ones.
"""

from __future__ import annotations

import hashlib
from typing import Any

from daemon.jobs.tally import OfferTally
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.pbft import Reply
from protocol.messages.tasks import TaskOffer, TaskOffers, TaskStatus
from testnet.job_sim.world import JobMessage, Orders, World, honest_output
from testnet.sim import Simulation

BEHAVIOURS = ("honest", "liar", "colluder", "flaky", "equivocator", "withholder", "crasher")
BYZANTINE = frozenset({"liar", "colluder", "flaky", "equivocator"})
"""Behaviours that report wrong outputs (the others only fail to report)."""
EMPTY = hashlib.sha256(b"").digest()


def _coin(*parts: bytes) -> int:
    return hashlib.sha256(b"".join(parts)).digest()[0]


class WorkerNode:
    def __init__(self, world: World, name: str, ident: NodeIdentity, behaviour: str,
                 run_s: float) -> None:
        self.world = world
        self.name = name
        self.ident = ident
        self.behaviour = behaviour
        self.run_s = run_s
        self.life = 0
        self.ran = 0
        self.lied = 0
        self._fresh()

    def _fresh(self) -> None:
        self.tally = OfferTally()
        self.orders = Orders(self.world, self.name, self.ident)

    # -- Process --------------------------------------------------------------------------------

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        if isinstance(data, JobMessage):
            if isinstance(data.body, TaskOffers):
                for offer in data.body.offers:
                    taken = self.tally.add(data.sender, offer,
                                           self.world.committee_of(offer.shard, offer.epoch))
                    if taken is not None:
                        self._take(sim, taken)
            return
        try:
            env = self.world.keys.verifier.open(data)
        except RemoteProtocolError:
            return
        if isinstance(env.body, Reply):
            self.orders.receive(env)

    def on_tick(self, sim: Simulation, now: float) -> None:
        self.orders.tick(now)

    def on_timer(self, sim: Simulation, payload: Any) -> None:
        life, offer = payload
        if life == self.life:
            self._finish(offer)

    def on_crash(self, sim: Simulation) -> None:
        self.life += 1  # tasks in hand are lost with the process

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        self._fresh()

    # -- running --------------------------------------------------------------------------------

    def _take(self, sim: Simulation, o: TaskOffer) -> None:
        self.orders.order(o.shard, ops.Start(o.job, o.task, o.replica))
        jitter = 0.5 + (_coin(self.ident.public_key, o.job, o.task.to_bytes(4, "big")) / 255)
        sim.set_timer(self.name, self.run_s * jitter, (self.life, o))

    def _finish(self, o: TaskOffer) -> None:
        self.ran += 1
        key = o.job + o.task.to_bytes(4, "big")
        b = self.behaviour
        if b == "withholder":
            return
        status, output = TaskStatus.OK, honest_output(o.job, o.task, o.input_hash)
        if b == "crasher" and _coin(b"crash", self.ident.public_key, key) < 85:
            status, output = TaskStatus.CRASHED, b""
        elif b == "liar" or (b == "flaky" and _coin(b"flaky", self.ident.public_key, key) < 128):
            output = hashlib.sha256(b"lie" + self.ident.public_key + key).digest()
        elif b == "colluder":
            output = hashlib.sha256(b"collude" + key).digest()
        outputs = [output]
        if b == "equivocator":
            outputs.append(hashlib.sha256(b"other" + self.ident.public_key + key).digest())
            if _coin(b"order", self.ident.public_key, key) < 128:
                outputs.reverse()
        for out in outputs:
            if out and out != honest_output(o.job, o.task, o.input_hash):
                self.lied += 1
            self.orders.order(o.shard, ops.Result(
                o.job, o.task, o.replica, int(status), 0, hashlib.sha256(out).digest(),
                len(out), 1000, "", EMPTY, 0))
