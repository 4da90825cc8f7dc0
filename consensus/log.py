"""The message log: one slot per sequence number between the watermarks.

A slot holds the pre-prepare this replica accepted (in the newest view it accepted one), the
prepares and commits it received per view, and whether the batch prepared and committed here.
Each sender gets at most one prepare and one commit per (view, seq): a second one with another
digest is kept only as evidence of equivocation, never counted.

Certificates (Castro-Liskov, generalised to any n with quorum q = ceil((n+f+1)/2)):

- *prepared* in view v: the accepted pre-prepare of v plus q-1 matching prepares from distinct
  backups (the primary of v does not prepare); the pre-prepare's and the prepares' votes form
  the compact ``PreparedCert`` that view changes carry;
- *committed-local* in view v: prepared in v plus q matching commits from distinct replicas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus.statemachine import ClientRequest
from protocol.canonical import packb
from protocol.messages.pbft import PreparedCert


def batch_bytes(raws: Sequence[bytes]) -> int:
    """A batch's size as ``ReplicaConfig.max_batch_bytes`` counts it: its requests' bytes."""
    return sum(len(r) for r in raws)


def batch_digest(raws: Sequence[bytes]) -> bytes:
    """The digest a pre-prepare names: SHA-256 of the canonical array of request envelopes."""
    return hashlib.sha256(packb(list(raws), maps=False)).digest()


NULL_DIGEST = batch_digest(())


@dataclass(slots=True)
class Vote:
    digest: bytes
    raw: bytes
    sig: bytes = b""
    """The message's vote signature (a prepare's prepare vote, a commit's quorum vote)."""


@dataclass(slots=True)
class Slot:
    seq: int
    pp_view: int = -1
    """View of the accepted pre-prepare (-1: none yet)."""
    digest: bytes = b""
    pp_raw: bytes = b""
    """The accepted pre-prepare envelope; empty when the batch came from a new view (which
    names it by digest) or from a commit proof."""
    pp_vote: bytes = b""
    """The primary's prepare vote on (pp_view, seq, digest)."""
    requests: tuple[ClientRequest, ...] | None = ()
    """The batch; None while only its digest is known (fetched with ``BatchFetch``)."""
    prepares: dict[int, dict[int, Vote]] = field(default_factory=dict)
    """view -> sender index -> the first prepare it sent."""
    commits: dict[int, dict[int, Vote]] = field(default_factory=dict)
    prepared_view: int = -1
    """Highest view in which this slot prepared here (-1: never)."""
    prepared_cert: PreparedCert | None = None
    """The highest-view prepared certificate."""
    committed: bool = False
    committed_view: int = -1
    qc_votes: dict[int, bytes] | None = None
    """The quorum's commit votes (index -> signature), kept for building certificates."""
    qc_checked: bool = False
    """Whether every vote in ``qc_votes`` was verified."""
    pp_refs: bytes = b""
    """The primary's signed ``PrePrepareRefs`` of ``pp_raw`` (by-reference committees; not
    persisted): what a status answer sends a peer instead of the whole batch again."""
    executed_at: float | None = None
    """When this replica executed the batch (not persisted: after a restart, long ago)."""

    def count(self, votes: dict[int, dict[int, Vote]], view: int, digest: bytes,
              exclude: int = -1) -> int:
        by_sender = votes.get(view)
        if not by_sender:
            return 0
        return sum(1 for i, v in by_sender.items() if v.digest == digest and i != exclude)

    def matching(self, votes: dict[int, dict[int, Vote]], view: int, digest: bytes,
                 exclude: int = -1) -> dict[int, Vote]:
        return {i: v for i, v in votes.get(view, {}).items() if v.digest == digest and i != exclude}


class MessageLog:
    """Slots between the low watermark ``low`` (exclusive, the last stable checkpoint) and
    ``low + window`` (inclusive)."""

    __slots__ = ("window", "low", "slots")

    def __init__(self, window: int, low: int = 0) -> None:
        self.window = window
        self.low = low
        self.slots: dict[int, Slot] = {}

    @property
    def high(self) -> int:
        return self.low + self.window

    def in_window(self, seq: int) -> bool:
        return self.low < seq <= self.low + self.window

    def get(self, seq: int) -> Slot | None:
        return self.slots.get(seq)

    def slot(self, seq: int) -> Slot:
        s = self.slots.get(seq)
        if s is None:
            s = self.slots[seq] = Slot(seq)
        return s

    def truncate(self, low: int) -> list[int]:
        """Move the low watermark up to ``low``; drop and return the discarded sequence numbers."""
        if low <= self.low:
            return []
        self.low = low
        gone = [s for s in self.slots if s <= low]
        for s in gone:
            del self.slots[s]
        return gone
