"""Dots and causal contexts (Almeida, Shoker and Baquero, "Delta State Replicated Data Types").

A *dot* ``(replica, counter)`` names one mutation: the ``counter``-th mutation that ``replica``
made to one replicated object. Counters start at 1 and each replica numbers its own mutations
without gaps. Every mutation in this package makes exactly one new dot (removes too: a remove
gets a fresh dot that never appears in a store), so a causal context is an exact record of
*which mutations* a replica has applied, and comparing two contexts tells two nodes what each
lacks (``antientropy``).

A ``CausalContext`` is the set of dots a replica has seen. It is kept compact: a version vector
``vv`` (replica -> n: dots 1..n all seen) plus, per replica, the *outstanding* dots above the
vector as sorted, disjoint closed ranges (the paper's "dot cloud", stored as ranges so that a
replica that is far behind, or a range received in one full state, stays one entry instead of
thousands). The ranges fold into the vector as soon as the gap below them fills.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping

Dot = tuple[str, int]
"""``(replica, counter)``: the replica is the writer's node id; the counter starts at 1."""

Ranges = list[tuple[int, int]]
"""Sorted, disjoint, non-adjacent closed ranges ``[(lo, hi), ...]`` of counters."""


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and coalesce overlapping or adjacent ranges."""
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def subtract_ranges(a: Ranges, b: Ranges) -> Ranges:
    """``a - b`` for normalised range lists."""
    out: Ranges = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


class CausalContext:
    """The set of dots a replica has seen: a version vector plus outstanding ranges."""

    __slots__ = ("vv", "extra")

    def __init__(self, vv: Mapping[str, int] | None = None,
                 extra: Mapping[str, Ranges] | None = None) -> None:
        self.vv: dict[str, int] = {r: n for r, n in (vv or {}).items() if n > 0}
        self.extra: dict[str, Ranges] = {}
        for r, ranges in (extra or {}).items():
            self._set(r, self.intervals(r) + list(ranges))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dots(cls, dots: Iterable[Dot]) -> "CausalContext":
        per: dict[str, list[tuple[int, int]]] = {}
        for r, c in dots:
            per.setdefault(r, []).append((c, c))
        ctx = cls()
        for r, ranges in per.items():
            ctx._set(r, ranges)
        return ctx

    def copy(self) -> "CausalContext":
        out = CausalContext.__new__(CausalContext)
        out.vv = dict(self.vv)
        out.extra = {r: list(v) for r, v in self.extra.items()}
        return out

    # -- queries --------------------------------------------------------------------------------

    def contains(self, replica: str, counter: int) -> bool:
        if counter <= self.vv.get(replica, 0):
            return True
        ranges = self.extra.get(replica)
        if ranges is None:
            return False
        i = bisect_right(ranges, (counter, 1 << 64)) - 1
        return i >= 0 and ranges[i][0] <= counter <= ranges[i][1]

    def __contains__(self, dot: object) -> bool:
        if not isinstance(dot, tuple) or len(dot) != 2:
            return False
        return self.contains(dot[0], dot[1])

    def max(self, replica: str) -> int:
        """The highest counter of ``replica`` seen (0 if none)."""
        ranges = self.extra.get(replica)
        return ranges[-1][1] if ranges else self.vv.get(replica, 0)

    def next_counter(self, replica: str) -> int:
        return self.max(replica) + 1

    def intervals(self, replica: str) -> Ranges:
        """All counters of ``replica`` in this context, as ranges."""
        n = self.vv.get(replica, 0)
        head = [(1, n)] if n else []
        return head + list(self.extra.get(replica, ()))

    def replicas(self) -> set[str]:
        return set(self.vv) | set(self.extra)

    def is_empty(self) -> bool:
        return not self.vv and not self.extra

    def count(self) -> int:
        """How many dots (can be huge for a version vector; never enumerate those)."""
        return sum(self.vv.values()) + sum(hi - lo + 1 for rs in self.extra.values()
                                           for lo, hi in rs)

    def iter_dots(self) -> Iterator[Dot]:
        """Every dot, one by one: only for small contexts (check ``count()`` first)."""
        for r, n in self.vv.items():
            for c in range(1, n + 1):
                yield (r, c)
        for r, ranges in self.extra.items():
            for lo, hi in ranges:
                for c in range(lo, hi + 1):
                    yield (r, c)

    def issubset(self, other: "CausalContext") -> bool:
        for r, n in self.vv.items():
            if n > other.vv.get(r, 0) and subtract_ranges([(1, n)], other.intervals(r)):
                return False
        for r, ranges in self.extra.items():
            if subtract_ranges(ranges, other.intervals(r)):
                return False
        return True

    def difference(self, other: "CausalContext") -> "CausalContext":
        """Dots in ``self`` that ``other`` has not seen."""
        out = CausalContext()
        ovv, oextra = other.vv, other.extra
        for r, n in self.vv.items():
            if r not in self.extra and r not in oextra:  # the common case: two prefixes
                m = ovv.get(r, 0)
                if n > m:
                    if m:
                        out.extra[r] = [(m + 1, n)]
                    else:
                        out.vv[r] = n
                continue
            rest = subtract_ranges(self.intervals(r), other.intervals(r))
            if rest:
                out._set(r, rest)
        for r in self.extra:
            if r not in self.vv:
                rest = subtract_ranges(self.extra[r], other.intervals(r))
                if rest:
                    out._set(r, rest)
        return out

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CausalContext) and self.vv == other.vv
                and self.extra == other.extra)

    def __hash__(self) -> int:  # pragma: no cover - contexts are mutable; never hash them
        raise TypeError("CausalContext is mutable and unhashable")

    def __repr__(self) -> str:
        parts = [f"{r[:12]}:{n}" for r, n in sorted(self.vv.items())]
        parts += [f"{r[:12]}:{ranges}" for r, ranges in sorted(self.extra.items())]
        return f"CausalContext({', '.join(parts)})"

    # -- updates --------------------------------------------------------------------------------

    def _set(self, replica: str, ranges: Iterable[tuple[int, int]]) -> None:
        """Replace ``replica``'s counters by ``ranges`` (any order), normalised."""
        merged = merge_ranges(ranges)
        if merged and merged[0][0] <= 1:
            self.vv[replica] = merged[0][1]
            merged = merged[1:]
        else:
            self.vv.pop(replica, None)
        if merged:
            self.extra[replica] = merged
        else:
            self.extra.pop(replica, None)

    def add(self, replica: str, counter: int) -> None:
        n = self.vv.get(replica, 0)
        if counter <= n:
            return
        if counter == n + 1 and replica not in self.extra:
            self.vv[replica] = counter
            return
        self._set(replica, self.intervals(replica) + [(counter, counter)])

    def add_range(self, replica: str, lo: int, hi: int) -> None:
        if hi >= lo:
            self._set(replica, self.intervals(replica) + [(lo, hi)])

    def join(self, other: "CausalContext") -> None:
        """In place: ``self = self | other``."""
        for r, n in other.vv.items():
            if r not in self.extra and r not in other.extra:
                if n > self.vv.get(r, 0):
                    self.vv[r] = n
            else:
                self._set(r, self.intervals(r) + other.intervals(r))
        for r in other.extra:
            if r not in other.vv:
                self._set(r, self.intervals(r) + other.extra[r])

    def __or__(self, other: "CausalContext") -> "CausalContext":
        out = self.copy()
        out.join(other)
        return out

    def drop_replica(self, replica: str) -> None:
        self.vv.pop(replica, None)
        self.extra.pop(replica, None)


def meet_vectors(vectors: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Pointwise minimum of version vectors (absent = 0): what every one of them has seen.

    The stable point for pruning is the meet of the members' acknowledged vectors."""
    vs = list(vectors)
    if not vs:
        return {}
    keys = set(vs[0])
    for v in vs[1:]:
        keys &= set(v)
    return {k: min(v[k] for v in vs) for k in keys if min(v[k] for v in vs) > 0}


__all__ = ["CausalContext", "Dot", "Ranges", "meet_vectors", "merge_ranges", "subtract_ranges"]
