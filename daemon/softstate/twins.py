"""Two daemons holding one node's key, found through the soft state. Pure: no clock, no I/O.

Why the soft state alone does not show them
-------------------------------------------
A copy of a data directory holds the node's key and its soft-state snapshot, so both daemons
write the node's capability record under one writer id, from counters that started equal. A
peer drops the write whose dot it has already covered (the other daemon's later write), and it
never sends news back to the peer id it came from; so when the two cannot dial each other
(NAT, or they only share neighbours, which see one peer id with two connections), neither
ever sees the other's record. ``daemon.duplicate`` (a dial at start) misses this case too.

Theory of operation
-------------------
- Every record names its daemon's ``instance`` (random per start) and ``started_ms``.
- Peers keep what the registry drops: the replica hands over every capability entry a peer
  sends (``CrdtReplica.watch``), and a ``TwinBook`` keeps, per node, the newest signed record
  of each instance other than the one the registry holds (bounded: ``MAX_NODES`` nodes,
  ``MAX_INSTANCES`` each). Signatures of dropped entries are checked before they are kept.
- Every daemon asks its peers now and then which records of *its own* id they hold from
  other instances (``daemon.softstate.twin_guard``: request/response, so the answer comes back
  on the asker's own connection even when the peer has two connections under that id). The
  answer is signed by the node's own key: a peer can withhold it, not forge it.
- ``judge``: the daemon that started first (``started_ms``, then ``instance``) keeps its seat.
  When it sees a record of a later instance it writes its record again naming that instance in
  ``rivals``. That record proves it was alive after the later one started, with no clock to
  compare (the instance is random and unknown before that start). The later instance steps
  aside when it sees such a record naming it, and only then: a record of an earlier instance
  that does not name it may be the record of this node's own previous run, which is dead.
- A peer that holds both (an earlier instance's record naming a later one) holds evidence
  anyone can check (``Evidence``), logs it once and counts it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any

from crdt import LWWMap
from crdt.auth import DotVerifier, write_digest
from crdt.lww import winner
from crdt.values import unpack_value
from daemon.capabilities import record_from_wire
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.messages.capability import CapabilityAnnounce

MAX_NODES = 256
"""Nodes whose off-registry records a witness keeps (least recently changed go first)."""
MAX_INSTANCES = 3
"""Records per node, one per instance."""
MAX_REPLY_RECORDS = 3
MAX_RECORD_BYTES = 64 * 1024
"""The registry's own cap on a value (``crdt.values.Limits.max_value_bytes``)."""
MAX_REPLY_BYTES = 4 + MAX_REPLY_RECORDS * (MAX_RECORD_BYTES + 128)
MAX_REQUEST_BYTES = 16 + MAX_RECORD_BYTES + 128
MAX_SEEN_EVIDENCE = 1024


class Verdict(Enum):
    NONE = "none"
    """No other live daemon with this key is shown."""
    KEEP_SEAT = "keep_seat"
    """A later daemon with this key: this one keeps its seat and names it in its record."""
    STEP_ASIDE = "step_aside"
    """An earlier daemon with this key that has seen this one: this one must stop."""


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A capability record as its writer signed it in the registry (an LWW entry)."""

    counter: int
    wall: int
    logical: int
    value: bytes
    sig: bytes
    record: CapabilityAnnounce

    @property
    def node(self) -> str:
        return self.record.node_id

    def to_wire(self) -> list[Any]:
        return [self.counter, self.wall, self.logical, self.value, self.sig]

    @classmethod
    def from_entry(cls, key: Any, entry: tuple[Any, ...], sig: bytes | None) -> "SignedRecord":
        """From a registry entry ``(writer, counter, wall, logical, value)`` under ``key``."""
        if sig is None or type(key) is not str or entry[0] != key:
            raise MalformedMessage("a capability entry without its writer's signature")
        return cls._make(key, entry[1], entry[2], entry[3], entry[4], sig)

    @classmethod
    def from_wire(cls, node: str, v: Any) -> "SignedRecord":
        if type(v) is not list or len(v) != 5:
            raise MalformedMessage("a signed record is [counter, wall, logical, value, sig]")
        return cls._make(node, *v)

    @classmethod
    def _make(cls, node: str, counter: Any, wall: Any, logical: Any, value: Any,
              sig: Any) -> "SignedRecord":
        if not all(type(x) is int and 0 <= x < 1 << 64 for x in (counter, wall, logical)) \
                or type(value) is not bytes or type(sig) is not bytes or len(sig) != 64 \
                or len(value) > MAX_RECORD_BYTES:
            raise MalformedMessage("malformed signed record")
        try:
            record = record_from_wire(unpack_value(value), expected_node=node)
        except (ValueError, TypeError) as err:
            raise MalformedMessage(f"signed record does not decode: {err}") from None
        return cls(counter, wall, logical, value, sig, record)

    def verify(self, verifier: DotVerifier, name: str) -> bool:
        """Signed by the node itself, as a write of its record in object ``name``."""
        digest = write_digest(name, (self.node,), (self.wall, self.logical, self.value))
        try:
            return verifier.verify(name, self.node, self.counter, digest, self.sig)
        except RemoteProtocolError:
            return False


def signed_winner(caps: LWWMap, node: str) -> SignedRecord | None:
    """``node``'s current record in the registry ``caps``, with its writer's signature."""
    leaf = caps.store.get(node)
    if not leaf:
        return None
    e = winner(leaf)
    try:
        return SignedRecord.from_entry(node, e, caps.sigs.get((e[0], e[1])))
    except RemoteProtocolError:
        return None


def outranks(a: CapabilityAnnounce, b: CapabilityAnnounce) -> bool:
    """``a`` started first: of two daemons with one key, it keeps the seat."""
    return (a.started_ms, a.instance) < (b.started_ms, b.instance)


def judge(node: str, instance: int, started_ms: int, other: CapabilityAnnounce) -> Verdict:
    """What the daemon ``instance`` of ``node``, started at ``started_ms``, does about
    ``other``, a record of its own node id (signature checked by the caller)."""
    if other.node_id != node or other.instance in (0, instance) or instance == 0:
        return Verdict.NONE
    if (other.started_ms, other.instance) < (started_ms, instance):
        return Verdict.STEP_ASIDE if instance in other.rivals else Verdict.NONE
    return Verdict.KEEP_SEAT


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two records of one node, both signed by it: ``earlier`` names ``later`` among its
    rivals, so two daemons with the key were live at once. Anyone can check it."""

    earlier: SignedRecord
    later: SignedRecord

    @property
    def node(self) -> str:
        return self.earlier.node


def find_evidence(records: list[SignedRecord]) -> Evidence | None:
    for a in records:
        for b in records:
            if a.record.instance != b.record.instance and outranks(a.record, b.record) \
                    and b.record.instance in a.record.rivals:
                return Evidence(a, b)
    return None


class TwinBook:
    """What a witness keeps: per node, the newest signed record of each instance that the
    registry does not hold (the registry keeps one winner per node)."""

    __slots__ = ("_nodes", "_seen", "evidence")

    def __init__(self) -> None:
        self._nodes: OrderedDict[str, dict[int, SignedRecord]] = OrderedDict()
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.evidence = 0
        """Distinct (node, later instance) pairs seen with evidence."""

    def wants(self, sr: SignedRecord, winner: CapabilityAnnounce | None) -> bool:
        """Would ``observe`` keep this record? (Check its signature first only if so.)"""
        inst = sr.record.instance
        if inst == 0 or (winner is not None and winner.instance == inst):
            return False
        kept = self._nodes.get(sr.node, {}).get(inst)
        return kept is None or kept.counter < sr.counter

    def observe(self, sr: SignedRecord, winner: SignedRecord | None) -> Evidence | None:
        """Keep ``sr`` (signature checked) next to the registry's ``winner`` for its node;
        returns evidence the first time this node's pair shows two live daemons."""
        if not self.wants(sr, winner.record if winner else None):
            return None
        kept = self._nodes.pop(sr.node, {})
        kept[sr.record.instance] = sr
        if len(kept) > MAX_INSTANCES:
            oldest = min(kept.values(), key=lambda r: r.record.updated_ms)
            del kept[oldest.record.instance]
        self._nodes[sr.node] = kept
        while len(self._nodes) > MAX_NODES:
            self._nodes.popitem(last=False)
        ev = find_evidence([*kept.values(), *([winner] if winner else [])])
        if ev is None:
            return None
        key = (ev.node, ev.later.record.instance)
        if key in self._seen:
            return None
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN_EVIDENCE:
            self._seen.popitem(last=False)
        self.evidence += 1
        return ev

    def others(self, node: str, instance: int, winner: SignedRecord | None
               ) -> list[SignedRecord]:
        """Records of ``node`` from instances other than ``instance``, newest first: the
        answer to that instance's question."""
        found = [r for r in self._nodes.get(node, {}).values()]
        if winner is not None and all(r.record.instance != winner.record.instance
                                      for r in found):
            found.append(winner)
        found = [r for r in found if r.record.instance not in (0, instance)]
        found.sort(key=lambda r: r.record.updated_ms, reverse=True)
        return found[:MAX_REPLY_RECORDS]


def encode_request(instance: int, mine: SignedRecord | None) -> bytes:
    """The question ``instance`` asks a peer, with its own newest record: the peer keeps it
    for the other daemon with this key, whatever the peer's registry holds."""
    return packb([instance, mine.to_wire() if mine else None], maps=False)


def decode_request(node: str, frame: bytes) -> tuple[int, SignedRecord | None]:
    """``(instance, its record)`` from ``node``'s question (the signature not yet checked)."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise MalformedMessage("twin request too large")
    v = unpackb(frame, max_size=MAX_REQUEST_BYTES, max_items=16)
    if type(v) is not list or len(v) != 2 or type(v[0]) is not int or not 0 <= v[0] < 1 << 64:
        raise MalformedMessage("a twin request is [instance, record]")
    sr = None if v[1] is None else SignedRecord.from_wire(node, v[1])
    if sr is not None and sr.record.instance != v[0]:
        raise MalformedMessage("a twin request carries another instance's record")
    return int(v[0]), sr


def encode_reply(records: list[SignedRecord]) -> bytes:
    out: list[Any] = []
    size = 4
    for r in records[:MAX_REPLY_RECORDS]:
        size += len(r.value) + 128
        if size > MAX_REPLY_BYTES:
            break
        out.append(r.to_wire())
    return packb(out, maps=False)


def decode_reply(node: str, frame: bytes) -> list[SignedRecord]:
    """Records of ``node`` a peer sent back (signatures not yet checked)."""
    if len(frame) > MAX_REPLY_BYTES:
        raise MalformedMessage(f"twin reply of {len(frame)} bytes, over {MAX_REPLY_BYTES}")
    v = unpackb(frame, max_size=MAX_REPLY_BYTES, max_items=64)
    if type(v) is not list or len(v) > MAX_REPLY_RECORDS:
        raise MalformedMessage("a twin reply is a short list of signed records")
    return [SignedRecord.from_wire(node, x) for x in v]


__all__ = ["Evidence", "MAX_REPLY_BYTES", "SignedRecord", "TwinBook", "Verdict",
           "decode_reply", "decode_request", "encode_reply", "encode_request", "find_evidence",
           "judge", "outranks", "signed_winner"]
