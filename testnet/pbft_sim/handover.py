"""Epoch handover in the simulator: committee e ends its epoch while clients keep writing,
committee e+1 (half old members, half new) fetches the certified final state and carries on.

Every client adds 1, 2, 3, ... to its own counter, one request at a time, so each reply is a
running total: a request lost in the handover would stall the client, and one executed twice
would show as a wrong total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.reconfig import Handoff, HandoffFetch, next_genesis
from consensus.replica import Replica
from consensus.statemachine import KeyValueMachine
from protocol.errors import RemoteProtocolError
from protocol.messages.pbft import EndEpoch
from testnet.pbft_sim.adapter import Cluster, ReplicaNode
from testnet.pbft_sim.scenarios import SIM_CONFIG
from testnet.sim import LinkFaults, Network, Simulation


class JoiningNode(ReplicaNode):
    """A new committee member: fetches the handed-over state, then runs its replica."""

    def __init__(self, cluster: Cluster, name: str, pk: bytes, handoff: Handoff) -> None:
        self.handoff = handoff
        self.genesis: bytes | None = None
        super().__init__(cluster, name, pk)
        self.fetch = HandoffFetch(handoff, self.signer, cluster.keys.verifier, retry_after=0.2)

    def _make(self) -> Replica | None:  # type: ignore[override]
        if self.genesis is None:
            return None
        return Replica(self.cluster.cfg, self.signer, self.cluster.keys.verifier,
                       KeyValueMachine(), genesis=self.genesis, stored=self.disk or None,
                       now=self.cluster.now)

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        if self.replica is not None:
            return super().on_message(sim, src, data)
        try:
            env = self.cluster.keys.verifier.open(data)
        except RemoteProtocolError:
            return
        self._send(sim, self.fetch.receive(env, sim.now))
        if self.fetch.snapshot is not None:
            self.genesis = next_genesis(self.handoff, self.fetch.snapshot, KeyValueMachine())
            self.replica = self._make()

    def on_tick(self, sim: Simulation, now: float) -> None:
        if self.replica is None:
            self._send(sim, self.fetch.tick(now))
        else:
            super().on_tick(sim, now)

    def _send(self, sim: Simulation, actions: list[Any]) -> None:
        for a in actions:
            self.cluster.route(sim, self.name, a.to, a.data)


@dataclass
class HandoverResult:
    old: Cluster
    new: Cluster
    handoff: Handoff
    done: bool
    totals: dict[str, int]
    """Client name -> its counter in the new committee's state."""
    results: dict[str, list[bytes]]
    """Client name -> the replies it accepted, in order."""


def run_handover(seed: int, *, clients: int = 3, requests: int = 8, end_at: float = 0.4,
                 real_crypto: bool = False, lossy: bool = True) -> HandoverResult:
    sim = Simulation(seed, Network(LinkFaults(drop=0.05, duplicate=0.05, max_delay=0.03)
                                   if lossy else LinkFaults()))
    routes: dict[bytes, list[str]] = {}
    old = Cluster(sim, 4, real_crypto=real_crypto, config=dict(SIM_CONFIG), routes=routes,
                  prefix="e1-")
    for i in range(4):
        old.add_replica(i)
    for _ in range(clients):
        old.add_client(requests)
    sim.run_until(end_at)

    # The directory ordered epoch 2: each old member asks its own committee to end epoch 1.
    for node in old.replicas.values():
        raw = node.signer.seal(EndEpoch(old.cfg.shard, old.cfg.epoch), sim.now)
        for pk in old.cfg.committee:
            old.route(sim, "", pk, raw)
    sim.run_until(end_at + 10, stop=lambda: len(old.epoch_ends) >= 3)
    ended = next(iter(old.epoch_ends.values()))
    handoff = Handoff(old.cfg.shard, old.cfg.epoch, ended.seq, ended.digest, ended.proof)

    committee = old.cfg.committee[2:] + (old.keys.new_key(), old.keys.new_key())
    new = Cluster(sim, 4, keys=old.keys, committee=committee, epoch=2, prefix="e2-",
                  config=dict(SIM_CONFIG), routes=routes)
    for i in range(4):
        new.add_replica(i, JoiningNode, handoff=handoff)
    for c in old.clients.values():  # the clients learn the new committee from the directory
        for a in c.client.reconfigure(new.cfg, sim.now):
            old.route(sim, c.name, a.to, a.data)
    done = sim.run_until(sim.now + 20, stop=old.all_clients_done)
    sim.run_for(1.0)
    state = next(r.replica for r in new.replicas.values() if r.replica).service.machine.data
    return HandoverResult(old, new, handoff, done,
                          {name: state.get(name, 0) for name in old.clients},
                          {name: [d.result for d in c.client.done]
                           for name, c in old.clients.items()})
