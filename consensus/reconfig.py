"""Reconfiguration: handing a shard's state from epoch e's committee to epoch e+1's.

1. When the directory has ordered epoch e+1, each member of the shard's old committee submits
   an ``EndEpoch`` to its own committee. The first one ordered ends the epoch at its sequence
   number s: every correct replica executes exactly the requests ordered before it (later
   batches are no-ops, so their requests stay unexecuted and unanswered), takes a checkpoint at
   s, and once that checkpoint is stable reports ``EpochEnded(s, digest, proof)``.
2. A member of the new committee obtains that ``Handoff`` (from any old member: the proof
   makes it self-certifying), checks the proof against the *old* committee list from the
   directory (``verify_handoff``), fetches the snapshot from old members (``HandoffFetch``,
   ordinary state transfer, any member may ask), and derives its genesis (``next_genesis``).
3. It starts ``Replica(new_config, ..., genesis=...)``. Clients whose requests were cut off
   re-send them to the new committee with the same request ids (``Client.reconfigure``).

Nothing committed is lost (it is in the handed-over state) and nothing is executed twice (the
per-client table of executed request ids is part of that state). The old committee keeps
serving its final checkpoint until the shell retires it, e.g. after the new committee's first
stable checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.actions import Action, Send
from consensus.checkpoint import InvalidProof, check_checkpoint_proof
from consensus.config import ReplicaConfig
from consensus.crypto import Signer
from consensus.statemachine import Service, StateMachine, state_digest
from consensus.statetransfer import StateFetch
from protocol.envelope import Envelope
from protocol.messages.pbft import StateChunk


@dataclass(frozen=True, slots=True)
class Handoff:
    shard: int
    epoch: int
    """The epoch that ended."""
    seq: int
    digest: bytes
    proof: tuple[bytes, ...]


def verify_handoff(h: Handoff, old_committee: tuple[bytes, ...], verifier) -> None:  # type: ignore[no-untyped-def]
    """Raise ``InvalidProof`` unless a quorum of the old committee signed (seq, digest)."""
    if h.seq == 0:
        raise InvalidProof("an epoch cannot end at sequence number 0")
    cfg = ReplicaConfig(h.shard, h.epoch, old_committee)
    check_checkpoint_proof(cfg, h.seq, h.digest, h.proof, verifier, b"")


def next_genesis(h: Handoff, snapshot: bytes, machine: StateMachine) -> bytes:
    """The next epoch's initial state: the old final state, reopened for requests."""
    if state_digest(snapshot) != h.digest:
        raise InvalidProof("handed-over state does not match the certified digest")
    service = Service(machine)
    service.restore(snapshot)
    if not service.ended:
        raise InvalidProof("handed-over state is not the final state of its epoch")
    service.ended = False
    return service.snapshot()


class HandoffFetch:
    """Fetch the final snapshot of (shard, old epoch) from the old committee."""

    def __init__(self, h: Handoff, signer: Signer, verifier, retry_after: float = 0.5,  # type: ignore[no-untyped-def]
                 max_bytes: int = 1 << 30) -> None:
        self.handoff = h
        self.signer = signer
        sources = [verifier.open(raw).sender for raw in h.proof]
        self.fetch = StateFetch(h.shard, h.epoch, h.seq, h.digest, sources, retry_after,
                                max_bytes)
        self.snapshot: bytes | None = None

    def tick(self, now: float) -> list[Action]:
        if self.snapshot is not None:
            return []
        req = self.fetch.poll(now)
        return [] if req is None else [Send(req[0], self.signer.seal(req[1], now))]

    def receive(self, env: Envelope, now: float) -> list[Action]:
        if self.snapshot is not None or not isinstance(env.body, StateChunk):
            return []
        snap, nxt = self.fetch.on_chunk(env.sender, env.body, now)
        if snap is not None:
            self.snapshot = snap
        return [] if nxt is None else [Send(nxt[0], self.signer.seal(nxt[1], now))]
