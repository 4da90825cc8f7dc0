"""Content-addressed blobs: ask a peer for a byte range of a blob by hash; it answers in chunks.

A chunk is verified against the blob's hash by the receiver (``daemon`` blob store); a peer that
sends bytes that do not hash right is counted as faulty.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.schema import message
from protocol.types import U32, U64, Blob, Digest


@message("blob.request", 1)
@dataclass(frozen=True, slots=True)
class BlobRequest:
    blob: Digest
    offset: U64
    length: U32


@message("blob.chunk", 1)
@dataclass(frozen=True, slots=True)
class BlobChunk:
    blob: Digest
    offset: U64
    total_size: U64
    data: Blob


@message("blob.missing", 1)
@dataclass(frozen=True, slots=True)
class BlobMissing:
    blob: Digest
