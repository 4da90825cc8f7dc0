"""PBFT messages (Castro and Liskov): client requests, the three phases, checkpoints, view
changes, catch-up and state transfer.

Every message names its shard and epoch, so a signature made in one committee can never count
in another. Proofs (prepared certificates, checkpoint proofs, view-change sets) carry the signed
envelopes themselves, as bytes, so anyone holding the committee list can re-check them offline.

Bounds: a batch holds at most ``MAX_BATCH`` requests; proofs hold at most ``MAX_PROOF``
envelopes; a view change covers at most ``MAX_WINDOW`` sequence numbers. The envelope's 1 MiB
cap bounds the rest. The replica (``consensus.replica``) applies tighter, configured limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from protocol.schema import MaxItems, MaxLen, message
from protocol.types import U32, U64, Blob, Digest, Signature, SmallBlob

MAX_BATCH = 1024
MAX_PROOF = 256
MAX_WINDOW = 4096
MAX_COMMITTEE = 1024

Proof = Annotated[tuple[Blob, ...], MaxItems(MAX_PROOF)]


@message("pbft.request", 1)
@dataclass(frozen=True, slots=True)
class Request:
    """A client's operation. The envelope's sender is the client; ``(client, request_id)`` is
    unique, and a replica executes each at most once. ``epoch`` is the epoch the client
    believes current: replicas accept requests for their epoch or an earlier one."""

    shard: U32
    epoch: U64
    request_id: U64
    operation: SmallBlob


@message("pbft.end_epoch", 1)
@dataclass(frozen=True, slots=True)
class EndEpoch:
    """Signed by a committee member and ordered like a request: the last thing this committee
    executes in ``epoch``. Its state after this point is handed to the next epoch's committee."""

    shard: U32
    epoch: U64


@message("pbft.preprepare", 1)
@dataclass(frozen=True, slots=True)
class PrePrepare:
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    """``consensus.log.batch_digest(requests)``; the empty batch is the null request."""
    requests: Annotated[tuple[Blob, ...], MaxItems(MAX_BATCH)]
    """The batch: signed client request envelopes, in order."""


@message("pbft.prepare", 1)
@dataclass(frozen=True, slots=True)
class Prepare:
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest


@message("pbft.commit", 1)
@dataclass(frozen=True, slots=True)
class Commit:
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    vote: Signature
    """The sender's signature over ``consensus.quorum.vote_bytes(shard, epoch, view, seq,
    digest)`` in the QUORUM_VOTE domain: 2f+1 of these form a quorum certificate."""


@message("pbft.checkpoint", 1)
@dataclass(frozen=True, slots=True)
class Checkpoint:
    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest


@dataclass(frozen=True, slots=True)
class PreparedProof:
    """A prepared certificate: the primary's pre-prepare and 2f matching prepares from
    distinct backups, all as signed envelopes."""

    preprepare: Blob
    prepares: Proof


@message("pbft.viewchange", 1)
@dataclass(frozen=True, slots=True)
class ViewChange:
    shard: U32
    epoch: U64
    new_view: U64
    stable_seq: U64
    stable_digest: Digest
    checkpoint_proof: Proof
    """2f+1 signed checkpoints for (stable_seq, stable_digest); empty for the genesis."""
    prepared: Annotated[tuple[PreparedProof, ...], MaxItems(MAX_WINDOW)]
    """For each sequence number above ``stable_seq``, the highest-view prepared certificate."""


@message("pbft.newview", 1)
@dataclass(frozen=True, slots=True)
class NewView:
    shard: U32
    epoch: U64
    view: U64
    view_changes: Proof
    """2f+1 signed view changes for ``view``."""
    preprepares: Annotated[tuple[Blob, ...], MaxItems(MAX_WINDOW)]
    """The new primary's signed pre-prepares, recomputable from ``view_changes``."""


@message("pbft.reply", 1)
@dataclass(frozen=True, slots=True)
class Reply:
    shard: U32
    epoch: U64
    view: U64
    request_id: U64
    result: SmallBlob


@message("pbft.status", 1)
@dataclass(frozen=True, slots=True)
class Status:
    """Sent periodically while a replica has work in flight: peers answer with what it lacks
    (commit proofs, a stable checkpoint, the new-view message of a later view)."""

    shard: U32
    epoch: U64
    view: U64
    view_changing: bool
    stable_seq: U64
    last_executed: U64


@dataclass(frozen=True, slots=True)
class QuorumCert:
    """2f+1 commit votes over (shard, epoch, view, seq, digest): ``signers`` is a bitmap of
    committee indices (bit i of byte i // 8, least significant first), ``signatures`` the votes
    in index order. See ``consensus.quorum``."""

    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    signers: Annotated[bytes, MaxLen(MAX_COMMITTEE // 8)]
    signatures: Annotated[tuple[Signature, ...], MaxItems(MAX_COMMITTEE)]


@message("pbft.commit_proof", 1)
@dataclass(frozen=True, slots=True)
class CommitProof:
    """A committed batch with its quorum certificate: lets a lagging replica execute it without
    having seen the three phases (catch-up within the watermarks)."""

    shard: U32
    epoch: U64
    requests: Annotated[tuple[Blob, ...], MaxItems(MAX_BATCH)]
    qc: QuorumCert


@message("pbft.stable_checkpoint", 1)
@dataclass(frozen=True, slots=True)
class StableCheckpoint:
    """A stable checkpoint's proof, sent to a replica that is behind it."""

    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    proof: Proof


@message("pbft.state_request", 1)
@dataclass(frozen=True, slots=True)
class StateRequest:
    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    offset: U64
    """Ask for the snapshot of the stable checkpoint (seq, state_digest) from ``offset`` on."""


@message("pbft.state_chunk", 1)
@dataclass(frozen=True, slots=True)
class StateChunk:
    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    offset: U64
    total: U64
    data: Blob


@message("pbft.handoff", 1)
@dataclass(frozen=True, slots=True)
class HandoffNotice:
    """From an old committee member to the next epoch's members: the shard's final state of
    ``epoch`` is the checkpoint (seq, state_digest), proven by 2f+1 signed checkpoints."""

    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    proof: Annotated[tuple[Blob, ...], MaxItems(256)]


@message("pbft.epoch", 1)
@dataclass(frozen=True, slots=True)
class EpochNotice:
    """The directory ended ``epoch``: its final state (which holds the next epoch's membership
    and randomness) with the checkpoint proof of the epoch's directory committee. Anyone who
    knows that committee can check it, so it is passed on freely."""

    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    proof: Annotated[tuple[Blob, ...], MaxItems(256)]
    state: Blob


__all__ = [
    "EpochNotice", "HandoffNotice",
    "Checkpoint", "Commit", "CommitProof", "EndEpoch", "NewView", "PrePrepare", "Prepare",
    "PreparedProof", "QuorumCert", "Reply", "Request", "StableCheckpoint", "StateChunk",
    "StateRequest", "Status", "ViewChange",
]
