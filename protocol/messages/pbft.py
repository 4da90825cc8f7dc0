"""PBFT messages (Castro and Liskov): client requests, the three phases, checkpoints, view
changes, catch-up and state transfer.

Every message names its shard and epoch, so a signature made in one committee can never count
in another. Proofs (prepared certificates, checkpoint proofs, view-change sets) carry the signed
envelopes themselves, as bytes, so anyone holding the committee list can re-check them offline.

Bounds: a batch holds at most ``MAX_BATCH`` requests; proofs hold at most ``MAX_PROOF``
envelopes; a view change covers at most ``MAX_WINDOW`` sequence numbers. The envelope's 1 MiB
cap bounds the rest. The replica (``consensus.replica``) applies tighter, configured limits,
and keeps every message it builds under its transport's frame cap (``consensus.sizes``): only
pre-prepares, commit proofs and batch bodies carry batches; view changes and new views name
batches by digest and carry compact vote certificates, never request envelopes.
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


@message("pbft.preprepare", 2)
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
    vote: Signature
    """The primary's prepare vote: its signature over ``consensus.quorum.prepare_bytes(shard,
    epoch, view, seq, digest)``, so a prepared certificate can name the batch by digest."""


@message("pbft.preprepare_refs", 1)
@dataclass(frozen=True, slots=True)
class PrePrepareRefs:
    """A pre-prepare sent by reference (``consensus.replica``, "Pre-prepares by reference"):
    the primary's signed ``PrePrepare`` envelope with each request replaced by its SHA-256.
    A member that holds every request (clients of large committees send theirs to every
    member) rebuilds the exact signed envelope and checks it as if it had come whole; one
    that lacks some asks the primary for the batch. ``context``, ``env_seq``,
    ``timestamp_ms`` and ``signature`` are that envelope's own."""

    context: U64
    env_seq: U64
    timestamp_ms: U64
    signature: Signature
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    refs: Annotated[tuple[Digest, ...], MaxItems(MAX_BATCH)]
    vote: Signature


@message("pbft.prepare", 2)
@dataclass(frozen=True, slots=True)
class Prepare:
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    vote: Signature
    """The sender's signature over ``consensus.quorum.prepare_bytes(...)`` (see PrePrepare)."""


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
class PreparedCert:
    """A prepared certificate, compact: a quorum of prepare votes (the primary's, from its
    pre-prepare or new view, and the backups') on (shard, epoch, view, seq, digest). The batch
    itself is named by its digest only. ``signers`` is a bitmap of committee indices,
    ``signatures`` the votes in index order (as in ``QuorumCert``)."""

    view: U64
    seq: U64
    digest: Digest
    signers: Annotated[bytes, MaxLen(MAX_COMMITTEE // 8)]
    signatures: Annotated[tuple[Signature, ...], MaxItems(MAX_COMMITTEE)]


@message("pbft.viewchange", 2)
@dataclass(frozen=True, slots=True)
class ViewChange:
    shard: U32
    epoch: U64
    new_view: U64
    stable_seq: U64
    stable_digest: Digest
    checkpoint_proof: Proof
    """2f+1 signed checkpoints for (stable_seq, stable_digest); empty for the genesis."""
    prepared: Annotated[tuple[PreparedCert, ...], MaxItems(MAX_WINDOW)]
    """For each sequence number above ``stable_seq``, the highest-view prepared certificate."""


@dataclass(frozen=True, slots=True)
class NewViewBatch:
    """One re-proposed sequence number of a new view: the batch digest and the new primary's
    prepare vote on it (the null batch where no view change had a certificate)."""

    seq: U64
    digest: Digest
    vote: Signature


@message("pbft.newview", 2)
@dataclass(frozen=True, slots=True)
class NewView:
    shard: U32
    epoch: U64
    view: U64
    view_changes: Annotated[tuple[Digest, ...], MaxItems(MAX_PROOF)]
    """SHA-256 of the quorum of signed view changes for ``view`` the primary chose; a backup
    that lacks one asks for it (``ViewChangeFetch``). Referring, not embedding, keeps a new
    view small whatever the committee size and the batches."""
    batches: Annotated[tuple[NewViewBatch, ...], MaxItems(MAX_WINDOW)]
    """The re-proposed batches, recomputable from the view changes."""


@message("pbft.viewchange_fetch", 1)
@dataclass(frozen=True, slots=True)
class ViewChangeFetch:
    """Ask for signed view changes by digest (those a new view names and the asker lacks)."""

    shard: U32
    epoch: U64
    view: U64
    digests: Annotated[tuple[Digest, ...], MaxItems(MAX_PROOF)]


@message("pbft.batch_fetch", 1)
@dataclass(frozen=True, slots=True)
class BatchFetch:
    """Ask for the requests of a batch known only by digest (a new view re-proposed it)."""

    shard: U32
    epoch: U64
    seq: U64
    digest: Digest


@message("pbft.batch_body", 1)
@dataclass(frozen=True, slots=True)
class BatchBody:
    """A batch's requests; checked against the digest the log already holds for ``seq``."""

    shard: U32
    epoch: U64
    seq: U64
    digest: Digest
    requests: Annotated[tuple[Blob, ...], MaxItems(MAX_BATCH)]


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


@message("pbft.handoff_want", 1)
@dataclass(frozen=True, slots=True)
class HandoffWant:
    """From a new member to an old one: send me your ``HandoffNotice`` of (shard, epoch); the
    ones meant for me did not come (``daemon.committees.handoff_plan``)."""

    shard: U32
    epoch: U64


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


@message("pbft.epoch_delta", 1)
@dataclass(frozen=True, slots=True)
class EpochDelta:
    """An ``EpochNotice`` whose state is given as the difference from the state of the notice
    before it (digest ``base_digest``: ``consensus.statedelta``), as a node that has followed
    the chain to ``epoch`` is sent it (``EpochFetch``); the first notice goes whole."""

    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest
    proof: Annotated[tuple[Blob, ...], MaxItems(256)]
    base_digest: Digest
    delta: Blob


@message("pbft.epoch_have", 1)
@dataclass(frozen=True, slots=True)
class EpochHave:
    """The sender has followed the epoch chain to ``epoch`` (it holds the notices that end
    every epoch before it). Sent to each peer as it connects and as the sender moves on: a
    peer that is behind asks for what it lacks (``EpochFetch``) instead of being sent every
    notice by every neighbour. ``shard`` is the directory's."""

    shard: U32
    epoch: U64


@message("pbft.epoch_fetch", 1)
@dataclass(frozen=True, slots=True)
class EpochFetch:
    """Send me the notices that end ``epoch`` and the epochs after it (a bounded batch)."""

    shard: U32
    epoch: U64


__all__ = [
    "EpochDelta", "EpochFetch", "EpochHave", "EpochNotice", "HandoffNotice", "HandoffWant", "BatchBody", "BatchFetch", "NewViewBatch", "ViewChangeFetch",
    "Checkpoint", "Commit", "CommitProof", "EndEpoch", "NewView", "PrePrepare", "PrePrepareRefs",
    "Prepare",
    "PreparedCert", "QuorumCert", "Reply", "Request", "StableCheckpoint", "StateChunk",
    "StateRequest", "Status", "ViewChange",
]
