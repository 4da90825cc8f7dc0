"""Soft-state synchronisation: delta-state CRDT anti-entropy (``crdt.replica``).

One anti-entropy stream per replica carries every replicated object, so a tick sends a peer
one message however many objects changed. Sequence numbers count the sender's delta buffer
within ``session`` (chosen at start-up; a restart starts a new session).

- ``CrdtDelta``: the sender's buffered deltas ``seq_from .. seq_to`` joined, per object.
- ``CrdtAck``: "I have applied your stream up to ``seq``".
- ``CrdtDigest``: sent on (re)connect and periodically: the sender's causal context per
  object and how far it applied the receiver's stream; the receiver works out what it lacks.
- ``CrdtDigestPart``: a digest too large for one message (thousands of writers), cut by
  writer into ``parts`` messages; the receiver acts once it has them all (``crdt.digests``).
- ``CrdtSummary``: what a replica sends instead of a digest (on connect, periodically, to
  repair a stream): per object, the number of context rows and one 64-bit hash per bucket of
  writers (16 buckets by a hash of the writer id), so two replicas that agree exchange a few
  hundred bytes however many writers there are (``crdt.buckets``).
- ``CrdtSummaryWant``: the receiver of a summary asks for the buckets that differ (or, with
  prefix depth 0, for the sender's whole digest, when most differ); ``round`` matches replies.
- ``CrdtSummaryReply``: per wanted bucket, either its 16 sub-bucket hashes (a large bucket:
  the asker recurses) or its context rows (a small one).
- ``CrdtState``: the fallback for a peer too far behind the buffer: the whole state, or, in
  reply to a digest, the entries the peer lacks plus the dots of those it has; split into
  ``parts`` messages when it is larger than one message may be (``crdt.transfer``).

``replicas`` is the message's table of node ids; object payloads name writers by index.
``CrdtObject.data`` is the object's ``crdt.codec`` payload as msgpack bytes: opaque here (no
walk of a large free-form value on every encode), decoded by ``crdt.codec`` with its own caps
(entries, ranges, key and value sizes, value nesting) inside the envelope's 1 MiB cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from protocol.schema import MaxItems, message
from protocol.types import U32, U64, Blob, Name, NodeIdText

MAX_OBJECTS = 64
MAX_REPLICAS = 4096


@dataclass(frozen=True, slots=True)
class CrdtObject:
    name: Name
    data: Blob
    """``crdt.codec`` object payload in msgpack (a context alone, in a digest)."""


Objects = Annotated[tuple[CrdtObject, ...], MaxItems(MAX_OBJECTS)]
Replicas = Annotated[tuple[NodeIdText, ...], MaxItems(MAX_REPLICAS)]


@message("crdt.delta", 1)
@dataclass(frozen=True, slots=True)
class CrdtDelta:
    session: U64
    seq_from: U64
    seq_to: U64
    replicas: Replicas
    objects: Objects


@message("crdt.ack", 1)
@dataclass(frozen=True, slots=True)
class CrdtAck:
    session: U64
    """The session of the stream being acknowledged (the receiver's own)."""
    seq: U64


@message("crdt.digest", 1)
@dataclass(frozen=True, slots=True)
class CrdtDigest:
    session: U64
    """The sender's own stream session."""
    applied_session: U64
    """The receiver's stream session the sender has applied from (0: none)."""
    applied_seq: U64
    replicas: Replicas
    contexts: Objects


@message("crdt.digest_part", 1)
@dataclass(frozen=True, slots=True)
class CrdtDigestPart:
    session: U64
    applied_session: U64
    applied_seq: U64
    part: U32
    parts: U32
    """Part ``part`` (from 0) of ``parts``; each object's context is the join of its slices."""
    replicas: Replicas
    contexts: Objects


@message("crdt.summary", 1)
@dataclass(frozen=True, slots=True)
class CrdtSummary:
    session: U64
    applied_session: U64
    applied_seq: U64
    """As in ``CrdtDigest``: how far the sender applied the receiver's stream."""
    objects: Objects
    """Per object, ``[rows, [hash of bucket 0 .. 15]]`` (``crdt.buckets``)."""


@message("crdt.summary_want", 1)
@dataclass(frozen=True, slots=True)
class CrdtSummaryWant:
    round: U64
    objects: Objects
    """Per object, ``[[depth, prefix], ...]``: the buckets wanted (depth 0: the whole digest)."""


@message("crdt.summary_reply", 1)
@dataclass(frozen=True, slots=True)
class CrdtSummaryReply:
    round: U64
    replicas: Replicas
    objects: Objects
    """Per object, ``[[depth, prefix, 0, [16 hashes]] | [depth, prefix, 1, rows], ...]``."""


@message("crdt.state", 1)
@dataclass(frozen=True, slots=True)
class CrdtState:
    session: U64
    seq: U64
    """The state includes everything in the sender's stream up to ``seq``."""
    part: U32
    parts: U32
    """This is part ``part`` (from 0) of ``parts``; the receiver joins them all at once."""
    replicas: Replicas
    objects: Objects
