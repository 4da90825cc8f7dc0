"""A replica's static configuration: which committee it belongs to and the protocol knobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from consensus import sizes
from consensus.committee import max_faulty
from consensus.quorum import quorum_size
from protocol.errors import LocalProtocolError
from protocol.messages.pbft import MAX_BATCH, MAX_COMMITTEE, MAX_PROOF, MAX_WINDOW

T = TypeVar("T")


def in_turn(ring: Sequence[T], round_: int, size: int) -> list[T]:
    """The ``round_``-th group of ``size`` consecutive items of ``ring`` (wrapping), so that
    successive rounds reach every item: with size f+1, each group holds a correct member. What
    a client's re-sends and a replica's batch asks go to, instead of everyone at once."""
    size = min(size, len(ring))
    return [ring[(round_ * size + j) % len(ring)] for j in range(size)]


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    shard: int
    epoch: int
    committee: tuple[bytes, ...]
    """Members' public keys in committee order; index i is replica i, the primary of view v is
    ``v mod n``."""
    checkpoint_interval: int = 16
    """K: a checkpoint after every K sequence numbers."""
    window: int = 32
    """L: sequence numbers accepted above the low watermark (the last stable checkpoint)."""
    batch_size: int = 16
    """Requests per pre-prepare at most."""
    max_batch_bytes: int = 256 * 1024
    """Bytes of requests per pre-prepare at most (a single request always fits)."""
    max_message: int = 512 * 1024
    """The transport's frame cap: no message this replica builds may be larger
    (``consensus.sizes``; checked here for the worst case of every kind)."""
    max_inflight: int = 4
    """Batches the primary keeps proposed-but-unexecuted before it waits (batching kicks in)."""
    view_change_timeout: float = 1.0
    """Seconds without progress on pending work before a backup suspects the primary; doubled
    for each view change in a row that brings no progress."""
    max_view_change_timeout: float = 30.0
    """Cap on the doubling, so that after a long partition the network recovers in bounded time."""
    status_interval: float = 0.25
    """Seconds between status messages while work is pending (drives retransmission)."""
    max_pending: int = 100_000
    """Clients with a request waiting at most (keys are free to make: the table is bounded)."""
    chunk_size: int = 256 * 1024
    max_state_bytes: int = 1 << 30
    refs_above: int = 6
    """Committees with more members than this send pre-prepares by reference and have their
    clients send each request to every member (``consensus.replica``); smaller ones send
    batches whole, to the primary only, as before."""
    certify: bool = True
    """Build a quorum certificate for every committed batch (checks 2f+1 vote signatures)."""
    _index: dict[bytes, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def by_reference(self) -> bool:
        """Pre-prepares by reference, requests sent to every member (``refs_above``)."""
        return len(self.committee) > self.refs_above

    def __post_init__(self) -> None:
        n = len(self.committee)
        if not 1 <= n <= min(MAX_COMMITTEE, MAX_PROOF):
            raise LocalProtocolError(f"committee size {n} is outside [1, {MAX_PROOF}]")
        if len(set(self.committee)) != n:
            raise LocalProtocolError("committee members must be distinct")
        if self.checkpoint_interval < 1 or self.window < 2 * self.checkpoint_interval \
                or self.window > MAX_WINDOW:
            raise LocalProtocolError("need 1 <= K and 2K <= L <= MAX_WINDOW")
        if not 1 <= self.batch_size <= MAX_BATCH or self.max_inflight < 1:
            raise LocalProtocolError("batch_size and max_inflight out of range")
        if self.max_batch_bytes < sizes.MAX_REQUEST_BYTES:
            raise LocalProtocolError(f"max_batch_bytes must hold one request "
                                     f"({sizes.MAX_REQUEST_BYTES} bytes)")
        over = {k: v for k, v in self.worst_case().items() if v > self.max_message}
        if over:
            raise LocalProtocolError(
                "some messages could exceed max_message="
                f"{self.max_message}: {', '.join(f'{k} {v}' for k, v in over.items())}; "
                "lower max_batch_bytes, chunk_size or the window")
        self._index.update({pk: i for i, pk in enumerate(self.committee)})

    def worst_case(self) -> dict[str, int]:
        """The largest message of each kind this replica can build (``consensus.sizes``)."""
        return sizes.largest(len(self.committee), self.window, self.max_batch_bytes,
                             self.batch_size, self.chunk_size)

    @property
    def n(self) -> int:
        return len(self.committee)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return quorum_size(self.n)

    def index_of(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def primary(self, view: int) -> int:
        return view % self.n
