"""Checkpoints: every K batches each replica signs the digest of its state; 2f+1 matching
signatures (a quorum, in general) make the checkpoint *stable*, which proves that state to
anyone, lets replicas drop the log below it, and is what state transfer installs.

``CheckpointTracker`` collects the signed checkpoints of others, keeps this replica's own
snapshots until they are superseded, and reports when a checkpoint becomes stable.
Memory is bounded: each sender's votes are kept for at most ``per_sender`` sequence numbers
above the stable one (the newest win), so a flood of fake future checkpoints costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from consensus.config import ReplicaConfig
from consensus.crypto import Verifier
from protocol.errors import RemoteProtocolError
from protocol.messages.pbft import Checkpoint


class InvalidProof(RemoteProtocolError):
    """A certificate or proof inside a message does not hold."""

    reason = "invalid_proof"


class Diverged(Exception):
    """This replica's own state contradicts a stable checkpoint: more than f replicas are
    faulty, or the state machine is not deterministic. The replica must stop; the shell should
    alert its operator (its evidence: the checkpoint proof and its own digest)."""


@dataclass(frozen=True, slots=True)
class Stable:
    seq: int
    digest: bytes
    proof: tuple[bytes, ...]
    """Quorum of signed ``Checkpoint`` envelopes; empty for the genesis (seq 0)."""


def check_checkpoint_proof(cfg: ReplicaConfig, seq: int, digest: bytes,
                           proof: Iterable[bytes], verifier: Verifier, genesis_digest: bytes
                           ) -> None:
    """Raise ``InvalidProof`` unless ``proof`` holds a quorum of distinct members' signed
    checkpoints for (seq, digest) of this shard and epoch."""
    if seq == 0:
        if digest != genesis_digest:
            raise InvalidProof("the genesis checkpoint has another digest")
        return
    signers = set()
    for raw in proof:
        env = verifier.open(raw)
        m = env.body
        idx = cfg.index_of(env.sender)
        if not isinstance(m, Checkpoint) or idx is None or (m.shard, m.epoch, m.seq,
                                                           m.state_digest) != (
                cfg.shard, cfg.epoch, seq, digest):
            raise InvalidProof("a checkpoint proof entry does not match")
        signers.add(idx)
    if len(signers) < cfg.quorum:
        raise InvalidProof(f"checkpoint proof has {len(signers)} signers, need {cfg.quorum}")


class CheckpointTracker:
    __slots__ = ("cfg", "stable", "stable_snapshot", "own", "votes", "per_sender")

    def __init__(self, cfg: ReplicaConfig, genesis_digest: bytes, genesis_snapshot: bytes):
        self.cfg = cfg
        self.stable = Stable(0, genesis_digest, ())
        self.stable_snapshot: bytes | None = genesis_snapshot
        self.own: dict[int, tuple[bytes, bytes]] = {}
        """seq -> (digest, snapshot) of this replica's own checkpoints above the stable one."""
        self.votes: dict[int, dict[int, tuple[bytes, bytes]]] = {}
        """seq -> sender -> (digest, signed checkpoint)."""
        self.per_sender = cfg.window // cfg.checkpoint_interval + 2

    def add_own(self, seq: int, digest: bytes, snapshot: bytes) -> None:
        if seq > self.stable.seq:
            self.own[seq] = (digest, snapshot)

    def snapshot_for(self, seq: int, digest: bytes) -> bytes | None:
        """The snapshot with this digest, if kept. The digest names the content, so a later
        checkpoint with the same state serves too (after an epoch ends the state stops
        changing while no-op batches still move the sequence numbers on)."""
        if digest == self.stable.digest and self.stable_snapshot is not None:
            return self.stable_snapshot
        own = self.own.get(seq)
        if own is not None and own[0] == digest:
            return own[1]
        return next((snap for d, snap in self.own.values() if d == digest), None)

    def add_vote(self, sender: int, seq: int, digest: bytes, raw: bytes) -> Stable | None:
        """Record a verified checkpoint; return the new stable checkpoint if one formed."""
        if seq <= self.stable.seq:
            return None
        by_sender = self.votes.setdefault(seq, {})
        if sender in by_sender:
            return None
        by_sender[sender] = (digest, raw)
        mine = sorted(s for s, v in self.votes.items() if sender in v)
        for old in mine[:-self.per_sender]:
            del self.votes[old][sender]
            if not self.votes[old]:
                del self.votes[old]
        if seq not in self.votes:
            return None
        matching = [r for d, r in by_sender.values() if d == digest]
        if len(matching) >= self.cfg.quorum:
            return Stable(seq, digest, tuple(matching[: self.cfg.quorum]))
        return None

    def make_stable(self, stable: Stable, snapshot: bytes | None) -> None:
        """Adopt ``stable``; ``snapshot`` is its state if this replica has it (else state
        transfer will bring it)."""
        self.stable = stable
        self.stable_snapshot = snapshot
        for s in [s for s in self.votes if s <= stable.seq]:
            del self.votes[s]
        for s in [s for s in self.own if s <= stable.seq]:
            del self.own[s]
