"""CRDT anti-entropy in the seeded simulator: many ``CrdtReplica`` objects over a faulty network.

Each simulated node is a ``CrdtNode`` (a ``testnet.sim.Process``) wrapping one
``crdt.CrdtReplica`` with the soft-state schema the daemon will use (capability registry, tags,
load, link estimates, job progress). While the workload runs, every node mutates random
objects on its ticks; messages cross the simulated network as real bytes:

- ``Transport.BYTES``: the message's schema array in canonical msgpack (no signatures; fast
  enough for 50 nodes and many seeds);
- ``Transport.ENVELOPES``: signed envelopes (``protocol.envelope``) opened with a replay window
  and clock-skew check, on a replica that signs and checks every dot: the full path the daemon
  will use, so the ownership rules are exercised end to end.

``run_convergence`` runs one seed: faults while the workload runs, then a reliable network
until every replica holds the same state (or a deadline passes). A failure names its seed;
``Simulation(seed)`` replays it exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocol.canonical import packb, unpackb
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from protocol.errors import RemoteProtocolError, ReplayedMessage
from protocol.identity import NodeIdentity
from protocol.schema import REGISTRY, encode_body, message_type

from crdt import (
    AntiEntropyConfig,
    DotSigner,
    LWWMap,
    MVRegister,
    ObjectSpec,
    ORMap,
    ORSet,
    PNCounter,
    Policy,
    CrdtReplica,
)
from testnet.sim import LinkFaults, Network, Simulation

NETWORK = "novacron-sim"
EPOCH_MS = 1_700_000_000_000
"""Virtual time 0 is this Unix time in ms (HLC timestamps look like real ones)."""


def soft_state_schema() -> dict[str, ObjectSpec]:
    """The daemon's soft state, as the simulator exercises it."""
    return {
        "caps": ObjectSpec(LWWMap(), Policy.OWNER_KEYED),
        "tags": ObjectSpec(ORMap(ORSet())),
        "load": ObjectSpec(PNCounter()),
        "links": ObjectSpec(LWWMap()),
        "jobs": ObjectSpec(ORMap(MVRegister())),
    }


class Transport(Enum):
    BYTES = "bytes"
    ENVELOPES = "envelopes"


def random_update(replica: CrdtReplica, rng: random.Random, now_ms: int, peers: list[str]) -> str:
    """One random local mutation, like the daemon's soft-state writers make; returns the name
    of the object it changed."""
    me = replica.node_id
    what = rng.randrange(9)
    names = {0: "caps", 1: "tags", 2: "tags", 3: "load", 4: "load", 5: "links", 6: "links"}
    if what == 0:
        replica.update("caps", lambda m, w: m.p_set(w, me, {"cores": rng.randrange(1, 64),
                                                            "t": now_ms}), now_ms)
    elif what == 1:
        key, elem = rng.choice("abcd"), rng.choice("uvwxyz")
        if rng.random() < 0.6:
            replica.update("tags", lambda m, w: m.p_update(w, key, lambda s: s.p_add(w, elem)),
                           now_ms)
        else:
            replica.update("tags", lambda m, w: m.p_update(w, key,
                                                           lambda s: s.p_remove(w, elem)), now_ms)
    elif what == 2:
        replica.update("tags", lambda m, w: m.p_remove(w, rng.choice("abcd")), now_ms)
    elif what in (3, 4):
        n = rng.randrange(1, 10)
        if what == 3:
            replica.update("load", lambda c, w: c.p_inc(w, n), now_ms)
        else:
            replica.update("load", lambda c, w: c.p_dec(w, n), now_ms)
    elif what in (5, 6):
        key = f"{me}>{rng.choice(peers)}" if peers else me
        if what == 5 or rng.random() < 0.5:
            replica.update("links", lambda m, w: m.p_set(w, key, rng.randrange(1, 500)), now_ms)
        else:
            replica.update("links", lambda m, w: m.p_remove(w, key), now_ms)
    else:
        job = f"job{rng.randrange(6)}"
        replica.update("jobs", lambda m, w: m.p_update(
            w, job, lambda r: r.p_write(w, rng.choice(["queued", "running", "done"]))), now_ms)
    return names.get(what, "jobs")


@dataclass
class NodeStats:
    rejected: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    updates: int = 0
    issued: dict[str, int] = field(default_factory=dict)
    """Object -> how many dots this node made in it (what the safety invariant checks)."""
    last_error: str = ""


class CrdtNode:
    """One simulated node: a replica, its neighbours, its workload and its wire format."""

    def __init__(self, name: str, neighbours: list[str], *, transport: Transport,
                 identity: NodeIdentity | None = None, config: AntiEntropyConfig,
                 update_rate: float, session_rng: random.Random) -> None:
        self.name = name
        self.neighbours = neighbours
        self.transport = transport
        self.identity = identity
        self.config = config
        self.update_rate = update_rate
        self.session_rng = session_rng
        self.working = True
        self.stats = NodeStats()
        self.persisted: bytes | None = None
        self.replica = self._new_replica()
        self.sealer: EnvelopeSealer | None = None
        self.opener: EnvelopeOpener | None = None
        if transport is Transport.ENVELOPES:
            assert identity is not None and identity.node_id == name
            self.sealer = EnvelopeSealer(identity, NETWORK, self.replica.session)
            self.opener = EnvelopeOpener(NETWORK)

    def _new_replica(self, snapshot: bytes | None = None) -> CrdtReplica:
        signer = DotSigner(self.identity, NETWORK) if self.identity is not None else None
        session = self.session_rng.randrange(1, 1 << 64)
        if snapshot is not None:
            return CrdtReplica.restore(snapshot, soft_state_schema(), session=session,
                                   signer=signer, config=self.config)
        return CrdtReplica(self.name, soft_state_schema(), session=session, signer=signer,
                       config=self.config)

    # -- wire -----------------------------------------------------------------------------------

    def encode(self, msg: Any, now_ms: int) -> bytes:
        if self.sealer is not None:
            return self.sealer.seal(msg, now_ms)
        type_name, version = message_type(msg)
        return packb([type_name, version, encode_body(msg, validate=False)], maps=False)

    def decode(self, data: bytes, now_ms: int) -> tuple[str | None, Any]:
        """``(authenticated sender or None, message)``."""
        if self.opener is not None:
            env = self.opener.open(data, now_ms)
            return env.sender_id, env.body
        type_name, version, body = unpackb(data)
        return None, REGISTRY.decode(type_name, version, body)

    def send_all(self, sim: Simulation, out: list[tuple[str, Any]], now_ms: int) -> None:
        for peer, msg in out:
            sim.send(self.name, peer, self.encode(msg, now_ms), kind=type(msg).__name__)

    # -- Process --------------------------------------------------------------------------------

    def connect(self, sim: Simulation, now_ms: int) -> None:
        for peer in self.neighbours:
            self.send_all(sim, self.replica.on_connect(peer, now_ms), now_ms)

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        now_ms = EPOCH_MS + int(sim.now * 1000)
        try:
            sender, msg = self.decode(data, now_ms)
            if sender is not None and sender != src:
                raise AssertionError("the transport peer is not the envelope's signer")
            out = self.replica.on_message(src, msg, now_ms)
        except ReplayedMessage:
            self.stats.replays += 1  # the network duplicated it: the envelope layer drops it
            return
        except RemoteProtocolError as err:
            self.stats.rejected[err.reason] = self.stats.rejected.get(err.reason, 0) + 1
            self.stats.last_error = str(err)
            return
        self.send_all(sim, out, now_ms)

    def on_tick(self, sim: Simulation, now: float) -> None:
        now_ms = EPOCH_MS + int(now * 1000)
        if self.working and sim.rng.random() < self.update_rate:
            name = random_update(self.replica, sim.rng, now_ms, self.neighbours)
            self.stats.issued[name] = self.stats.issued.get(name, 0) + 1
            self.stats.updates += 1
            self.persisted = self.replica.snapshot()
        self.send_all(sim, self.replica.tick(now_ms), now_ms)

    def on_crash(self, sim: Simulation) -> None:
        pass

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        self.replica = self._new_replica(self.persisted if keep_state else None)
        if not keep_state:
            self.working = False  # a node that lost its state must not reuse its old dots
        if self.sealer is not None:
            assert self.identity is not None
            self.sealer = EnvelopeSealer(self.identity, NETWORK, self.replica.session)
            self.opener = EnvelopeOpener(NETWORK)


@dataclass
class RunResult:
    seed: int
    nodes: int
    converged: bool
    converge_time: float
    """Virtual seconds from the end of faults until every replica held the same state."""
    updates: int
    messages: int
    bytes: int
    dropped: int
    duplicated: int
    rejected: dict[str, int]
    problem: str = ""
    procs: dict[str, CrdtNode] = field(default_factory=dict, compare=False, repr=False)
    """The simulated nodes, for tests that look inside."""


def topology(names: list[str], degree: int, rng: random.Random) -> dict[str, list[str]]:
    """A ring (so the graph is connected) plus random chords, symmetric."""
    links: dict[str, set[str]] = {n: set() for n in names}
    k = len(names)
    for i, n in enumerate(names):
        for m in (names[(i + 1) % k], names[(i - 1) % k]):
            if m != n:
                links[n].add(m)
    for n in names:
        while len(links[n]) < min(degree, k - 1):
            m = rng.choice(names)
            if m != n:
                links[n].add(m)
                links[m].add(n)
    return {n: sorted(v) for n, v in links.items()}


def differences(nodes: dict[str, CrdtNode]) -> str:
    """Empty if every replica holds the same state, else what differs first."""
    names = sorted(nodes)
    first = nodes[names[0]].replica
    for name in names[1:]:
        other = nodes[name].replica
        for obj_name, obj in first.objects.items():
            theirs = other.objects[obj_name]
            if not obj.same_state(theirs) or obj.sigs != theirs.sigs:
                return f"{names[0]} and {name} differ in {obj_name!r}"
    return ""


def run_convergence(seed: int, *, nodes: int = 50, degree: int = 4, drop: float = 0.2,
                    duplicate: float = 0.1, max_delay: float = 0.25, fault_time: float = 2.0,
                    settle_deadline: float = 30.0, update_rate: float = 0.5,
                    transport: Transport = Transport.BYTES, crash: int = 0,
                    tick_interval: float = 0.1) -> RunResult:
    """One seeded run; see the module docstring."""
    rng = random.Random(seed ^ 0x5EED)
    faults = LinkFaults(drop=drop, duplicate=duplicate, min_delay=0.001, max_delay=max_delay)
    sim = Simulation(seed, Network(faults), tick_interval=tick_interval)
    identities: dict[str, NodeIdentity] = {}
    if transport is Transport.ENVELOPES:
        for _ in range(nodes):
            ident = NodeIdentity(rng.randbytes(32))
            identities[ident.node_id] = ident
        names = sorted(identities)
    else:
        names = [f"n{i:02d}" for i in range(nodes)]
    links = topology(names, degree, rng)
    config = AntiEntropyConfig(max_buffer=256, retransmit_ms=500, digest_every_ms=5_000)
    procs = {n: CrdtNode(n, links[n], transport=transport, identity=identities.get(n),
                         config=config, update_rate=update_rate,
                         session_rng=random.Random(rng.randrange(1 << 64)))
             for n in names}
    for n, proc in procs.items():
        sim.add_node(n, proc)
    lost: set[str] = set()

    def nobody_invents_dots(sim: Simulation) -> str | None:
        """Safety, checked as the run goes: no replica has seen a dot its writer never made."""
        if sim.steps % 1000:
            return None
        for n, proc in procs.items():
            for name, obj in proc.replica.objects.items():
                for r in obj.ctx.replicas():
                    if r in procs and r not in lost:
                        made = procs[r].stats.issued.get(name, 0)
                        seen = sum(hi - lo + 1 for lo, hi in obj.ctx.intervals(r))
                        if seen > made:
                            return (f"{n} has seen {seen} dots of {r} in {name!r} (up to "
                                    f"{obj.ctx.max(r)}) but {r} only made {made}")
        return None

    sim.add_invariant(nobody_invents_dots)
    for proc in procs.values():
        proc.connect(sim, EPOCH_MS)
    crashed = rng.sample(names, crash) if crash else []
    for n in crashed:
        sim.run_for(fault_time / (2 * len(crashed)))
        sim.crash(n)
        for peer in links[n]:
            procs[peer].replica.on_disconnect(n)
    sim.run_for(fault_time / 2 if crashed else fault_time)
    for i, n in enumerate(crashed):
        if i % 2:
            lost.add(n)
        sim.restart(n, keep_state=i % 2 == 0)
        now_ms = EPOCH_MS + int(sim.now * 1000)
        procs[n].connect(sim, now_ms)
        for peer in links[n]:
            procs[peer].send_all(sim, procs[peer].replica.on_connect(n, now_ms), now_ms)
    if crashed:
        sim.run_for(fault_time / 2)
    for proc in procs.values():
        proc.working = False
    sim.network.heal()
    fault_end = sim.now
    problem = differences(procs)
    while problem and sim.now - fault_end < settle_deadline:
        sim.run_for(0.25)
        problem = differences(procs)
    rejected: dict[str, int] = {}
    for proc in procs.values():
        for reason, k in proc.stats.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + k
    return RunResult(
        seed=seed, nodes=nodes, converged=not problem, converge_time=round(sim.now - fault_end, 3),
        updates=sum(p.stats.updates for p in procs.values()), messages=sim.stats.sent,
        bytes=sim.stats.bytes_sent, dropped=sim.stats.dropped,
        duplicated=sim.stats.duplicated, rejected=rejected,
        problem=f"seed {seed}: {problem} after {settle_deadline}s of reliable network "
                f"(replay: run_convergence({seed}))" if problem else "",
        procs=procs,
    )


__all__ = ["CrdtNode", "RunResult", "Transport", "differences", "random_update",
           "run_convergence", "soft_state_schema", "topology"]
