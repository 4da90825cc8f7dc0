"""Last-writer-wins register and map, ordered by hybrid logical clock and node id.

A write is the entry ``(replica, counter, wall_ms, logical, value)``: the dot says who wrote
it, ``(wall_ms, logical)`` is the writer's HLC timestamp (``crdt.hlc``), never its raw clock.
Reads pick the greatest ``(wall_ms, logical, replica, counter)``.

A write covers every value it has seen, so a causally later write replaces an earlier one
everywhere. Writes that were concurrent stay side by side in the store (``siblings``) until
the next write covers them; the read hides them. Dropping the losing sibling at join time
would be smaller but is not a lattice without tombstones: if the winner is later removed by
someone who never saw the loser, replicas that had dropped the loser and replicas that had not
would disagree forever. Keeping siblings costs one entry per *concurrent* writer, not per
write, so 100,000 overwrites of 10 keys by 3 nodes leave at most 30 entries.

``LWWMap`` is ``ORMap[key, LWWRegister]`` flattened into one level: the shape of the
capability registry and of every "node -> its latest record" table, and the type whose join
speed the benchmark measures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crdt.causal import LWW_LEAF, Causal, Kind, Patch
from crdt.dotstore import Entry, Key, Leaf
from crdt.hlc import Timestamp, Writer
from crdt.values import check_key, pack_value, unpack_value

_MISSING = object()


def winner(leaf: Leaf) -> Entry:
    """The entry a read returns: greatest timestamp, then node id, then counter."""
    return max(leaf, key=lambda e: (e[2], e[3], e[0], e[1]))


class LWWRegister(Causal):
    KIND = Kind("lww", 0, LWW_LEAF, lambda: LWWRegister())
    __slots__ = ()

    def get(self, default: Any = None) -> Any:
        return unpack_value(winner(self.store)[4]) if self.store else default

    def get_raw(self) -> bytes | None:
        return winner(self.store)[4] if self.store else None

    def timestamp(self) -> Timestamp | None:
        """The winning write's HLC timestamp."""
        if not self.store:
            return None
        e = winner(self.store)
        return (e[2], e[3])

    def siblings(self) -> int:
        """How many concurrent writes are kept (1 when there is no conflict)."""
        return len(self.store)

    def p_set(self, w: Writer, value: Any) -> Patch:
        data = pack_value(value)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()), (), (w.ts[0], w.ts[1], data))

    def p_clear(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    def set(self, w: Writer, value: Any) -> "LWWRegister":
        return self.commit(self.p_set(w, value))

    def clear(self, w: Writer) -> "LWWRegister":
        return self.commit(self.p_clear(w))


class LWWMap(Causal):
    KIND = Kind("lwwmap", 1, LWW_LEAF, lambda: LWWMap())
    __slots__ = ()

    def get(self, key: Key, default: Any = None) -> Any:
        leaf = self.store.get(key)
        return unpack_value(winner(leaf)[4]) if leaf else default

    def get_raw(self, key: Key) -> bytes | None:
        leaf = self.store.get(key)
        return winner(leaf)[4] if leaf else None

    def writer(self, key: Key) -> str | None:
        """The node whose write a read of ``key`` returns."""
        leaf = self.store.get(key)
        return winner(leaf)[0] if leaf else None

    def timestamp(self, key: Key) -> Timestamp | None:
        leaf = self.store.get(key)
        if not leaf:
            return None
        e = winner(leaf)
        return (e[2], e[3])

    def keys(self) -> set[Key]:
        return set(self.store)

    def items(self) -> Iterator[tuple[Key, Any]]:
        for k, leaf in self.store.items():
            yield k, unpack_value(winner(leaf)[4])

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def p_set(self, w: Writer, key: Key, value: Any) -> Patch:
        check_key(key)
        data = pack_value(value)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under((key,)), (key,), (w.ts[0], w.ts[1], data))

    def p_remove(self, w: Writer, key: Key) -> Patch:
        check_key(key)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under((key,)))

    def set(self, w: Writer, key: Key, value: Any) -> "LWWMap":
        return self.commit(self.p_set(w, key, value))

    def remove(self, w: Writer, key: Key) -> "LWWMap":
        return self.commit(self.p_remove(w, key))


__all__ = ["LWWMap", "LWWRegister", "winner"]
