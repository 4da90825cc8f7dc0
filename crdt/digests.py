"""Digests in parts: a causal context too big for one message goes as several, joined as one.

A digest carries one context row per writer of each object. The capability registry has one
writer per node, so at ~4,000 nodes one digest would name more writers than a message may
(``MAX_REPLICAS``) and at 10,000 it would be ~590 KB: a message the protocol built itself
that the frame cap or the schema refuses. ``digest_messages`` cuts the rows into parts, each
under ``max_bytes`` and ``max_writers``; a network small enough for one message still sends
one plain ``CrdtDigest``, as before.

The receiver stages the parts of the newest digest from each peer (``DigestStaging``: bounded
bytes and parts) and acts only once all are in, joining each object's slices into the
context the sender holds. A half-received digest is never acted on: a missing slice would
look like writers the sender lacks, and we would send it states it does not need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.canonical import packb
from protocol.errors import MalformedMessage, MessageTooLarge
from protocol.messages.crdt import MAX_REPLICAS, CrdtDigest, CrdtDigestPart, CrdtObject

from crdt.codec import Interner, decode_ctx, decode_table, pack_payload, unpack_payload
from crdt.dots import CausalContext
from crdt.transfer import PartStaging
from crdt.values import Limits

MAX_DIGEST_PARTS = 256
"""Parts of one digest at most: 256 x ~900 KB is far beyond any registry we expect."""
_ROW_OVERHEAD = 8
"""msgpack framing per row and per table entry, generously."""


def _rows(ctx: CausalContext) -> list[tuple[str, list[int]]]:
    out = []
    for r in sorted(ctx.replicas()):
        row = [ctx.vv.get(r, 0)]
        for lo, hi in ctx.extra.get(r, ()):
            row += (lo, hi)
        out.append((r, row))
    return out


@dataclass(slots=True)
class _Part:
    rep: Interner
    objects: dict[str, list[list[Any]]]
    size: int = 0


def digest_messages(contexts: dict[str, CausalContext], *, session: int, applied_session: int,
                    applied_seq: int, max_bytes: int, max_writers: int = MAX_REPLICAS
                    ) -> list[CrdtDigest] | list[CrdtDigestPart]:
    """Our contexts as one ``CrdtDigest``, or as ``CrdtDigestPart`` messages when one message
    would exceed ``max_bytes`` of payload or name more than ``max_writers`` writers."""
    parts: list[_Part] = [_Part(Interner(), {})]
    for name, ctx in contexts.items():
        parts[-1].objects.setdefault(name, [])
        for writer, row in _rows(ctx):
            part = parts[-1]
            size = len(packb(row, maps=False)) + _ROW_OVERHEAD
            new_writer = writer not in part.rep.table
            size += len(writer) + _ROW_OVERHEAD if new_writer else 0
            if part.size + size > max_bytes or (new_writer and len(part.rep.table) >= max_writers):
                part = _Part(Interner(), {name: []})
                parts.append(part)
                size = len(packb(row, maps=False)) + len(writer) + 2 * _ROW_OVERHEAD
            part.objects.setdefault(name, []).append([part.rep.index(writer), *row])
            part.size += size
    if len(parts) > MAX_DIGEST_PARTS:
        raise MessageTooLarge(f"a digest needs {len(parts)} parts, over {MAX_DIGEST_PARTS}")

    def objects(part: _Part) -> tuple[CrdtObject, ...]:
        return tuple(CrdtObject(n, pack_payload(rows)) for n, rows in part.objects.items())

    if len(parts) == 1:
        return [CrdtDigest(session, applied_session, applied_seq, tuple(parts[0].rep.table),
                           objects(parts[0]))]
    return [CrdtDigestPart(session, applied_session, applied_seq, i, len(parts),
                           tuple(p.rep.table), objects(p)) for i, p in enumerate(parts)]


def decode_contexts(replicas: tuple[str, ...], objects: tuple[CrdtObject, ...],
                    known: set[str] | dict[str, Any], limits: Limits) -> dict[str, CausalContext]:
    """One digest message's contexts, for the object names we know (others are skipped)."""
    table = decode_table(list(replicas), limits)
    out: dict[str, CausalContext] = {}
    for o in objects:
        if o.name in known:
            if o.name in out:
                raise MalformedMessage(f"CRDT digest names object {o.name!r} twice")
            out[o.name] = decode_ctx(unpack_payload(o.data, limits), table, limits)
    return out


class DigestStaging(PartStaging[CrdtDigestPart]):
    """Parts of the newest multi-part digest from one peer, until they are all here."""

    __slots__ = ()

    def add(self, msg: CrdtDigestPart) -> list[CrdtDigestPart] | None:
        """Stage one part; every part, in order, once the last one is in. A part of another
        digest (the sender started a newer one) drops what was staged. Two digests with the
        same key may mix; each slice is a context the sender held, and contexts only grow,
        so a mix under-states the sender at worst: we send it a little it already has."""
        if not 0 <= msg.part < msg.parts <= MAX_DIGEST_PARTS:
            raise MalformedMessage(f"CRDT digest part {msg.part} of {msg.parts} is out of range")
        size = sum(len(o.data) for o in msg.contexts) + sum(len(r) for r in msg.replicas)
        return self._stage((msg.session, msg.applied_session, msg.applied_seq, msg.parts),
                           msg.part, msg.parts, size, msg, "digest")


__all__ = ["DigestStaging", "MAX_DIGEST_PARTS", "decode_contexts", "digest_messages"]
