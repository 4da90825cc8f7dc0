"""A synchronous, lossless message bus for small deterministic replica tests: no virtual time,
no faults, just "deliver everything in FIFO order until nothing is left" (with an optional
filter to drop or inspect messages). The simulator is for everything with time and faults."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from consensus.actions import Broadcast, Persist, Send
from consensus.client import Client
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.replica import Replica
from consensus.statemachine import KeyValueMachine
from protocol.identity import NodeIdentity

NETWORK = "novacron-bus"


class Bus:
    def __init__(self, n: int, seed: int = 0, **config: Any) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.idents = [NodeIdentity(rng.randbytes(32)) for _ in range(n)]
        self.cfg = ReplicaConfig(3, 1, tuple(i.public_key for i in self.idents), **config)
        self.verifier = Ed25519Verifier(NETWORK)
        self.disks: dict[bytes, dict[str, bytes]] = {pk: {} for pk in self.cfg.committee}
        self.replicas: dict[bytes, Replica | None] = {}
        for ident in self.idents:
            self.replicas[ident.public_key] = self.make(ident.public_key)
        self.clients: dict[bytes, Client] = {}
        self.queue: deque[tuple[bytes, bytes, bytes]] = deque()
        self.actions: dict[bytes, list[Any]] = {pk: [] for pk in self.cfg.committee}
        self.drop: Callable[[bytes, bytes, Any], bool] = lambda src, dst, env: False
        self.now = 0.0

    def signer(self, pk: bytes) -> Ed25519Signer:
        ident = next(i for i in self.idents if i.public_key == pk)
        return Ed25519Signer(ident, NETWORK, context=self.rng.getrandbits(63))

    def make(self, pk: bytes) -> Replica:
        return Replica(self.cfg, self.signer(pk), self.verifier, KeyValueMachine(),
                       stored=self.disks[pk] or None)

    def add_client(self) -> Client:
        ident = NodeIdentity(self.rng.randbytes(32))
        self.idents.append(ident)
        c = Client(self.cfg, Ed25519Signer(ident, NETWORK, 1), retry=1.0)
        self.clients[ident.public_key] = c
        return c

    def add_member_client(self, i: int) -> Client:
        """A client on member ``i``'s node, with its key: replies to it go to the client,
        everything else to the replica."""
        pk = self.cfg.committee[i]
        c = Client(self.cfg, self.signer(pk), retry=1.0)
        self.clients[pk] = c
        return c

    def replica(self, i: int) -> Replica:
        r = self.replicas[self.cfg.committee[i]]
        assert r is not None
        return r

    def emit(self, src: bytes, actions: list[Any]) -> None:
        if src in self.actions:
            self.actions[src] += actions
        for a in actions:
            if isinstance(a, Send):
                self.queue.append((src, a.to, a.data))
            elif isinstance(a, Broadcast):
                for pk in self.cfg.committee:
                    if pk != src and pk not in a.skip:
                        self.queue.append((src, pk, a.data))
            elif isinstance(a, Persist):
                if a.value is None:
                    self.disks[src].pop(a.key, None)
                else:
                    self.disks[src][a.key] = a.value

    def inject(self, src: bytes, dst: bytes, raw: bytes) -> None:
        self.queue.append((src, dst, raw))

    def run(self, limit: int = 1_000_000) -> int:
        delivered = 0
        while self.queue and delivered < limit:
            src, dst, raw = self.queue.popleft()
            env = self.verifier.open(raw)
            if self.drop(src, dst, env):
                continue
            delivered += 1
            if dst in self.clients and (dst not in self.replicas or env.type == "pbft.reply"):
                self.emit(dst, self.clients[dst].receive(env, self.now))
            elif self.replicas.get(dst) is not None:
                self.emit(dst, self.replicas[dst].receive(env, self.now))  # type: ignore[union-attr]
        return delivered

    def tick(self, dt: float) -> None:
        self.now += dt
        for pk, r in self.replicas.items():
            if r is not None:
                self.emit(pk, r.tick(self.now))
        for pk, c in self.clients.items():
            self.emit(pk, c.tick(self.now))

    def submit(self, client: Client, op: bytes) -> None:
        pk = next(k for k, c in self.clients.items() if c is client)
        self.emit(pk, client.submit(op, self.now))
