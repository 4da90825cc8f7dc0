"""Observed-remove map of nested causal CRDTs (the paper's ORMap): ``DotMap[key, V]``.

Every value shares the map's causal context, so a value is just the sub-store under its key.
``update(w, key, fn)`` runs one of the value type's delta mutators on a read-only view of the
current value and commits the patch; ``remove(w, key)`` covers every dot under ``key``.
Concurrent update and remove: the update's fresh dots survive, so the key stays with what was
written concurrently (add wins), and whatever the remover had seen is gone.

``ORMap(ORSet())`` maps to sets, ``ORMap(ORMap(MVRegister()))`` nests two levels, and so on:
the value prototype only supplies the type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from crdt.causal import Causal, Kind, Patch
from crdt.dotstore import Key
from crdt.hlc import Writer
from crdt.values import check_key

_KINDS: dict[str, Kind] = {}


def _kind_for(value: Causal) -> Kind:
    name = f"ormap<{value.kind.name}>"
    kind = _KINDS.get(name)
    if kind is None:
        proto = value.empty_like()
        kind = _KINDS[name] = Kind(name, 1 + value.kind.depth, value.kind.leaf,
                                   lambda: ORMap(proto))
    return kind


class ORMap(Causal):
    __slots__ = ("value", "_kind")

    def __init__(self, value: Causal, store: Any = None, ctx: Any = None) -> None:
        self.value = value
        self._kind = _kind_for(value)
        super().__init__(store, ctx)

    @property
    def kind(self) -> Kind:
        return self._kind

    def _view_slots(self) -> dict[str, Any]:
        return {"value": self.value, "_kind": self._kind}

    # -- reads ----------------------------------------------------------------------------------

    def keys(self) -> set[Key]:
        return set(self.store)

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def get(self, key: Key) -> Causal:
        """A read-only view of the value at ``key`` (empty if absent)."""
        return self.value.view(self.root, self.base + (key,))

    def items(self) -> Iterator[tuple[Key, Causal]]:
        for k in self.store:
            yield k, self.get(k)

    # -- delta mutators -------------------------------------------------------------------------

    def p_update(self, w: Writer, key: Key, fn: Callable[[Any], Patch]) -> Patch:
        """``fn`` receives the value view and returns one of its ``p_*`` patches."""
        check_key(key)
        patch = fn(self.get(key))
        if not isinstance(patch, Patch):
            raise TypeError("ORMap.update: fn must return a Patch (call the value's p_* "
                            "method, not the committing one)")
        return patch

    def p_remove(self, w: Writer, key: Key) -> Patch:
        check_key(key)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under((key,)))

    def p_clear(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    def update(self, w: Writer, key: Key, fn: Callable[[Any], Patch]) -> "ORMap":
        return self.commit(self.p_update(w, key, fn))

    def remove(self, w: Writer, key: Key) -> "ORMap":
        return self.commit(self.p_remove(w, key))

    def clear(self, w: Writer) -> "ORMap":
        return self.commit(self.p_clear(w))


__all__ = ["ORMap"]
