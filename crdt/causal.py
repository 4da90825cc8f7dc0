"""The causal CRDT object: a dot store, its causal context, and the join every type shares.

Theory of operation
-------------------
A causal CRDT state is ``(store, ctx)``: ``store`` maps the live dots to what they wrote
(``dotstore``), ``ctx`` holds every dot ever seen (``dots``). A dot in ``ctx`` but not in
``store`` was removed or overwritten; that is all a remove leaves behind, so there are no
tombstones: a context of contiguous dots is one integer per writer.

Every type (OR-Set, OR-Map, registers, counters) is a ``Causal`` subclass that only adds reads
and *delta mutators*. A delta mutator ``p_*`` returns a ``Patch`` (the paper's m-delta: the
new entry, if any, and a context of the dots it covers plus one fresh dot) without changing
anything; the plain mutator commits the patch into the object and returns the delta object to
ship to peers. A nested value in an ``ORMap`` is a read-only *view* on a sub-store that shares
the root's context, and its delta mutators write at absolute paths, so nesting costs nothing.

Joining is planned, then applied: ``diff(other)`` computes what ``other`` would change (entries
to add, entries to kill, dots not yet seen) without touching ``self``; the replica checks the
plan (signatures, ownership, clocks) and only then ``apply``s it, so a rejected message changes
nothing. The plan is also the *effective delta* (``effective``): the part of ``other`` that was
news here, which is what anti-entropy forwards, instead of re-sending what peers already have.

Two ways to compute the same plan, chosen by size: a small delta looks up each dot of its
context in the live-dot index (cost proportional to the delta); a large state walks both
stores key by key and skips equal subtrees with one C-level comparison (the fast path that
lets a 100k-entry join run at millions of entries per second).

Signed replicas also keep ``sigs`` (dot -> the writer's signature, for live entries) and
``heads`` (writer -> its latest signed mutation); ``crdt.auth`` explains both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from crdt.dots import CausalContext, Dot
from crdt.dotstore import (
    Entry,
    Path,
    Store,
    copy_store,
    count_entries,
    empty_store,
    entry_at,
    get_path,
    insert_entry,
    iter_entries,
    remove_dot,
)
from crdt.errors import CrdtUsageError

Head = tuple[int, bytes, bytes]
"""A writer's latest signed mutation: ``(counter, digest, signature)`` (see ``crdt.auth``)."""


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """The payload of a leaf entry, for the codec: one field kind per payload position.

    Field kinds: ``"uint"`` (0..2**64-1), ``"wall"`` (0..2**63-1), ``"logical"``
    (0..2**32-1), ``"value"`` (canonical msgpack bytes)."""

    name: str
    fields: tuple[str, ...]


SET_LEAF = LeafSpec("set", ())
MV_LEAF = LeafSpec("mv", ("value",))
LWW_LEAF = LeafSpec("lww", ("wall", "logical", "value"))
GCOUNTER_LEAF = LeafSpec("gcount", ("uint",))
PNCOUNTER_LEAF = LeafSpec("pncount", ("uint", "uint"))


@dataclass(frozen=True, slots=True)
class Kind:
    """A type's shape: name (as in snapshots), map depth, leaf, and how to make an empty one."""

    name: str
    depth: int
    leaf: LeafSpec
    make: Callable[[], "Causal"] = field(compare=False, repr=False)


@dataclass(slots=True)
class Patch:
    """A delta mutator's result: new entries at absolute paths, and the context they carry."""

    entries: list[tuple[Path, Entry]]
    ctx: CausalContext


@dataclass(slots=True)
class Plan:
    """What joining ``other`` into ``self`` changes (computed by ``Causal.diff``)."""

    added: list[tuple[Path, Entry]]
    killed: list[tuple[Path, Entry]]
    new_ctx: CausalContext
    """Dots of ``other.ctx`` that ``self`` had not seen."""
    other: "Causal"
    heads: dict[str, Head] = field(default_factory=dict)
    """Heads of ``other`` newer than ours."""

    def is_noop(self) -> bool:
        return (not self.added and not self.killed and self.new_ctx.is_empty()
                and not self.heads)


C = TypeVar("C", bound="Causal")


def head_wins(a: Head, b: Head) -> bool:
    """True if head ``a`` replaces ``b``: higher counter; on a tie, the smaller bytes (only an
    equivocating writer makes two heads with one counter)."""
    return a[0] > b[0] or (a[0] == b[0] and a[1:] < b[1:])


class Causal:
    """Base of every causal CRDT: ``store`` + ``ctx``, an index of live dots, and the join."""

    KIND: ClassVar[Kind]
    __slots__ = ("store", "ctx", "index", "sigs", "heads", "base", "root")

    def __init__(self, store: Store | None = None, ctx: CausalContext | None = None) -> None:
        self.store: Store = empty_store(self.kind.depth) if store is None else store
        self.ctx: CausalContext = ctx if ctx is not None else CausalContext()
        self.index: dict[Dot, Path] = {(e[0], e[1]): p for p, e in
                                        iter_entries(self.store, self.kind.depth)}
        self.sigs: dict[Dot, bytes] = {}
        self.heads: dict[str, Head] = {}
        self.base: Path = ()
        self.root: Causal = self

    @property
    def kind(self) -> Kind:
        return self.KIND

    # -- views (nested values of an ORMap) -----------------------------------------------------

    def empty_like(self: C) -> C:
        return self.kind.make()  # type: ignore[return-value]

    def view(self: C, root: "Causal", base: Path) -> C:
        """A read-only view of this type on ``root``'s sub-store at ``base``."""
        v = object.__new__(type(self))
        for name, value in self._view_slots().items():
            object.__setattr__(v, name, value)
        sub = get_path(root.store, base)
        v.store = sub if sub is not None else empty_store(self.kind.depth)
        v.ctx = root.ctx
        v.index = {}
        v.sigs = {}
        v.heads = {}
        v.base = base
        v.root = root
        return v

    def _view_slots(self) -> dict[str, Any]:
        """Extra per-instance attributes a view must copy (``ORMap``'s value type)."""
        return {}

    @property
    def is_view(self) -> bool:
        return self.root is not self

    # -- reading --------------------------------------------------------------------------------

    def entries(self) -> Iterator[tuple[Path, Entry]]:
        """Every live ``(path, entry)``; paths are relative to this object (or view)."""
        return iter_entries(self.store, self.kind.depth)

    def __len__(self) -> int:
        return count_entries(self.store, self.kind.depth)

    def dots_under(self, rel: Path) -> list[Dot]:
        """Live dots in the sub-store at relative path ``rel``."""
        sub = get_path(self.store, rel)
        if sub is None:
            return []
        return [(e[0], e[1]) for _, e in iter_entries(sub, self.kind.depth - len(rel))]

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and isinstance(other, Causal)
                and self.kind == other.kind and self.store == other.store
                and self.ctx == other.ctx and self.sigs == other.sigs
                and self.heads == other.heads)

    def same_state(self, other: "Causal") -> bool:
        """Equal stores and contexts (ignores signatures and heads)."""
        return self.store == other.store and self.ctx == other.ctx

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} entries, {self.ctx!r})"

    # -- building deltas ------------------------------------------------------------------------

    def _new(self: C, store: Store, ctx: CausalContext,
             index: dict[Dot, Path] | None = None) -> C:
        out = self.root.empty_like()
        out.store = store
        out.ctx = ctx
        if index is None:
            depth = out.kind.depth
            if depth == 1:
                index = {(e[0], e[1]): (k,) for k, leaf in store.items() for e in leaf}
            elif depth == 0:
                index = {(e[0], e[1]): () for e in store}
            else:
                index = {(e[0], e[1]): p for p, e in iter_entries(store, depth)}
        out.index = index
        return out  # type: ignore[return-value]

    def patch(self, dot: Dot, kill: Iterable[Dot], rel: Path | None = None,
              payload: tuple[Any, ...] | None = None) -> Patch:
        """The usual mutation: a fresh ``dot`` that covers ``kill`` and, if ``payload`` is
        given, writes ``(dot, *payload)`` at relative path ``rel``."""
        ctx = CausalContext.from_dots(kill)
        ctx.add(*dot)
        entries = [] if payload is None else [(self.base + (rel or ()), dot + payload)]
        return Patch(entries, ctx)

    def to_delta(self: C, patch: Patch) -> C:
        store = empty_store(self.root.kind.depth)
        for path, e in patch.entries:
            store = insert_entry(store, path, e)
        return self.root._new(store, patch.ctx)  # type: ignore[return-value]

    def commit(self: C, patch: Patch) -> C:
        """Apply a local patch (trusted) and return it as a delta object of the root's type."""
        if self.is_view:
            raise CrdtUsageError("views are read-only views: return a patch from a p_* delta "
                                 "mutator (ORMap.update, CrdtReplica.update) instead")
        delta = self.to_delta(patch)
        self.join(delta)
        return delta

    # -- lattice --------------------------------------------------------------------------------

    def copy(self: C) -> C:
        if self.is_view:
            raise CrdtUsageError("copy the root object, not a view")
        out = self._new(copy_store(self.store, self.kind.depth), self.ctx.copy(),
                        dict(self.index))
        out.sigs = dict(self.sigs)
        out.heads = dict(self.heads)
        return out

    def diff(self, other: "Causal", fast: bool = True) -> Plan:
        """What joining ``other`` would change. ``fast=False`` disables the equal-subtree skip
        (only the benchmark uses it, to measure what the fast path buys)."""
        if other.kind != self.kind:
            raise CrdtUsageError(f"cannot join {other.kind.name} into {self.kind.name}")
        added: list[tuple[Path, Entry]] = []
        killed: list[tuple[Path, Entry]] = []
        n_ctx = other.ctx.count()
        if fast and n_ctx <= max(64, len(self.index) // 8):
            self._diff_small(other, added, killed)
        else:
            _diff_stores(self.store, self.ctx, other.store, other.ctx, self.kind.depth, (),
                         added, killed, fast)
        heads = {r: h for r, h in other.heads.items()
                 if r not in self.heads or head_wins(h, self.heads[r])}
        return Plan(added, killed, other.ctx.difference(self.ctx), other, heads)

    def _diff_small(self, other: "Causal", added: list[tuple[Path, Entry]],
                    killed: list[tuple[Path, Entry]]) -> None:
        """Plan for a small ``other``: visit only its entries and its context's dots."""
        theirs = {(e[0], e[1]): (p, e) for p, e in other.entries()}
        for dot in other.ctx.iter_dots():
            path = self.index.get(dot)
            if path is None:
                continue
            mine = entry_at(self.store, path, dot)
            t = theirs.get(dot)
            if t is None or t[0] != path:
                killed.append((path, mine))
            elif t[1] != mine and t[1] < mine:
                killed.append((path, mine))
                added.append(t)
        ctx = self.ctx
        for (r, c), (p, e) in theirs.items():
            if not ctx.contains(r, c):
                added.append((p, e))

    def apply(self, plan: Plan) -> None:
        """Apply a plan made by ``diff`` against this very state (nothing changed since)."""
        store = self.store
        for path, e in plan.killed:
            dot = (e[0], e[1])
            store = remove_dot(store, path, dot)
            self.index.pop(dot, None)
            self.sigs.pop(dot, None)
        osigs = plan.other.sigs
        for path, e in plan.added:
            dot = (e[0], e[1])
            store = insert_entry(store, path, e)
            self.index[dot] = path
            sig = osigs.get(dot)
            if sig is not None:
                self.sigs[dot] = sig
        self.store = store
        self.ctx.join(plan.new_ctx)
        self.heads.update(plan.heads)

    def join(self, other: "Causal") -> Plan:
        """In place: ``self = self |_| other``. Returns the plan (what changed)."""
        plan = self.diff(other)
        self.apply(plan)
        return plan

    def joined(self: C, other: "Causal") -> C:
        """Pure join: a new object, neither input changes."""
        out = self.copy()
        out.join(other)
        return out

    def effective(self: C, plan: Plan) -> C:
        """The part of ``plan.other`` that was news here, as a delta: joining it gives the same
        result as joining ``plan.other``, and it is what this replica forwards."""
        store = empty_store(self.kind.depth)
        for path, e in plan.added:
            store = insert_entry(store, path, e)
        ctx = plan.new_ctx.copy()
        for _, e in plan.killed:
            ctx.add(e[0], e[1])
        out = self._new(store, ctx)
        osigs = plan.other.sigs
        out.sigs = {d: osigs[d] for d in out.index if d in osigs}
        out.heads = dict(plan.heads)
        return out

    def without_replicas(self: C, replicas: set[str]) -> C:
        """A copy with every dot of ``replicas`` gone from store, context and heads (used to
        drop what departed nodes wrote, see ``CrdtReplica.prune``)."""
        out = self.copy()
        for dot, path in list(out.index.items()):
            if dot[0] in replicas:
                out.store = remove_dot(out.store, path, dot)
                del out.index[dot]
                out.sigs.pop(dot, None)
        for r in replicas:
            out.ctx.drop_replica(r)
            out.heads.pop(r, None)
        return out


def _diff_leaf(l1: tuple[Entry, ...], c1: CausalContext, l2: tuple[Entry, ...],
               c2: CausalContext, path: Path, added: list[tuple[Path, Entry]],
               killed: list[tuple[Path, Entry]]) -> None:
    d2 = {(e[0], e[1]): e for e in l2}
    for e in l1:
        other = d2.pop((e[0], e[1]), None)
        if other is not None:
            if other != e and other < e:
                killed.append((path, e))
                added.append((path, other))
        elif c2.contains(e[0], e[1]):
            killed.append((path, e))
    for (r, c), e in d2.items():
        if not c1.contains(r, c):
            added.append((path, e))


def _kill_covered(s1: Store, c2: CausalContext, depth: int, path: Path,
                  killed: list[tuple[Path, Entry]]) -> None:
    for p, e in iter_entries(s1, depth, path):
        if c2.contains(e[0], e[1]):
            killed.append((p, e))


def _diff_stores(s1: Store, c1: CausalContext, s2: Store, c2: CausalContext, depth: int,
                 path: Path, added: list[tuple[Path, Entry]], killed: list[tuple[Path, Entry]],
                 fast: bool) -> None:
    """Plan for a large ``other``: walk both stores; equal subtrees are skipped in C."""
    if depth == 0:
        if not (fast and s1 == s2):
            _diff_leaf(s1, c1, s2, c2, path, added, killed)
        return
    get = s1.get
    # the fast path: one C-level comparison per key finds the few keys that differ
    changed = [k for k, v in s2.items() if get(k) != v] if fast else list(s2)
    shared = len(s2)
    for k in changed:
        v1, v2 = get(k), s2[k]
        if v1 is None:
            shared -= 1
            for p, e in iter_entries(v2, depth - 1, path + (k,)):
                if not c1.contains(e[0], e[1]):
                    added.append((p, e))
        else:
            _diff_stores(v1, c1, v2, c2, depth - 1, path + (k,), added, killed, fast)
    if shared < len(s1):  # some keys only we have: are they covered by the other side?
        for k in s1.keys() - s2.keys():
            _kill_covered(s1[k], c2, depth - 1, path + (k,), killed)


__all__ = ["GCOUNTER_LEAF", "LWW_LEAF", "MV_LEAF", "PNCOUNTER_LEAF", "SET_LEAF", "Causal",
           "Head", "Kind", "LeafSpec", "Patch", "Plan", "head_wins"]
