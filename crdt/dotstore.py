"""Dot stores: the part of a causal CRDT's state that maps dots to what they wrote.

The paper (Almeida, Shoker, Baquero, section 6) composes three dot stores: ``DotSet``,
``DotFun`` (dot -> value) and ``DotMap`` (key -> dot store). Every type in this package is a
``DotMap`` nested ``depth`` times over one *leaf*, so a store has one shape:

- depth 0: a leaf;
- depth d > 0: a ``dict`` from key to a non-empty store of depth d - 1.

A leaf is an immutable tuple of *entries* sorted by dot, and an entry is a flat tuple
``(replica, counter, *payload)``: a ``DotSet`` entry has no payload, a ``DotFun`` entry carries
its value. Flat, hashable tuples are what makes joins fast in pure Python: equal subtrees
compare in C and are skipped without touching their entries, and no per-entry objects are
allocated.

The join of two causal states ``(s1, c1) |_| (s2, c2)`` keeps an entry if both sides have it,
or if one side has it and the other side's context has not seen its dot (it was not removed
there, just not yet known). Two different entries with the same dot can only come from a
writer that equivocated; the smaller one wins, so every replica still picks the same one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crdt.dots import CausalContext, Dot

Entry = tuple[Any, ...]
"""``(replica, counter, *payload)``."""
Leaf = tuple[Entry, ...]
Key = str | int | bytes
Path = tuple[Key, ...]
Store = Any
"""A leaf (depth 0) or ``dict[Key, Store]`` (depth > 0); typed loosely because depth varies."""

EMPTY_LEAF: Leaf = ()


def entry_dot(entry: Entry) -> Dot:
    return (entry[0], entry[1])


def empty_store(depth: int) -> Store:
    return {} if depth else EMPTY_LEAF


def is_empty(store: Store) -> bool:
    return not store


def iter_entries(store: Store, depth: int, path: Path = ()) -> Iterator[tuple[Path, Entry]]:
    """Every ``(path, entry)`` of a store; ``path`` has ``depth`` keys."""
    if depth == 0:
        for e in store:
            yield path, e
        return
    for k, sub in store.items():
        yield from iter_entries(sub, depth - 1, path + (k,))


def count_entries(store: Store, depth: int) -> int:
    if depth == 0:
        return len(store)
    if depth == 1:
        return sum(map(len, store.values()))
    return sum(count_entries(s, depth - 1) for s in store.values())


def copy_store(store: Store, depth: int) -> Store:
    """A copy that shares only immutable leaves."""
    if depth == 0:
        return store
    if depth == 1:
        return dict(store)
    return {k: copy_store(v, depth - 1) for k, v in store.items()}


def get_path(store: Store, path: Path) -> Store | None:
    """The sub-store at ``path`` (a prefix of a full path), or None."""
    for k in path:
        store = store.get(k)
        if store is None:
            return None
    return store


def entry_at(store: Store, path: Path, dot: Dot) -> Entry:
    """The entry with ``dot`` in the leaf at ``path`` (``KeyError`` if absent)."""
    leaf = get_path(store, path)
    for e in leaf or ():
        if e[1] == dot[1] and e[0] == dot[0]:
            return e  # type: ignore[no-any-return]
    raise KeyError(dot)


def insert_entry(store: Store, path: Path, entry: Entry) -> Store:
    """Insert into the leaf at ``path`` (creating maps on the way); returns the store (a new
    tuple when ``path`` is empty, the same dict otherwise)."""
    if not path:
        return tuple(sorted(store + (entry,)))
    node = store
    for k in path[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        node = nxt
    last = path[-1]
    leaf = node.get(last, EMPTY_LEAF)
    node[last] = tuple(sorted(leaf + (entry,))) if leaf else (entry,)
    return store


def remove_dot(store: Store, path: Path, dot: Dot) -> Store:
    """Remove the entry with ``dot`` from the leaf at ``path``; empty maps and leaves vanish
    (a ``DotMap`` never holds an empty value). Returns the store as ``insert_entry`` does."""
    r, c = dot
    if not path:
        return tuple(e for e in store if e[1] != c or e[0] != r)
    trail = []
    node = store
    for k in path[:-1]:
        trail.append((node, k))
        node = node[k]
    last = path[-1]
    leaf = tuple(e for e in node[last] if e[1] != c or e[0] != r)
    if leaf:
        node[last] = leaf
        return store
    del node[last]
    while not node and trail:
        parent, k = trail.pop()
        del parent[k]
        node = parent
    return store


def leaf_join(l1: Leaf, c1: CausalContext, l2: Leaf, c2: CausalContext) -> Leaf:
    """The paper's ``DotFun`` join (a ``DotSet`` is a ``DotFun`` without values)."""
    if l1 == l2:
        return l1
    d2 = {(e[0], e[1]): e for e in l2}
    out = []
    for e in l1:
        other = d2.pop((e[0], e[1]), None)
        if other is not None:
            out.append(min(e, other))
        elif not c2.contains(e[0], e[1]):
            out.append(e)
    out.extend(e for e in d2.values() if not c1.contains(e[0], e[1]))
    return tuple(sorted(out))


def store_join(s1: Store, c1: CausalContext, s2: Store, c2: CausalContext, depth: int) -> Store:
    """The paper's ``DotMap`` join, written plainly: the reference the fast paths are tested
    against (``causal.Causal.join`` computes the same result in place)."""
    if depth == 0:
        return leaf_join(s1, c1, s2, c2)
    out = {}
    for k in set(s1) | set(s2):
        v = store_join(s1.get(k, empty_store(depth - 1)), c1,
                       s2.get(k, empty_store(depth - 1)), c2, depth - 1)
        if v:
            out[k] = v
    return out


__all__ = ["EMPTY_LEAF", "Entry", "Key", "Leaf", "Path", "Store", "copy_store", "count_entries",
           "empty_store", "entry_at", "entry_dot", "get_path", "insert_entry", "is_empty", "iter_entries",
           "leaf_join", "remove_dot", "store_join"]
