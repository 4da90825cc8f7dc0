"""State transfer in parts: a state too big for one message goes as several, joined as one.

A full (or elided) state can be larger than the envelope's 1 MiB cap: a capability registry of
thousands of nodes with their attestation reports, or any map with signed entries. The sender
splits each object by top-level key into parts under ``max_bytes``; every part carries the
object's whole causal context and heads (small) and the entries of its keys. The receiver
*stages* parts until it has all of them, then joins the assembled state in one step, exactly as
if it had come in one message: a half-received state is never applied, because its context
would cover entries still in flight (and kill them when they came).

Only the newest transfer per peer is staged, and staging is capped, so a peer cannot make us
hold more than one state's worth of parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from protocol.canonical import packb
from protocol.errors import MalformedMessage, MessageTooLarge
from protocol.messages.crdt import CrdtObject, CrdtState

from crdt.causal import Causal
from crdt.codec import Interner, _encode_store, encode_object, pack_payload
from crdt.dots import CausalContext, Dot
from crdt.dotstore import Path, Store, entry_at, get_path, insert_entry, iter_entries
from crdt.errors import CrdtUsageError

MAX_PARTS = 4096


@dataclass(slots=True)
class _Piece:
    name: str
    store: Store
    known: list[Dot] = field(default_factory=list)


def _split(obj: Causal, theirs: CausalContext | None) -> list[tuple[int, Store, list[Dot]]]:
    """``(estimated bytes, store, known dots)`` per top-level key (one unit at depth 0)."""
    depth = obj.kind.depth
    sigs = obj.sigs or None
    units = []
    keys = [()] if depth == 0 else [(k,) for k in obj.store]
    for key in keys:
        sub = get_path(obj.store, key)
        store: Store = {} if depth else ()
        known: list[Dot] = []
        for dot, path in ((d, p) for d, p in _dots_under(obj, sub, key)):
            if theirs is not None and theirs.contains(*dot):
                known.append(dot)
            else:
                store = insert_entry(store, path, entry_at(obj.store, path, dot))
        rel = get_path(store, key) if depth else store
        size = 16 + 12 * len(known)
        if rel:
            size += len(packb(_encode_store(rel, depth - len(key), Interner(), sigs), maps=False))
        units.append((size, store, known))
    return units


def _dots_under(obj: Causal, sub: Store, key: Path) -> list[tuple[Dot, Path]]:
    return [((e[0], e[1]), p) for p, e in iter_entries(sub, obj.kind.depth - len(key), key)]


def _merge_store(into: Store, add: Store, depth: int) -> Store:
    if depth == 0:
        return into + add if into else add
    for k, v in add.items():
        into[k] = _merge_store(into[k], v, depth - 1) if k in into else v
    return into


def state_parts(objects: dict[str, Causal], digest: dict[str, CausalContext] | None, *,
                session: int, seq: int, signed: bool, max_bytes: int) -> list[CrdtState]:
    """Our state as ``CrdtState`` parts under ``max_bytes`` each. With the peer's ``digest``,
    entries it has are elided (listed by dot, not value)."""
    parts: list[list[_Piece]] = [[]]
    room = max_bytes
    for name, obj in objects.items():
        overhead = 64 + len(name) + 12 * len(obj.ctx.replicas()) + 110 * len(obj.heads)
        theirs = digest.get(name) if digest is not None else None
        piece = _Piece(name, {} if obj.kind.depth else ())
        if overhead > room:
            parts.append([])
            room = max_bytes
        parts[-1].append(piece)
        room -= overhead
        for size, store, known in _split(obj, theirs):
            if size + overhead > max_bytes:
                raise CrdtUsageError(f"one key of object {name!r} encodes to about {size} bytes,"
                                     f" over the {max_bytes}-byte message budget")
            if size > room:
                piece = _Piece(name, {} if obj.kind.depth else ())
                parts.append([piece])
                room = max_bytes - overhead
            piece.store = _merge_store(piece.store, store, obj.kind.depth)
            piece.known += known
            room -= size
    if len(parts) > MAX_PARTS:
        raise CrdtUsageError(f"state needs {len(parts)} parts, over {MAX_PARTS}")
    out = []
    for i, pieces in enumerate(parts):
        rep = Interner()
        objs = tuple(CrdtObject(p.name, pack_payload(encode_object(
            objects[p.name], rep, signed=signed, known=p.known, store=p.store)))
            for p in pieces)
        out.append(CrdtState(session, seq, i, len(parts), tuple(rep.table), objs))
    return out


M = TypeVar("M")


class PartStaging(Generic[M]):
    """The parts of the newest multi-part message from one peer, until they are all here,
    within ``max_bytes`` staged. Shared by state transfers (``Staging``) and anti-entropy
    digests (``digests.DigestStaging``), which differ only in their key and part size."""

    __slots__ = ("key", "parts", "bytes", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.key: tuple[int, ...] | None = None
        self.parts: dict[int, M] = {}
        self.bytes = 0
        self.max_bytes = max_bytes

    def _stage(self, key: tuple[int, ...], part: int, parts: int, size: int, msg: M,
               what: str) -> list[M] | None:
        """Stage ``msg``; every part, in order, once the last one is in. A part of another
        message (the sender started a newer one) drops what was staged."""
        if key != self.key:
            self.key, self.parts, self.bytes = key, {}, 0
        if part not in self.parts:
            if self.bytes + size > self.max_bytes:
                self.key, self.parts, self.bytes = None, {}, 0
                raise MessageTooLarge(f"a multi-part CRDT {what} exceeds {self.max_bytes} "
                                      "staged bytes")
            self.parts[part] = msg
            self.bytes += size
        if len(self.parts) < parts:
            return None
        done = [self.parts[i] for i in range(parts)]
        self.key, self.parts, self.bytes = None, {}, 0
        return done


class Staging(PartStaging[CrdtState]):
    """Parts of the newest multi-part state from one peer, until they are all here."""

    __slots__ = ()

    def add(self, msg: CrdtState) -> list[CrdtState] | None:
        """Stage one part; returns every part, in order, once the last one is in."""
        if not 0 <= msg.part < msg.parts <= MAX_PARTS:
            raise MalformedMessage(f"CRDT state part {msg.part} of {msg.parts} is out of range")
        key = (msg.session, msg.seq, msg.parts)
        if self.key is not None and key != self.key and key[:2] < self.key[:2] \
                and key[0] == self.key[0]:
            return None  # an older transfer of the same session: ignore
        return self._stage(key, msg.part, msg.parts, sum(len(o.data) for o in msg.objects),
                           msg, "state")


def fill_known(obj: Causal, incoming: Causal, known: set[Dot]) -> bool:
    """Put our own entries for the dots an elided state says we have back into ``incoming``,
    so it joins exactly as the full state would. False if we do not know one of those dots
    (the state was made against an older digest of ours)."""
    for dot in known:
        path = obj.index.get(dot)
        if path is not None:
            incoming.store = insert_entry(incoming.store, path, entry_at(obj.store, path, dot))
            incoming.index[dot] = path
            sig = obj.sigs.get(dot)
            if sig is not None:
                incoming.sigs[dot] = sig
        elif not obj.ctx.contains(*dot):
            return False
    return True


def assemble(decoded: list[tuple[str, Causal, set[Dot]]]
             ) -> list[tuple[str, Causal, set[Dot]]]:
    """Join the pieces of each object (disjoint keys, one context) into one state."""
    out: dict[str, tuple[Causal, set[Dot]]] = {}
    for name, obj, known in decoded:
        have = out.get(name)
        if have is None:
            out[name] = (obj, set(known))
            continue
        acc, acc_known = have
        if acc.ctx != obj.ctx:
            raise MalformedMessage(f"parts of a CRDT state disagree on {name!r}'s context")
        depth = acc.kind.depth
        if depth and set(acc.store) & set(obj.store):
            raise MalformedMessage(f"parts of a CRDT state repeat keys of {name!r}")
        if depth == 0 and acc.store and obj.store:
            raise MalformedMessage(f"parts of a CRDT state split a leaf of {name!r}")
        if acc.index.keys() & obj.index.keys() or acc_known & obj.index.keys() \
                or known & acc.index.keys():
            raise MalformedMessage(f"parts of a CRDT state repeat dots of {name!r}")
        acc.store = _merge_store(acc.store, obj.store, depth)
        acc.index.update(obj.index)
        acc.sigs.update(obj.sigs)
        for r, h in obj.heads.items():
            acc.heads.setdefault(r, h)
        acc_known |= known
    return [(n, o, k) for n, (o, k) in out.items()]


__all__ = ["MAX_PARTS", "Staging", "assemble", "fill_known", "state_parts"]
