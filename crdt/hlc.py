"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).

LWW registers order writes by ``(wall_ms, logical, node id)``: never by raw wall clock, so a
write made after seeing another always orders after it, even when the writer's clock is
behind. Physical time comes in as an argument (``now_ms``); the clock never reads one.

Clocks that jump back are tolerated: the wall part never decreases, the logical part counts
on. A remote timestamp too far ahead of our physical time is refused with ``ClockSkew``
instead of being adopted: one node with a clock a year ahead would otherwise drag everyone's
clock (and win every LWW race) for a year.
"""

from __future__ import annotations

from typing import NamedTuple

from crdt.errors import ClockSkew

Timestamp = tuple[int, int]
"""``(wall_ms, logical)``."""

DEFAULT_MAX_AHEAD_MS = 60_000
MAX_WALL_MS = (1 << 63) - 1
MAX_LOGICAL = (1 << 32) - 1


class Writer(NamedTuple):
    """Who makes a local mutation, and when: passed to every delta mutator."""

    replica: str
    ts: Timestamp = (0, 0)


class HybridClock:
    """One node's HLC. Pure: ``now`` and ``observe`` take the physical time in ms."""

    __slots__ = ("wall", "logical", "max_ahead_ms")

    def __init__(self, max_ahead_ms: int = DEFAULT_MAX_AHEAD_MS, last: Timestamp = (0, 0)):
        self.wall, self.logical = last
        self.max_ahead_ms = max_ahead_ms

    @property
    def last(self) -> Timestamp:
        return (self.wall, self.logical)

    def now(self, now_ms: int) -> Timestamp:
        """A timestamp for a local event: greater than every one issued or observed before."""
        if now_ms > self.wall:
            self.wall, self.logical = now_ms, 0
        else:
            self.logical += 1
            if self.logical > MAX_LOGICAL:  # 4 billion events in one ms: move time on instead
                self.wall, self.logical = self.wall + 1, 0
        return (self.wall, self.logical)

    def check(self, ts: Timestamp, now_ms: int) -> None:
        """Raise ``ClockSkew`` if a remote timestamp is too far ahead of our physical time."""
        ahead = ts[0] - now_ms
        if ahead > self.max_ahead_ms:
            raise ClockSkew(
                f"timestamp {ts[0]} ms is {ahead / 1000:.1f} s ahead of this node's clock "
                f"(limit {self.max_ahead_ms / 1000:.0f} s): the writer's clock is wrong"
            )

    def observe(self, ts: Timestamp, now_ms: int) -> None:
        """Move past a remote timestamp (after ``check``), so later local writes order after
        it."""
        self.check(ts, now_ms)
        if ts > (self.wall, self.logical):
            self.wall, self.logical = ts
        if now_ms > self.wall:
            self.wall, self.logical = now_ms, 0


__all__ = ["DEFAULT_MAX_AHEAD_MS", "HybridClock", "Timestamp", "Writer"]
