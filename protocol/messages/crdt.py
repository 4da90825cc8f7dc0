"""Soft-state synchronisation: delta-state CRDT anti-entropy (``crdt`` package).

``CrdtDelta`` carries a delta interval [seq_from, seq_to] of one replicated object from the
sender's delta buffer; ``CrdtAck`` acknowledges it so the sender can drop it. On (re)connect,
``CrdtDigest`` tells the peer our causal context; it answers with deltas, or with ``CrdtState``
when we are too far behind for its buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.schema import message
from protocol.types import U64, Name


@message("crdt.delta", 1)
@dataclass(frozen=True, slots=True)
class CrdtDelta:
    object: Name
    seq_from: U64
    seq_to: U64
    delta: Any


@message("crdt.ack", 1)
@dataclass(frozen=True, slots=True)
class CrdtAck:
    object: Name
    seq: U64


@message("crdt.digest", 1)
@dataclass(frozen=True, slots=True)
class CrdtDigest:
    object: Name
    context: Any


@message("crdt.state", 1)
@dataclass(frozen=True, slots=True)
class CrdtState:
    object: Name
    state: Any
