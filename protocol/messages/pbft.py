"""PBFT messages (Castro and Liskov): client requests, the three phases, checkpoints, view
changes and state transfer. Every message names its shard and epoch so a signature made in one
committee can never count in another. Proofs (prepared certificates, checkpoint proofs,
view-change sets) carry the signed envelopes themselves, as bytes, so anyone can re-check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from protocol.schema import MaxItems, message
from protocol.types import U32, U64, Blob, Digest, SmallBlob


@message("pbft.request", 1)
@dataclass(frozen=True, slots=True)
class Request:
    shard: U32
    epoch: U64
    request_id: U64
    operation: SmallBlob


@message("pbft.preprepare", 1)
@dataclass(frozen=True, slots=True)
class PrePrepare:
    shard: U32
    epoch: U64
    view: U64
    seq: U64
    digest: Digest
    requests: Annotated[tuple[Blob, ...], MaxItems(1024)]
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


@message("pbft.checkpoint", 1)
@dataclass(frozen=True, slots=True)
class Checkpoint:
    shard: U32
    epoch: U64
    seq: U64
    state_digest: Digest


@message("pbft.viewchange", 1)
@dataclass(frozen=True, slots=True)
class ViewChange:
    shard: U32
    epoch: U64
    new_view: U64
    stable_seq: U64
    checkpoint_proof: Annotated[tuple[Blob, ...], MaxItems(256)]
    prepared: Annotated[tuple[Blob, ...], MaxItems(4096)]


@message("pbft.newview", 1)
@dataclass(frozen=True, slots=True)
class NewView:
    shard: U32
    epoch: U64
    view: U64
    view_changes: Annotated[tuple[Blob, ...], MaxItems(256)]
    preprepares: Annotated[tuple[Blob, ...], MaxItems(4096)]


@message("pbft.reply", 1)
@dataclass(frozen=True, slots=True)
class Reply:
    shard: U32
    epoch: U64
    view: U64
    request_id: U64
    result: SmallBlob


@message("pbft.state_request", 1)
@dataclass(frozen=True, slots=True)
class StateRequest:
    shard: U32
    epoch: U64
    seq: U64
    """Ask for the stable checkpoint at ``seq`` (or the newest one, if 0)."""


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
