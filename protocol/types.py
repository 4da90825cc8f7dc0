"""Named field types for message classes: integer widths, fixed-size byte strings, bounded text.

Everything a peer sends is bounded by one of these (or by the envelope's overall size cap).
"""

from __future__ import annotations

from typing import Annotated

from protocol.schema import MaxItems, MaxLen, Range, Size

U8 = Annotated[int, Range(0, (1 << 8) - 1)]
U16 = Annotated[int, Range(0, (1 << 16) - 1)]
U32 = Annotated[int, Range(0, (1 << 32) - 1)]
U64 = Annotated[int, Range(0, (1 << 64) - 1)]
I64 = Annotated[int, Range(-(1 << 63), (1 << 63) - 1)]

Digest = Annotated[bytes, Size(32)]
"""A SHA-256 / BLAKE2b-256 digest."""
PublicKey = Annotated[bytes, Size(32)]
"""An Ed25519 public key."""
Signature = Annotated[bytes, Size(64)]
"""An Ed25519 signature."""
NodeIdText = Annotated[str, MaxLen(64)]
"""A libp2p peer id in base58 (52 characters for Ed25519 keys)."""
Name = Annotated[str, MaxLen(128)]
"""A short identifier: a CRDT name, a runtime name, a topic."""
Text = Annotated[str, MaxLen(4096)]
"""Human-readable text such as an error message."""
TimestampMs = Annotated[int, Range(0, (1 << 63) - 1)]
"""Milliseconds since the Unix epoch, on the sender's clock (never trusted for ordering)."""

SmallBlob = Annotated[bytes, MaxLen(64 * 1024)]
Blob = Annotated[bytes, MaxLen(1 << 20)]

__all__ = [
    "U8", "U16", "U32", "U64", "I64", "Digest", "PublicKey", "Signature", "NodeIdText", "Name",
    "Text", "TimestampMs", "SmallBlob", "Blob", "MaxItems", "MaxLen", "Range", "Size",
]
