"""The simulated network the job roles live in: keys, shards, routing, and ordering requests.

Every node has a real Ed25519 identity: its public key is its PBFT key, its node id is what
the ledger names it by, and committee members sign result votes with it (so certificates are
real and verify offline). PBFT envelopes use the MAC stand-in signer over the same public keys
for speed, as the consensus simulator does.

PBFT traffic travels as real envelope bytes; the jobs protocol (offers to workers, votes to
submitters) travels as ``JobMessage`` objects carrying the sender's public key, as libp2p's
authenticated streams would. ``Orders`` is a node's way to its committees: the daemon's own
``ShardRequests`` queue (one outstanding request per shard, ledger operations batched).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.committee import max_faulty
from consensus.config import ReplicaConfig
from consensus.crypto import MacSigner, MacVerifier
from daemon.committees.requests import ShardRequests
from daemon.ledger.shard import ledger_batcher, ledger_operation, pack_operation
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.pbft import Reply
from testnet.sim import Simulation

NETWORK = "novacron-jobsim"
WALL_START_MS = 1_750_000_000_000
"""Virtual time 0 on the nodes' wall clocks."""
SIM_CONFIG: dict[str, Any] = dict(checkpoint_interval=8, window=16, batch_size=16,
                                  max_inflight=2, view_change_timeout=1.0,
                                  max_view_change_timeout=8.0, status_interval=1.0)


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A jobs-protocol message (``TaskOffers``, ``ResultVotes``) from ``sender`` (a public key)."""

    sender: bytes
    body: Any


class Keys:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.identities: dict[bytes, NodeIdentity] = {}
        self.secrets: dict[bytes, bytes] = {}
        self.verifier = MacVerifier(NETWORK, self.secrets)

    def new(self) -> NodeIdentity:
        ident = NodeIdentity(self.rng.randbytes(32))
        self.identities[ident.public_key] = ident
        self.secrets[ident.public_key] = self.rng.randbytes(32)
        return ident

    def signer(self, pk: bytes) -> MacSigner:
        return MacSigner(pk, self.secrets[pk], NETWORK)


@dataclass
class World:
    sim: Simulation
    keys: Keys
    shards: dict[int, ReplicaConfig] = field(default_factory=dict)
    """Each shard's committee now (its latest epoch)."""
    configs: dict[tuple[int, int], ReplicaConfig] = field(default_factory=dict)
    """(shard, epoch) -> that epoch's committee: what the directory and epoch chain give."""
    clients: list["Orders"] = field(default_factory=list)
    """Every node's ``Orders``, to follow a shard to its next committee."""
    routes: dict[bytes, str] = field(default_factory=dict)
    """Public key -> simulated node name."""
    names: dict[str, str] = field(default_factory=dict)
    """Node id -> simulated node name."""
    skew_ms: dict[str, int] = field(default_factory=dict)
    """Node name -> how far its wall clock is off."""

    def add(self, name: str, ident: NodeIdentity) -> None:
        self.routes[ident.public_key] = name
        self.names[ident.node_id] = name

    def wall_ms(self, name: str) -> int:
        return WALL_START_MS + int(self.sim.now * 1000) + self.skew_ms.get(name, 0)

    def shard_of(self, key: bytes) -> int:
        """As ``CommitteeService.shard_of``."""
        return int.from_bytes(key[:8], "big") % len(self.shards)

    def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...] | None:
        cfg = self.configs.get((shard, epoch))
        return cfg.committee if cfg is not None else None

    def set_committee(self, cfg: ReplicaConfig) -> None:
        """``cfg`` is its shard's committee from now on; every node's requests follow it."""
        self.configs[(cfg.shard, cfg.epoch)] = cfg
        old = self.shards.get(cfg.shard)
        self.shards[cfg.shard] = cfg
        if old is not None:
            for orders in self.clients:
                orders.reconfigure(cfg)

    def f(self, shard: int) -> int:
        return max_faulty(len(self.shards[shard].committee))

    def send_raw(self, src: str, to: bytes, data: bytes) -> None:
        dst = self.routes.get(to)
        if dst is not None:  # to itself too: a member's own request to its replica
            self.sim.send(src, dst, data)

    def send_job(self, src: str, sender: bytes, node_id: str, body: Any) -> None:
        dst = self.names.get(node_id)
        if dst is not None:
            self.sim.send(src, dst, JobMessage(sender, body))

    def reachable(self, src: str, node_id: str) -> bool:
        """What a member's host would say: is it connected to this node now?"""
        dst = self.names.get(node_id)
        return dst is not None and self.sim.is_up(dst) and self.sim.network.connected(src, dst)


class Orders:
    """A node's requests to the shard committees, through the daemon's ``ShardRequests``."""

    def __init__(self, world: World, name: str, ident: NodeIdentity) -> None:
        self.world = world
        self.name = name
        self.ident = ident
        self.queues: dict[int, ShardRequests] = {}
        self.waiting: dict[int, list[tuple[Any, Callable[[dict[str, Any]], None] | None]]] = {}
        self.first_id = int(world.sim.now * 1e6) + 1  # as the daemon's: time in microseconds
        world.clients = [o for o in world.clients if o.name != name] + [self]

    def order(self, shard: int, op: ops.Operation,
              done: Callable[[dict[str, Any]], None] | None = None) -> None:
        q = self.queues.get(shard)
        if q is None:
            q = self.queues[shard] = ShardRequests(self.world.shards[shard],
                                                   self.world.keys.signer(self.ident.public_key),
                                                   ledger_batcher, first_request_id=self.first_id,
                                                   pack=pack_operation)
        pending = q.enqueue(ledger_operation(op))
        self.waiting.setdefault(shard, []).append((pending, done))

    def reconfigure(self, cfg: ReplicaConfig) -> None:
        """As ``CommitteeService.reconfigure_clients``: a request cut off by the epoch change
        goes to the new committee with the same id."""
        q = self.queues.get(cfg.shard)
        if q is not None and q.client.cfg.epoch < cfg.epoch and self.world.sim.is_up(self.name):
            for a in q.client.reconfigure(cfg, self.world.sim.now):
                self.world.send_raw(self.name, a.to, a.data)

    def queued(self, shard: int) -> int:
        q = self.queues.get(shard)
        return len(q.queue) if q else 0

    def receive(self, env: Any) -> None:
        m = env.body
        if isinstance(m, Reply):
            q = self.queues.get(m.shard)
            if q is not None:
                q.client.receive(env, self.world.sim.now)

    def tick(self, now: float) -> None:
        from protocol.canonical import unpackb

        for shard, q in self.queues.items():
            actions = q.client.tick(now) + q.pump(now)
            waiting = self.waiting.get(shard, [])
            if any(p.result is not None for p, _ in waiting):
                still = []
                for p, done in waiting:
                    if p.result is None:
                        still.append((p, done))
                    elif done is not None:
                        try:
                            reply = unpackb(p.result)
                        except Exception:  # noqa: BLE001 - a garbled reply reads as an error
                            reply = {"error": "garbled reply"}
                        done(reply if isinstance(reply, dict) else {"error": repr(reply)})
                self.waiting[shard] = still
                actions += q.pump(now)
            for a in actions:
                self.world.send_raw(self.name, a.to, a.data)


def honest_output(job: bytes, task: int, input_hash: bytes) -> bytes:
    """What every honest replica of a task computes (the sandbox is deterministic)."""
    return hashlib.sha256(b"novacron/jobsim/output" + job + task.to_bytes(4, "big")
                          + input_hash).digest()
