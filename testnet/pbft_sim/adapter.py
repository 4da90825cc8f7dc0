"""PBFT replicas and clients as simulator processes.

``Cluster`` builds one committee: keys, signers (real Ed25519 or the MAC stand-in), replicas,
clients, and the routing from a public key to the simulated node(s) holding it (two for
Twins). ``ReplicaNode`` turns a replica's actions into simulator sends and keeps its ``Persist``
records in a dict that stands for the disk, so a crash can keep or lose them. Every envelope
on the simulated wire is real bytes and is opened by the receiver, so forged, corrupted and
replayed messages take the same path they would take in the daemon.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from consensus.actions import (
    Broadcast, Committed, EpochEnded, Misbehaviour, Persist, Send, StateInstalled, ViewEntered,
)
from consensus.checkpoint import Diverged
from consensus.client import Client
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier, MacSigner, MacVerifier
from consensus.replica import Replica
from consensus.statemachine import KeyValueMachine
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity
from testnet.pbft_sim.checker import SafetyChecker
from testnet.sim import Simulation

NETWORK = "novacron-sim"


class Keyring:
    """Keys for simulated nodes, from a seeded RNG. ``real=True``: Ed25519 identities."""

    def __init__(self, rng: random.Random, real: bool) -> None:
        self.rng = rng
        self.real = real
        self.secrets: dict[bytes, bytes] = {}
        self.identities: dict[bytes, NodeIdentity] = {}
        self.verifier: Any = Ed25519Verifier(NETWORK) if real else MacVerifier(NETWORK,
                                                                             self.secrets)

    def new_key(self) -> bytes:
        if self.real:
            ident = NodeIdentity(self.rng.randbytes(32))
            self.identities[ident.public_key] = ident
            return ident.public_key
        pk, secret = self.rng.randbytes(32), self.rng.randbytes(32)
        self.secrets[pk] = secret
        return pk

    def signer(self, pk: bytes) -> Any:
        if self.real:
            return Ed25519Signer(self.identities[pk], NETWORK, context=self.rng.getrandbits(63))
        return MacSigner(pk, self.secrets[pk], NETWORK)


def _summary(env: Any) -> str:
    m = env.body
    fields = [f"{k}={getattr(m, k)}" for k in ("view", "new_view", "seq", "request_id")
              if hasattr(m, k)]
    if hasattr(m, "digest"):
        fields.append(f"digest={m.digest[:4].hex()}")
    return f"{env.type} from {env.sender[:3].hex()} " + " ".join(fields)


class ReplicaNode:
    """A replica as a ``testnet.sim.Process``. ``outgoing`` lets Byzantine subclasses rewrite
    what the honest code would send."""

    def __init__(self, cluster: "Cluster", name: str, pk: bytes) -> None:
        self.cluster = cluster
        self.name = name
        self.pk = pk
        self.disk: dict[str, bytes] = {}
        self.signer = cluster.keys.signer(pk)
        self.replica: Replica | None = self._make()
        self.faulty = False
        self.committed: dict[int, bytes] = {}

    def _make(self) -> Replica:
        return Replica(self.cluster.cfg, self.signer, self.cluster.keys.verifier,
                       self.cluster.machine(), genesis=self.cluster.genesis,
                       stored=self.disk or None, now=self.cluster.now)

    # -- Process --------------------------------------------------------------------------------

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        try:
            env = self.cluster.keys.verifier.open(data)
        except RemoteProtocolError:
            self.cluster.rejected += 1
            if sim.keep_log:
                sim.log.append(f"{sim.now:10.4f} {self.name} <- {src}: rejected")
            return
        if sim.keep_log:
            sim.log.append(f"{sim.now:10.4f} {self.name} <- {src}: {_summary(env)}")
        self.incoming(sim, env)

    def incoming(self, sim: Simulation, env: Any) -> None:
        if self.replica is not None:
            try:
                actions = self.replica.receive(env, sim.now)
            except Diverged as err:
                return self._halt(err)
            self.apply(sim, actions)

    def on_tick(self, sim: Simulation, now: float) -> None:
        if self.replica is not None:
            try:
                actions = self.replica.tick(now)
            except Diverged as err:
                return self._halt(err)
            self.apply(sim, actions)

    def _halt(self, err: Exception) -> None:
        self.cluster.checker.diverged(self.name, err)
        self.replica = None

    def on_crash(self, sim: Simulation) -> None:
        self.replica = None

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        if not keep_state:
            self.disk.clear()
        self.replica = self._make()
        self.cluster.checker.restarted(self.name, self.replica.stable.seq)
        self.apply(sim, self.replica.tick(sim.now))

    # -- actions --------------------------------------------------------------------------------

    def apply(self, sim: Simulation, actions: list[Any]) -> None:
        for a in actions:
            t = type(a)
            if t is Broadcast or t is Send:
                for to, data in self.outgoing(sim, a):
                    self.cluster.route(sim, self.name, to, data)
            elif t is Persist:
                if a.value is None:
                    self.disk.pop(a.key, None)
                else:
                    self.disk[a.key] = a.value
            elif t is Committed:
                self.cluster.checker.committed(self.name, a)
            elif t is StateInstalled:
                self.cluster.checker.installed(self.name, a.seq, a.digest)
            elif t is Misbehaviour:
                self.cluster.checker.misbehaviour(self.name, a)
            elif t is ViewEntered:
                self.cluster.views[self.name] = a.view
            elif t is EpochEnded:
                self.cluster.epoch_ends[self.name] = a
        if self.replica is not None:
            st = self.replica.stable
            self.cluster.checker.stable(self.name, st.seq, st.digest)

    def outgoing(self, sim: Simulation, a: Any) -> list[tuple[bytes, bytes]]:
        """(destination key, bytes) pairs for a Send or Broadcast; honest: as asked."""
        if type(a) is Send:
            return [(a.to, a.data)]
        return [(pk, a.data) for pk in self.cluster.cfg.committee
                if pk != self.pk and pk not in a.skip]


class ClientNode:
    """A client that submits ``count`` operations one after another from ``start``."""

    def __init__(self, cluster: "Cluster", name: str, pk: bytes, count: int, start: float,
                 make_op: Callable[[int], bytes]) -> None:
        self.cluster = cluster
        self.name = name
        self.pk = pk
        self.client = Client(cluster.cfg, cluster.keys.signer(pk), retry=cluster.client_retry)
        self.remaining = count
        self.start = start
        self.make_op = make_op
        self.issued = 0

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        try:
            env = self.cluster.keys.verifier.open(data)
        except RemoteProtocolError:
            return
        self.client.receive(env, sim.now)

    def on_tick(self, sim: Simulation, now: float) -> None:
        actions = self.client.tick(now)
        if not self.client.busy and self.remaining > 0 and now >= self.start:
            self.remaining -= 1
            self.issued += 1
            actions += self.client.submit(self.make_op(self.issued), now)
        for a in actions:
            self.cluster.route(sim, self.name, a.to, a.data)

    def on_crash(self, sim: Simulation) -> None:
        pass

    def on_restart(self, sim: Simulation, keep_state: bool) -> None:
        pass

    @property
    def finished(self) -> bool:
        return self.remaining == 0 and not self.client.busy


class Cluster:
    """One committee in one simulation."""

    def __init__(self, sim: Simulation, n: int, *, real_crypto: bool = False,
                 config: dict[str, Any] | None = None, client_retry: float = 0.3,
                 keys: Keyring | None = None, committee: tuple[bytes, ...] | None = None,
                 epoch: int = 1, prefix: str = "", genesis: bytes | None = None,
                 routes: dict[bytes, list[str]] | None = None,
                 machine: Callable[[], Any] = KeyValueMachine) -> None:
        """One committee. Several clusters (epochs) can share a simulation: pass the same
        ``keys`` and ``routes``, distinct ``prefix``es, and the later epoch's ``genesis``."""
        self.sim = sim
        self.keys = keys or Keyring(random.Random(sim.rng.getrandbits(64)), real_crypto)
        committee = committee or tuple(self.keys.new_key() for _ in range(n))
        self.cfg = ReplicaConfig(shard=7, epoch=epoch, committee=committee, **(config or {}))
        self.client_retry = client_retry
        self.prefix = prefix
        self.genesis = genesis
        self.machine = machine
        self.routes: dict[bytes, list[str]] = routes if routes is not None else {}
        self.replicas: dict[str, ReplicaNode] = {}
        self.clients: dict[str, ClientNode] = {}
        self.checker = SafetyChecker(self)
        self.rejected = 0
        self.views: dict[str, int] = {}
        self.epoch_ends: dict[str, Any] = {}
        sim.add_invariant(self.checker.invariant)

    @property
    def now(self) -> float:
        return self.sim.now

    def add_replica(self, index: int, cls: type[ReplicaNode] = ReplicaNode, name: str = "",
                    **kw: Any) -> ReplicaNode:
        name = name or f"{self.prefix}r{index}"
        node = cls(self, name, self.cfg.committee[index], **kw)
        self.replicas[name] = node
        self.routes.setdefault(node.pk, []).append(name)
        self.sim.add_node(name, node)
        return node

    def add_client(self, count: int, start: float = 0.0,
                   make_op: Callable[[int], bytes] | None = None,
                   key: bytes | None = None) -> ClientNode:
        """A client submitting ``count`` operations (default: add i to its own counter).
        ``key``: use an existing key (a committee member acting as a client)."""
        from consensus.statemachine import kv_op

        name = f"{self.prefix}c{len(self.clients)}"
        pk = key or self.keys.new_key()
        node = ClientNode(self, name, pk, count, start,
                          make_op or (lambda i, name=name: kv_op("add", name, i)))
        self.clients[name] = node
        self.routes.setdefault(pk, []).append(name)
        self.sim.add_node(name, node)
        return node

    def route(self, sim: Simulation, src: str, to: bytes, data: bytes) -> None:
        for dst in self.routes.get(to, ()):
            if dst != src:
                sim.send(src, dst, data)

    def correct(self) -> list[ReplicaNode]:
        return [r for r in self.replicas.values() if not r.faulty]

    def all_clients_done(self) -> bool:
        return all(c.finished for c in self.clients.values())
