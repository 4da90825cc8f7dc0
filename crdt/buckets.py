"""Digests summarised by hash buckets: replicas that agree exchange O(buckets) bytes, not O(N).

Why
---
A digest (``crdt.digests``) names every writer of every object: one context row per node in
the capability registry, ~590 KB at 10,000 nodes, sent every 30 s on every connection. Two
replicas that agree, the common case, learn nothing from it. So a replica sends a *summary*
instead (``CrdtSummary``), as Dynamo and Cassandra compare Merkle ranges and Negentropy
reconciles sets by ranges: writers fall into buckets by a hash of their id (``position``,
64 bits; a bucket at depth d is the writers whose position starts with the same 4d bits), and
a bucket's hash is the sum, mod 2^64, of its rows' hashes (a row: one writer's counters).

The receiver compares the 16 top buckets of each object with its own. Equal buckets hold
equal rows (up to a 2^-64 collision), so it already knows the sender's rows there: its own.
It asks for the rest (``CrdtSummaryWant``); the sender answers each asked bucket with its 16
sub-bucket hashes when it holds more than ``LEAF_ROWS`` rows there, else with the rows
(``CrdtSummaryReply``), and the asker recurses until every differing bucket came as rows. The
asker then holds the sender's whole context (its own rows where buckets agreed, the sender's
where they did not) and goes on exactly as with a full digest. When most top buckets differ
(a peer back after a long absence) it asks for the full digest instead, which is cheaper.

Each slice of the rebuilt context is the sender's context at some moment, and contexts only
grow, so the rebuilt one is never more than the sender has now: what it says the sender
lacks, the sender lacked (we may send a little it already got meanwhile, never too little).

Hostile input costs the peer, not us: a bogus summary makes us ask (a small message) and at
worst fall back to the full digest, which the peer must build and send; what we ask is capped
per message (``MAX_WANT``) and per round (``MAX_PENDING``, then the full digest); replies for
buckets we did not ask for are ignored, and rows outside the bucket they answer for are a
malformed message. Answering wants is rate-limited by the replica.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from protocol.canonical import packb
from protocol.errors import MalformedMessage
from protocol.messages.crdt import CrdtObject

from crdt.codec import Interner, decode_ctx, decode_table, pack_payload, unpack_payload
from crdt.dots import CausalContext
from crdt.values import Limits

FANOUT_BITS = 4
FANOUT = 1 << FANOUT_BITS
MAX_DEPTH = 64 // FANOUT_BITS
LEAF_ROWS = 8
"""A bucket of at most this many rows is answered with its rows, a larger one with hashes."""
MAX_WANT = 256
"""Buckets asked for in one message (a reply is then at most ~256 x 16 hashes: ~40 KB)."""
MAX_PENDING = 1024
"""Buckets one round may ask for in all; past it the full digest is cheaper and bounded."""
FULL_WHEN = FANOUT // 2
"""More differing top buckets than this (in any object): ask for the full digest."""
_MASK = (1 << 64) - 1
_CACHE_MAX = 1 << 15
"""Cached positions and row hashes (a few MB): two objects of 10,000 writers fit."""

Prefix = tuple[int, int]
"""``(depth, value)``: the writers whose position's top ``4 * depth`` bits are ``value``."""

_positions: dict[str, int] = {}
_row_hashes: dict[tuple[str, tuple[int, ...]], int] = {}


def position(writer: str) -> int:
    """Where ``writer`` sits among the buckets (cached: ids recur every summary)."""
    p = _positions.get(writer)
    if p is None:
        if len(_positions) >= _CACHE_MAX:
            _positions.clear()
        p = _positions[writer] = int.from_bytes(
            blake2b(writer.encode(), digest_size=8, person=b"nc-bucket").digest(), "big")
    return p


def _row(ctx: CausalContext, writer: str) -> tuple[int, ...]:
    row = [ctx.vv.get(writer, 0)]
    for lo, hi in ctx.extra.get(writer, ()):
        row += (lo, hi)
    return tuple(row)


def row_hash(writer: str, row: tuple[int, ...]) -> int:
    """One context row's hash (cached: most rows are the same from one summary to the next)."""
    h = _row_hashes.get((writer, row))
    if h is None:
        if len(_row_hashes) >= _CACHE_MAX:
            _row_hashes.clear()
        h = _row_hashes[(writer, row)] = int.from_bytes(blake2b(
            packb([writer, list(row)], maps=False), digest_size=8, person=b"nc-row").digest(),
            "big")
    return h


def in_prefix(writer: str, prefix: Prefix) -> bool:
    depth, value = prefix
    return depth == 0 or position(writer) >> (64 - FANOUT_BITS * depth) == value


class BucketView:
    """One object's context, its writers sorted by position, with prefix sums of row hashes:
    any bucket's hash, row count and rows in O(log N)."""

    __slots__ = ("ctx", "pos", "writers", "sums")

    def __init__(self, ctx: CausalContext) -> None:
        self.ctx = ctx
        rows = sorted((position(w), w) for w in ctx.replicas())
        self.pos = [p for p, _ in rows]
        self.writers = [w for _, w in rows]
        self.sums = [0]
        acc = 0
        for w in self.writers:
            acc = (acc + row_hash(w, _row(ctx, w))) & _MASK
            self.sums.append(acc)

    def _range(self, prefix: Prefix) -> tuple[int, int]:
        depth, value = prefix
        if depth == 0:
            return 0, len(self.pos)
        shift = 64 - FANOUT_BITS * depth
        return bisect_left(self.pos, value << shift), bisect_left(self.pos, (value + 1) << shift)

    def hash(self, prefix: Prefix) -> int:
        i, j = self._range(prefix)
        return (self.sums[j] - self.sums[i]) & _MASK

    def count(self, prefix: Prefix) -> int:
        i, j = self._range(prefix)
        return j - i

    def children(self, prefix: Prefix) -> list[int]:
        depth, value = prefix
        return [self.hash((depth + 1, value * FANOUT + k)) for k in range(FANOUT)]

    def rows(self, prefix: Prefix) -> CausalContext:
        """Our context restricted to the bucket."""
        i, j = self._range(prefix)
        out = CausalContext()
        for w in self.writers[i:j]:
            if w in self.ctx.vv:
                out.vv[w] = self.ctx.vv[w]
            if w in self.ctx.extra:
                out.extra[w] = list(self.ctx.extra[w])
        return out


def _children(prefix: Prefix) -> list[Prefix]:
    depth, value = prefix
    return [(depth + 1, value * FANOUT + k) for k in range(FANOUT)]


# -- the sender's side ---------------------------------------------------------------------------

def summary_objects(contexts: dict[str, CausalContext]) -> tuple[CrdtObject, ...]:
    """Per object: its row count and its 16 top bucket hashes."""
    out = []
    for name, ctx in contexts.items():
        view = BucketView(ctx)
        out.append(CrdtObject(name, pack_payload([len(view.pos), view.children((0, 0))])))
    return tuple(out)


def reply_objects(contexts: dict[str, CausalContext], wants: dict[str, list[Prefix]],
                  max_bytes: int) -> list[tuple[tuple[str, ...], tuple[CrdtObject, ...]]]:
    """Our answer to the buckets wanted, as ``(replica table, objects)`` per message, each
    under ``max_bytes``: a large bucket as its sub-bucket hashes, a small one as rows."""
    msgs: list[tuple[Interner, dict[str, list[Any]], int]] = [(Interner(), {}, 0)]
    for name, prefixes in wants.items():
        ctx = contexts.get(name)
        if ctx is None:
            continue
        view = BucketView(ctx)
        for prefix in prefixes:
            depth, value = prefix
            leaf = view.count(prefix) <= LEAF_ROWS or depth >= MAX_DEPTH
            rows = view.rows(prefix) if leaf else None
            cost = 16 + (9 * FANOUT if rows is None else sum(
                len(w) + 16 + 18 * len(rows.extra.get(w, ())) for w in rows.replicas()))
            if msgs[-1][2] and msgs[-1][2] + cost > max_bytes:
                msgs.append((Interner(), {}, 0))
            rep, objs, size = msgs[-1]
            if rows is None:
                entry: list[Any] = [depth, value, 0, view.children(prefix)]
            else:
                entry = [depth, value, 1, [[rep.index(w), *_row(rows, w)]
                                           for w in sorted(rows.replicas())]]
            objs.setdefault(name, []).append(entry)
            msgs[-1] = (rep, objs, size + cost)
    return [(tuple(rep.table), tuple(CrdtObject(n, pack_payload(e)) for n, e in objs.items()))
            for rep, objs, _ in msgs if objs]


def decode_wants(objects: tuple[CrdtObject, ...], known: dict[str, Any],
                 limits: Limits) -> dict[str, list[Prefix]]:
    """The buckets a peer asks for (``MalformedMessage`` for anything out of range)."""
    out: dict[str, list[Prefix]] = {}
    total = 0
    for o in objects:
        if o.name in out:
            raise MalformedMessage(f"summary want names object {o.name!r} twice")
        raw = unpack_payload(o.data, limits)
        if type(raw) is not list:
            raise MalformedMessage("summary want: a list of [depth, prefix] per object")
        total += len(raw)
        if total > MAX_WANT:
            raise MalformedMessage(f"summary want asks for over {MAX_WANT} buckets")
        out[o.name] = [_prefix(x) for x in raw] if o.name in known else []
    return out


def _prefix(x: Any) -> Prefix:
    if type(x) is not list or len(x) != 2 or type(x[0]) is not int or type(x[1]) is not int \
            or not 0 <= x[0] <= MAX_DEPTH or not 0 <= x[1] < 1 << (FANOUT_BITS * x[0]):
        raise MalformedMessage("a bucket is [depth 0-16, prefix below 16^depth]")
    return x[0], x[1]


# -- the asker's side ----------------------------------------------------------------------------

@dataclass(slots=True)
class Round:
    """One reconciliation against a peer's summary, until every differing bucket came as rows.
    ``theirs``: the peer's context rebuilt so far (its rows, or ours where buckets agreed)."""

    id: int
    theirs: dict[str, CausalContext]
    pending: dict[str, set[Prefix]] = field(default_factory=dict)
    fresh: list[tuple[str, Prefix]] = field(default_factory=list)
    """Pending buckets not asked for yet."""
    asked: int = 0

    def done(self) -> bool:
        return not any(self.pending.values())

    def wants(self) -> list[tuple[CrdtObject, ...]]:
        """The buckets to ask for now, as want messages' objects, ``MAX_WANT`` per message."""
        flat, self.fresh = self.fresh, []
        out = []
        for i in range(0, len(flat), MAX_WANT):
            per: dict[str, list[list[int]]] = {}
            for n, (d, v) in flat[i:i + MAX_WANT]:
                per.setdefault(n, []).append([d, v])
            out.append(tuple(CrdtObject(n, pack_payload(ps)) for n, ps in per.items()))
        return out


FULL = (0, 0)
"""The prefix that asks for the whole digest."""


def _hashes(x: Any) -> list[int]:
    if type(x) is not list or len(x) != FANOUT or \
            not all(type(h) is int and 0 <= h <= _MASK for h in x):
        raise MalformedMessage(f"a bucket summary is {FANOUT} unsigned 64-bit hashes")
    return x


def _differing(round_: Round, name: str, view: BucketView, parent: Prefix,
               hashes: list[int]) -> None:
    """Take our rows of the sub-buckets of ``parent`` whose hash matches; queue the others."""
    ours = view.children(parent)
    for child, mine, theirs in zip(_children(parent), ours, hashes):
        if mine == theirs:
            round_.theirs[name].join(view.rows(child))
        else:
            round_.pending.setdefault(name, set()).add(child)
            round_.fresh.append((name, child))
            round_.asked += 1


def start_round(round_id: int, ours: dict[str, CausalContext], objects: tuple[CrdtObject, ...],
                limits: Limits) -> Round | None:
    """Compare a peer's summary with our contexts. The returned round is done at once when
    everything agrees; None: too much differs, ask for the full digest."""
    sent: dict[str, tuple[int, list[int]]] = {}
    for o in objects:
        if o.name in sent:
            raise MalformedMessage(f"summary names object {o.name!r} twice")
        raw = unpack_payload(o.data, limits)
        if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not int or raw[0] < 0:
            raise MalformedMessage("a summary object is [rows, hashes]")
        sent[o.name] = (raw[0], _hashes(raw[1]))
    r = Round(round_id, {n: CausalContext() for n in ours})
    for name, ctx in ours.items():
        if name not in sent:
            continue  # the peer holds nothing of it: an empty context
        view = BucketView(ctx)
        _differing(r, name, view, FULL, sent[name][1])
        if len(r.pending.get(name, ())) > FULL_WHEN:
            return None
    return r


def absorb_reply(round_: Round, ours: dict[str, CausalContext], replicas: tuple[str, ...],
                 objects: tuple[CrdtObject, ...], limits: Limits) -> bool:
    """Take a reply's buckets into the round; False: it grew past ``MAX_PENDING`` (ask for the
    full digest). Buckets we did not ask for are ignored (a stale or duplicated reply)."""
    table = decode_table(list(replicas), limits)
    for o in objects:
        pending = round_.pending.get(o.name)
        if not pending:
            continue
        raw = unpack_payload(o.data, limits)
        if type(raw) is not list:
            raise MalformedMessage("a summary reply is a list of buckets per object")
        view: BucketView | None = None
        for entry in raw:
            if type(entry) is not list or len(entry) != 4 or entry[2] not in (0, 1):
                raise MalformedMessage("a reply bucket is [depth, prefix, 0|1, body]")
            prefix = _prefix(entry[:2])
            if prefix not in pending:
                continue
            if entry[2] == 0:
                if prefix[0] >= MAX_DEPTH:
                    raise MalformedMessage("a bucket at the deepest level must come as rows")
                view = view or BucketView(ours[o.name])
                pending.discard(prefix)
                _differing(round_, o.name, view, prefix, _hashes(entry[3]))
            else:
                rows = decode_ctx(entry[3], table, limits)
                if not all(in_prefix(w, prefix) for w in rows.replicas()):
                    raise MalformedMessage("summary reply rows outside their bucket")
                pending.discard(prefix)
                round_.theirs[o.name].join(rows)
    return round_.asked <= MAX_PENDING


__all__ = ["BucketView", "FULL", "FULL_WHEN", "LEAF_ROWS", "MAX_PENDING", "MAX_WANT", "Round",
           "absorb_reply", "decode_wants", "position", "reply_objects", "start_round",
           "summary_objects"]
