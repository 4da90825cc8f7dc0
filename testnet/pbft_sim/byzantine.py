"""Byzantine replicas for the simulator. Each runs the honest replica code underneath (so it
knows the protocol state a real attacker would know) and lies on the wire with its own key.

- ``Silent``        -- receives everything, sends nothing.
- ``Equivocator``   -- as primary, sends every backup a different pre-prepare for the same
                       (view, seq): the original, or a batch of a request it signed itself.
- ``DoubleVoter``   -- every prepare and commit goes out twice: the real one to half of the
                       committee, one for a random digest (with a valid vote) to the rest.
- ``Replayer``      -- keeps what it received and re-sends old messages to random replicas.
- ``OutOfWindow``   -- sends phase messages with sequence numbers outside the watermarks,
                       far-future views, and view changes for absurd views.
- ``Flooder``       -- sends garbage: random bytes, flipped signatures, envelopes that claim
                       another sender.
- Twins (two ``ReplicaNode``s sharing one key) are built by ``Cluster.add_replica`` twice with
  the same index; see ``scenarios``.
"""

from __future__ import annotations

import random
from typing import Any

from consensus.actions import Broadcast
from consensus.quorum import prepare_bytes, vote_bytes
from protocol.messages.pbft import (
    Commit, PrePrepare, Prepare, Request, ViewChange,
)
from consensus.log import batch_digest
from testnet.pbft_sim.adapter import ReplicaNode
from testnet.sim import Simulation


class Byzantine(ReplicaNode):
    kind = "byzantine"

    def __init__(self, cluster: Any, name: str, pk: bytes) -> None:
        super().__init__(cluster, name, pk)
        self.faulty = True
        self.rng = random.Random(cluster.sim.rng.getrandbits(64))
        self.injected = 0

    def others(self) -> list[bytes]:
        return [pk for pk in self.cluster.cfg.committee if pk != self.pk]

    def decode(self, data: bytes) -> Any:
        return self.cluster.keys.verifier.open(data).body


class Silent(Byzantine):
    kind = "silent"

    def outgoing(self, sim: Simulation, a: Any) -> list[tuple[bytes, bytes]]:
        self.injected += 1
        return []


class Equivocator(Byzantine):
    kind = "equivocate"

    def outgoing(self, sim: Simulation, a: Any) -> list[tuple[bytes, bytes]]:
        if type(a) is not Broadcast:
            return super().outgoing(sim, a)
        m = self.decode(a.data)
        if not isinstance(m, PrePrepare):
            return super().outgoing(sim, a)
        self.injected += 1
        out = []
        for k, pk in enumerate(self.others()):
            if k == 0:
                out.append((pk, a.data))
                continue
            req = self.signer.seal(Request(m.shard, m.epoch, self.rng.getrandbits(48) + 1,
                                           b"equivocation"), sim.now)
            reqs = (req,)
            d = batch_digest(reqs)
            alt = PrePrepare(m.shard, m.epoch, m.view, m.seq, d, reqs, self.signer.sign_vote(
                prepare_bytes(m.shard, m.epoch, m.view, m.seq, d)))
            out.append((pk, self.signer.seal(alt, sim.now)))
        return out


class DoubleVoter(Byzantine):
    kind = "double_vote"

    def outgoing(self, sim: Simulation, a: Any) -> list[tuple[bytes, bytes]]:
        if type(a) is not Broadcast:
            return super().outgoing(sim, a)
        m = self.decode(a.data)
        if not isinstance(m, (Prepare, Commit)):
            return super().outgoing(sim, a)
        self.injected += 1
        fake_digest = self.rng.randbytes(32)
        if isinstance(m, Prepare):
            fake: Any = Prepare(m.shard, m.epoch, m.view, m.seq, fake_digest,
                                self.signer.sign_vote(prepare_bytes(m.shard, m.epoch, m.view,
                                                                    m.seq, fake_digest)))
        else:
            vote = self.signer.sign_vote(vote_bytes(m.shard, m.epoch, m.view, m.seq, fake_digest))
            fake = Commit(m.shard, m.epoch, m.view, m.seq, fake_digest, vote)
        fake_raw = self.signer.seal(fake, sim.now)
        others = self.others()
        self.rng.shuffle(others)
        half = len(others) // 2
        return [(pk, fake_raw) for pk in others[:half]] + [(pk, a.data) for pk in others[half:]]


class Replayer(Byzantine):
    kind = "replay"

    def __init__(self, cluster: Any, name: str, pk: bytes) -> None:
        super().__init__(cluster, name, pk)
        self.seen: list[bytes] = []

    def on_message(self, sim: Simulation, src: str, data: Any) -> None:
        if len(self.seen) < 2000:
            self.seen.append(data)
        elif self.rng.random() < 0.1:
            self.seen[self.rng.randrange(len(self.seen))] = data
        super().on_message(sim, src, data)

    def on_tick(self, sim: Simulation, now: float) -> None:
        super().on_tick(sim, now)
        if self.seen:
            for _ in range(3):
                self.injected += 1
                self.cluster.route(sim, self.name, self.rng.choice(self.others()),
                                   self.rng.choice(self.seen))


class OutOfWindow(Byzantine):
    kind = "out_of_window"

    def on_tick(self, sim: Simulation, now: float) -> None:
        super().on_tick(sim, now)
        r = self.replica
        if r is None:
            return
        cfg = self.cluster.cfg
        rng = self.rng
        seq = rng.choice([0, r.log.low, r.log.high + 1 + rng.randrange(1000), 2**63])
        view = rng.choice([r.view, r.view + 1 + rng.randrange(1000)])
        d = rng.randbytes(32)
        vote = self.signer.sign_vote(vote_bytes(cfg.shard, cfg.epoch, view, seq, d))
        msgs: list[Any] = [
            Prepare(cfg.shard, cfg.epoch, view, seq, d, self.signer.sign_vote(
                prepare_bytes(cfg.shard, cfg.epoch, view, seq, d))),
            Commit(cfg.shard, cfg.epoch, view, seq, d, vote),
            PrePrepare(cfg.shard, cfg.epoch, view, seq, batch_digest(()), (),
                       self.signer.sign_vote(prepare_bytes(cfg.shard, cfg.epoch, view, seq,
                                                           batch_digest(())))),
            ViewChange(cfg.shard, cfg.epoch, view + rng.randrange(1 << 40), r.stable.seq,
                       r.stable.digest, r.stable.proof, ()),
        ]
        m = rng.choice(msgs)
        self.injected += 1
        raw = self.signer.seal(m, now)
        for pk in self.others():
            self.cluster.route(sim, self.name, pk, raw)


class Flooder(Byzantine):
    kind = "flood"

    def on_tick(self, sim: Simulation, now: float) -> None:
        super().on_tick(sim, now)
        r = self.replica
        if r is None:
            return
        cfg = self.cluster.cfg
        for _ in range(4):
            self.injected += 1
            kind = self.rng.randrange(3)
            raw = self.signer.seal(Prepare(cfg.shard, cfg.epoch, r.view, r.log.low + 1,
                                           self.rng.randbytes(32), self.rng.randbytes(64)), now)
            if kind == 0:
                bad = self.rng.randbytes(self.rng.randrange(1, 300))
            elif kind == 1:
                b = bytearray(raw)
                b[3 + self.rng.randrange(64)] ^= 1 << self.rng.randrange(8)
                bad = bytes(b)
            else:  # claims to come from another member: the MAC/signature cannot match
                victim = self.rng.choice(self.others())
                bad = raw.replace(self.pk, victim)
            self.cluster.route(sim, self.name, self.rng.choice(self.others()), bad)


BEHAVIOURS: dict[str, type[Byzantine]] = {
    c.kind: c for c in (Silent, Equivocator, DoubleVoter, Replayer, OutOfWindow, Flooder)
}
