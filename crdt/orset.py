"""Add-wins observed-remove set (the paper's AWORSet): ``DotMap[element, DotSet]``.

``add(e)`` writes a fresh dot under ``e`` and covers the dots ``e`` already had; ``remove(e)``
covers them and writes nothing. A remove only covers the adds it has seen, so an add
concurrent with a remove survives (add wins). Nothing remains of a removed element but its
dots in the causal context: no tombstones.
"""

from __future__ import annotations

from collections.abc import Iterator

from crdt.causal import SET_LEAF, Causal, Kind, Patch
from crdt.dotstore import Key
from crdt.hlc import Writer
from crdt.values import check_key


class ORSet(Causal):
    KIND = Kind("orset", 1, SET_LEAF, lambda: ORSet())
    __slots__ = ()

    # -- reads ----------------------------------------------------------------------------------

    def elements(self) -> set[Key]:
        return set(self.store)

    def __contains__(self, element: object) -> bool:
        return element in self.store

    def __iter__(self) -> Iterator[Key]:
        return iter(self.store)

    # -- delta mutators -------------------------------------------------------------------------

    def p_add(self, w: Writer, element: Key) -> Patch:
        check_key(element)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under((element,)), (element,), ())

    def p_remove(self, w: Writer, element: Key) -> Patch:
        check_key(element)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under((element,)))

    def p_clear(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    # -- mutators (apply locally, return the delta to ship) -------------------------------------

    def add(self, w: Writer, element: Key) -> "ORSet":
        return self.commit(self.p_add(w, element))

    def remove(self, w: Writer, element: Key) -> "ORSet":
        return self.commit(self.p_remove(w, element))

    def clear(self, w: Writer) -> "ORSet":
        return self.commit(self.p_clear(w))


__all__ = ["ORSet"]
