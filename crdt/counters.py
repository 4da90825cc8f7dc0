"""Causal counters: a G-counter and a PN-counter that can sit inside an ``ORMap``.

Each writer keeps one entry ``(replica, dot, total)`` holding its running total; an increment
writes the new total under a fresh dot and covers the writer's old one, so the store holds at
most one entry per writer and the context stays a version vector. The value is the sum of the
entries. Because entries are dots, a counter can be reset (``reset``, or removing it from an
``ORMap``) by covering the entries it has seen, which a plain vector-of-maxima counter cannot.

Pruning a departed writer (``CrdtReplica.prune``) removes its entry and with it its contribution:
what soft state wants for a node that left (its load is no longer anyone's load).
"""

from __future__ import annotations

from crdt.causal import GCOUNTER_LEAF, PNCOUNTER_LEAF, Causal, Kind, Patch
from crdt.errors import CrdtUsageError
from crdt.hlc import Writer

U64_MAX = (1 << 64) - 1


def _check_amount(n: int) -> None:
    if type(n) is not int or n < 0:
        raise CrdtUsageError(f"counter amounts are non-negative integers, not {n!r}")


class GCounter(Causal):
    """Grow-only counter."""

    KIND = Kind("gcounter", 0, GCOUNTER_LEAF, lambda: GCounter())
    __slots__ = ()

    def value(self) -> int:
        return sum(e[2] for e in self.store)

    def p_inc(self, w: Writer, n: int = 1) -> Patch:
        _check_amount(n)
        own = [e for e in self.store if e[0] == w.replica]
        total = sum(e[2] for e in own) + n
        if total > U64_MAX:
            raise CrdtUsageError("counter total would overflow 64 bits")
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, [(e[0], e[1]) for e in own], (), (total,))

    def p_reset(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    def inc(self, w: Writer, n: int = 1) -> "GCounter":
        return self.commit(self.p_inc(w, n))

    def reset(self, w: Writer) -> "GCounter":
        return self.commit(self.p_reset(w))


class PNCounter(Causal):
    """Counter that goes up and down: per writer, a total of increments and of decrements."""

    KIND = Kind("pncounter", 0, PNCOUNTER_LEAF, lambda: PNCounter())
    __slots__ = ()

    def value(self) -> int:
        return sum(e[2] - e[3] for e in self.store)

    def _p_change(self, w: Writer, up: int, down: int) -> Patch:
        own = [e for e in self.store if e[0] == w.replica]
        p = sum(e[2] for e in own) + up
        n = sum(e[3] for e in own) + down
        if p > U64_MAX or n > U64_MAX:
            raise CrdtUsageError("counter total would overflow 64 bits")
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, [(e[0], e[1]) for e in own], (), (p, n))

    def p_inc(self, w: Writer, n: int = 1) -> Patch:
        _check_amount(n)
        return self._p_change(w, n, 0)

    def p_dec(self, w: Writer, n: int = 1) -> Patch:
        _check_amount(n)
        return self._p_change(w, 0, n)

    def p_reset(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    def inc(self, w: Writer, n: int = 1) -> "PNCounter":
        return self.commit(self.p_inc(w, n))

    def dec(self, w: Writer, n: int = 1) -> "PNCounter":
        return self.commit(self.p_dec(w, n))

    def reset(self, w: Writer) -> "PNCounter":
        return self.commit(self.p_reset(w))


__all__ = ["GCounter", "PNCounter"]
