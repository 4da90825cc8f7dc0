"""Compact msgpack form of CRDT states and deltas, and strict decoding of a peer's bytes.

Wire form of one object (all arrays; replica ids are indices into a per-message table, so a
52-character node id costs one byte per dot)::

    object  = [flags, ctx, store, heads, known]
    ctx     = [[ri, vv, lo1, hi1, lo2, hi2, ...], ...]     version vector + outstanding ranges
    store   = depth 0: [ri, counter, *payload, (sig), ri, counter, ...]   flattened leaf entries
              depth d: [key1, store1, key2, store2, ...]                   keys in sorted order
    heads   = [ri, counter, digest, sig, ...]               writers' signed mutations (proofs)
    known   = [[ri, lo1, hi1, ...], ...]                    elided live dots (digest replies)

``flags`` bit 0: every entry carries its writer's signature (``crdt.auth``). A snapshot is
``[1, kind name, replica table, object]``.

Decoding checks everything before building anything: shapes, integer ranges, key types and
lengths, value bytes (canonical msgpack, depth and size caps), unique dots, every dot inside
the context, entry and range counts under ``Limits``. It raises only ``RemoteProtocolError``
subclasses (``MalformedMessage``, ``MessageTooLarge``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, MessageTooLarge

from crdt.causal import Causal, Head, Kind, LeafSpec
from crdt.dots import CausalContext, Dot
from crdt.dotstore import Path, Store, insert_entry
from crdt.values import DEFAULT_LIMITS, SNAPSHOT_LIMITS, Limits, check_value_bytes, key_problem

SNAPSHOT_FORMAT = 1
FLAG_SIGNED = 1
U64_MAX = (1 << 64) - 1
MAX_REPLICA_LEN = 64
_KEY_RANK = {str: 0, int: 1, bytes: 2}


def _key_order(k: Any) -> tuple[int, Any]:
    return (_KEY_RANK[type(k)], k)


class Interner:
    """Per-message table of replica ids: ``index(r)`` gives ``r``'s position."""

    __slots__ = ("table", "_pos")

    def __init__(self) -> None:
        self.table: list[str] = []
        self._pos: dict[str, int] = {}

    def index(self, replica: str) -> int:
        i = self._pos.get(replica)
        if i is None:
            i = self._pos[replica] = len(self.table)
            self.table.append(replica)
        return i


# -- encoding -----------------------------------------------------------------------------------


def encode_ctx(ctx: CausalContext, rep: Interner) -> list[Any]:
    out = []
    for r in sorted(ctx.replicas()):
        row = [rep.index(r), ctx.vv.get(r, 0)]
        for lo, hi in ctx.extra.get(r, ()):
            row += (lo, hi)
        out.append(row)
    return out


def _encode_store(store: Store, depth: int, rep: Interner,
                  sigs: dict[Dot, bytes] | None) -> list[Any]:
    if depth == 0:
        flat: list[Any] = []
        for e in store:
            flat.append(rep.index(e[0]))
            flat.extend(e[1:])
            if sigs is not None:
                flat.append(sigs.get((e[0], e[1])))
        return flat
    out: list[Any] = []
    for k in sorted(store, key=_key_order):
        out.append(k)
        out.append(_encode_store(store[k], depth - 1, rep, sigs))
    return out


def encode_dots(dots: Iterable[Dot], rep: Interner) -> list[Any]:
    ctx = CausalContext.from_dots(dots)
    return [[rep.index(r)] + [x for rng in ctx.intervals(r) for x in rng]
            for r in sorted(ctx.replicas())]


def encode_object(obj: Causal, rep: Interner, *, signed: bool = False,
                  heads: dict[str, Head] | None = None, known: Iterable[Dot] = (),
                  store: Store | None = None) -> list[Any]:
    """Encode ``obj`` (``store`` overrides its store, for elided states). ``signed`` puts each
    entry's signature next to it; ``heads`` defaults to the object's."""
    heads = obj.heads if heads is None else heads
    flat_heads: list[Any] = []
    for r in sorted(heads):
        counter, digest, sig = heads[r]
        flat_heads += (rep.index(r), counter, digest, sig)
    return [FLAG_SIGNED if signed else 0, encode_ctx(obj.ctx, rep),
            _encode_store(obj.store if store is None else store, obj.kind.depth, rep,
                          obj.sigs if signed else None),
            flat_heads, encode_dots(known, rep)]


def snapshot(obj: Causal) -> bytes:
    """The object's full state as bytes (for persistence); ``load`` gives it back exactly."""
    rep = Interner()
    body = encode_object(obj, rep, signed=bool(obj.sigs))
    return packb([SNAPSHOT_FORMAT, obj.kind.name, rep.table, body], maps=False)


# -- decoding -----------------------------------------------------------------------------------


def _bad(what: str) -> MalformedMessage:
    return MalformedMessage(f"CRDT payload: {what}")


def _list(v: Any, what: str) -> list[Any]:
    if type(v) is not list:
        raise _bad(f"{what} must be an array, got {type(v).__name__}")
    return v


def _uint(v: Any, what: str, lo: int = 0, hi: int = U64_MAX) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{what} must be an integer in [{lo}, {hi}], got {v!r:.40}")
    return v


def pack_payload(payload: list[Any]) -> bytes:
    """An object payload as msgpack bytes (what ``CrdtObject.data`` carries)."""
    return packb(payload, maps=False)


def unpack_payload(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode payload bytes with caps on size and container lengths (``RemoteProtocolError``
    only)."""
    if type(data) is not bytes:
        raise _bad("an object payload must be bytes")
    return unpackb(data, max_size=max(len(data), 1), max_items=8 * limits.max_entries + 16)


def decode_table(v: Any, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    table = _list(v, "replica table")
    if len(table) > limits.max_replicas:
        raise MessageTooLarge(f"CRDT payload names {len(table)} replicas, the limit is "
                              f"{limits.max_replicas}")
    for r in table:
        if type(r) is not str or not 0 < len(r) <= MAX_REPLICA_LEN:
            raise _bad(f"replica ids are non-empty strings of at most {MAX_REPLICA_LEN} "
                       "characters")
    if len(set(table)) != len(table):
        raise _bad("replica table repeats an id")
    return table


class _Decoder:
    __slots__ = ("table", "limits", "entries", "ranges")

    def __init__(self, table: list[str], limits: Limits) -> None:
        self.table = table
        self.limits = limits
        self.entries = 0
        self.ranges = 0

    def replica(self, v: Any) -> str:
        if type(v) is not int or not 0 <= v < len(self.table):
            raise _bad(f"replica index {v!r:.20} is not in the table of {len(self.table)}")
        return self.table[v]

    def ranges_row(self, row: list[Any], start: int, what: str) -> list[tuple[int, int]]:
        tail = row[start:]
        if len(tail) % 2:
            raise _bad(f"{what}: ranges come in (lo, hi) pairs")
        self.ranges += len(tail) // 2
        if self.ranges > self.limits.max_ctx_ranges:
            raise MessageTooLarge(f"CRDT payload has over {self.limits.max_ctx_ranges} ranges")
        out = []
        for i in range(0, len(tail), 2):
            lo = _uint(tail[i], f"{what} range start", 1)
            hi = _uint(tail[i + 1], f"{what} range end", lo)
            out.append((lo, hi))
        return out

    def ctx(self, v: Any) -> CausalContext:
        ctx = CausalContext()
        seen: set[str] = set()
        for row in _list(v, "context"):
            row = _list(row, "context row")
            if len(row) < 2:
                raise _bad("context row needs a replica and a counter")
            r = self.replica(row[0])
            if r in seen:
                raise _bad("context names a replica twice")
            seen.add(r)
            n = _uint(row[1], "version vector entry")
            if len(row) == 2:
                if n:
                    ctx.vv[r] = n
            else:
                ctx._set(r, ([(1, n)] if n else []) + self.ranges_row(row, 2, "context"))
        return ctx

    def dots(self, v: Any, what: str) -> set[Dot]:
        out: set[Dot] = set()
        for row in _list(v, what):
            row = _list(row, what)
            if not row:
                raise _bad(f"{what} row is empty")
            r = self.replica(row[0])
            for lo, hi in self.ranges_row(row, 1, what):
                if hi - lo >= self.limits.max_entries - len(out):
                    raise MessageTooLarge(f"{what} lists over {self.limits.max_entries} dots")
                out.update((r, c) for c in range(lo, hi + 1))
        return out

    def leaf(self, v: Any, spec: LeafSpec, signed: bool, path: Path,
             out_entries: list[tuple[Path, tuple[Any, ...]]],
             sigs: dict[Dot, bytes]) -> None:
        flat = _list(v, "leaf")
        width = 2 + len(spec.fields) + (1 if signed else 0)
        if (not flat and path) or len(flat) % width:
            raise _bad(f"a {spec.name} leaf is a non-empty run of {width}-field entries")
        self.entries += len(flat) // width
        if self.entries > self.limits.max_entries:
            raise MessageTooLarge(f"CRDT object has over {self.limits.max_entries} entries")
        checks = [_FIELD[f] for f in spec.fields]
        for i in range(0, len(flat), width):
            r = self.replica(flat[i])
            c = _uint(flat[i + 1], "dot counter", 1)
            payload = tuple(chk(x, self.limits) for chk, x in zip(checks, flat[i + 2:]))
            out_entries.append((path, (r, c) + payload))
            if signed:
                sig = flat[i + width - 1]
                if sig is not None:
                    if type(sig) is not bytes or len(sig) != 64:
                        raise _bad("an entry signature must be 64 bytes or nil")
                    sigs[(r, c)] = sig

    def store(self, v: Any, depth: int, spec: LeafSpec, signed: bool, path: Path,
              out_entries: list[tuple[Path, tuple[Any, ...]]], sigs: dict[Dot, bytes]) -> None:
        if depth == 0:
            self.leaf(v, spec, signed, path, out_entries, sigs)
            return
        flat = _list(v, "map")
        if len(flat) % 2:
            raise _bad("a map is a run of (key, value) pairs")
        keys = flat[0::2]
        for k in keys:
            problem = key_problem(k, self.limits)
            if problem:
                raise _bad(problem)
        if len(set(keys)) != len(keys):
            raise _bad("a map repeats a key")
        if not flat and path:
            raise _bad("a nested map is empty (empty values are left out)")
        for i in range(0, len(flat), 2):
            self.store(flat[i + 1], depth - 1, spec, signed, path + (flat[i],), out_entries,
                       sigs)

    def heads(self, v: Any) -> dict[str, Head]:
        flat = _list(v, "heads")
        if len(flat) % 4:
            raise _bad("heads come in (replica, counter, digest, signature) quadruples")
        out: dict[str, Head] = {}
        for i in range(0, len(flat), 4):
            r = self.replica(flat[i])
            c = _uint(flat[i + 1], "head counter", 1)
            digest, sig = flat[i + 2], flat[i + 3]
            if type(digest) is not bytes or len(digest) != 32:
                raise _bad("a head digest must be 32 bytes")
            if type(sig) is not bytes or len(sig) != 64:
                raise _bad("a head signature must be 64 bytes")
            if r in out:
                raise _bad("heads name a replica twice")
            out[r] = (c, digest, sig)
        return out


def _check_uint(v: Any, limits: Limits) -> int:
    return _uint(v, "counter total")


def _check_wall(v: Any, limits: Limits) -> int:
    return _uint(v, "HLC wall time", 0, (1 << 63) - 1)


def _check_logical(v: Any, limits: Limits) -> int:
    return _uint(v, "HLC logical counter", 0, (1 << 32) - 1)


_FIELD: dict[str, Callable[[Any, Limits], Any]] = {
    "uint": _check_uint, "wall": _check_wall, "logical": _check_logical,
    "value": check_value_bytes,
}


def decode_object(proto: Causal, v: Any, table: list[str],
                  limits: Limits = DEFAULT_LIMITS) -> tuple[Causal, set[Dot]]:
    """Decode one object payload into a new object of ``proto``'s type.

    Returns ``(object, known)``: ``known`` is the set of elided live dots (empty unless the
    payload is a digest reply, see ``antientropy``)."""
    body = _list(v, "object")
    if len(body) != 5:
        raise _bad("an object is [flags, context, store, heads, known]")
    flags = _uint(body[0], "flags", 0, FLAG_SIGNED)
    dec = _Decoder(table, limits)
    ctx = dec.ctx(body[1])
    kind: Kind = proto.kind
    entries: list[tuple[Path, tuple[Any, ...]]] = []
    sigs: dict[Dot, bytes] = {}
    dec.store(body[2], kind.depth, kind.leaf, bool(flags & FLAG_SIGNED), (), entries, sigs)
    heads = dec.heads(body[3])
    known = dec.dots(body[4], "known dots")
    store: Store = {} if kind.depth else ()
    index: dict[Dot, Path] = {}
    for path, e in entries:
        dot = (e[0], e[1])
        if dot in index:
            raise _bad(f"dot ({dot[0][:16]}, {dot[1]}) appears twice")
        if not ctx.contains(*dot):
            raise _bad(f"entry dot ({dot[0][:16]}, {dot[1]}) is missing from the context")
        index[dot] = path
        store = insert_entry(store, path, e)
    for dot in known:
        if dot in index or not ctx.contains(*dot):
            raise _bad("an elided dot must be in the context and not among the entries")
    obj = proto.root.empty_like()
    obj.store, obj.ctx, obj.index, obj.sigs, obj.heads = store, ctx, index, sigs, heads
    return obj, known


def load(data: bytes, proto: Causal, limits: Limits = SNAPSHOT_LIMITS) -> Causal:
    """Read back a ``snapshot``; ``proto`` is an (empty) object of the expected type."""
    v = unpackb(data, max_size=1 << 31, max_items=2 * limits.max_entries + 16)
    body = _list(v, "snapshot")
    if len(body) != 4 or body[0] != SNAPSHOT_FORMAT:
        raise _bad(f"not a CRDT snapshot of format {SNAPSHOT_FORMAT}")
    if body[1] != proto.kind.name:
        raise _bad(f"snapshot holds a {body[1]!r:.40}, expected {proto.kind.name}")
    obj, known = decode_object(proto, body[3], decode_table(body[2], limits), limits)
    if known:
        raise _bad("a snapshot has no elided dots")
    return obj


def decode_ctx(v: Any, table: list[str], limits: Limits = DEFAULT_LIMITS) -> CausalContext:
    return _Decoder(table, limits).ctx(v)


__all__ = ["Interner", "SNAPSHOT_FORMAT", "decode_ctx", "decode_object", "decode_table",
           "encode_ctx", "encode_dots", "encode_object", "load", "pack_payload", "snapshot",
           "unpack_payload"]
