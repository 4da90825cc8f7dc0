"""A shard committee's replicated state machine, and what the committees service needs of it.

``ShardMachine``: the job ledger beside a small key-value store. Operations are tagged by their
first byte: ``J`` + a ledger operation (``protocol.messages.ledger``), ``K`` + a key-value
operation (``consensus.KeyValueMachine``: operators' notes, and the simplest request to watch a
committee commit). The snapshot is both states together.

``LedgerShards``: the committees service is generic over what its shard committees replicate;
this is the ledger's side of that contract (``daemon.committees.hooks.ShardApplication``): a
state-machine factory, the batcher for queued operations, and the tick hook that keeps each
shard's ledger clock moving (``LedgerClocks``, one clock per shard). Pure: time comes in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.committee import max_faulty
from consensus.statemachine import ClientRequest, KeyValueMachine
from daemon.ledger.records import JobState
from daemon.ledger.state import JobLedger
from consensus.sizes import MAX_OPERATION
from protocol.canonical import packb, unpackb
from protocol.compression import RAW, compress_parts, decompress
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.messages import ledger as ops

LEDGER = b"J"
KV = b"K"
PACKED = b"Z"
PACK_ABOVE = 1024
"""Ledger operations longer than this go compressed (``pack_operation``)."""
MAX_KV_KEYS = 10_000
LEDGER_TICK_ACTIVE_S = 2.0
"""How often members report their clock to a shard's ledger while it has open jobs..."""
LEDGER_TICK_IDLE_S = 3600.0
"""... while it holds only ended jobs, once per this many seconds per member of the
committee, so the whole committee orders one idle tick an hour whatever its size; and while
it holds no job at all, never. Every tick is a PBFT round that costs each member a message to
and from every other one, and over a committee mesh each frame arrives about once per mesh
link (``scripts/bench_mesh.py``: ~230 KB per write per member at 48 members, so ~1 MB at the
220 members of a 10,000-node network): at one tick per member every 30 s, idle ticks were
420 B/s of each member's traffic in a 4-member committee; at one round per 10 minutes they
were still ~1.7 KB/s per seat at 220 members, a third of a node's idle budget. Nothing needs
an idle shard's clock but the retention of ended jobs (``RETAIN_ENDED_MS``, a day: an hour
late is nothing), and a job submitted to an idle shard starts at the next fresh reading, not
at its stale clock (``JobLedger._anchor``), so a shard with no job has nothing to tick for."""
FIRST_IDLE_TICK_S = 300.0
"""An idle shard's first tick waits at least this long: past a network's forming (a 30-daemon
WAN testnet forms in 60-90 s), and nothing needs an idle clock sooner (``LEDGER_TICK_IDLE_S``)."""
MAX_QUEUED_TICKS = 8
"""A tick is skipped while the shard's request queue already holds this many operations."""


class ShardMachine:
    def __init__(self, members: list[bytes], f: int) -> None:
        self.ledger = JobLedger(members, f)
        self.kv = KeyValueMachine()

    def apply(self, request: ClientRequest) -> bytes:
        tag, body = request.operation[:1], request.operation[1:]
        if tag == PACKED:
            try:
                body = decompress(body, MAX_OPERATION)
            except RemoteProtocolError as err:
                return f"error: a compressed operation does not decompress: {err}".encode()
            if body[:1] != LEDGER:
                return b"error: a compressed operation holds no ledger operation"
            tag, body = LEDGER, body[1:]
        sub = ClientRequest(request.client, request.request_id, body, request.raw)
        if tag == LEDGER:
            return self.ledger.apply(sub)
        if tag == KV:
            if len(self.kv.data) >= MAX_KV_KEYS:
                return b"error: the key-value store is full"
            return self.kv.apply(sub)
        return b"error: unknown operation family"

    def snapshot(self) -> bytes:
        return packb([self.ledger.snapshot(), self.kv.snapshot()])

    def restore(self, snapshot: bytes) -> None:
        v = unpackb(snapshot, max_size=1 << 30)
        if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, bytes) for x in v):
            raise MalformedMessage("shard snapshot has the wrong shape")
        self.ledger.restore(v[0])
        self.kv.restore(v[1])


def ledger_operation(op: ops.Operation) -> bytes:
    """The request bytes of a ledger operation (what ``ShardMachine.apply`` routes)."""
    return LEDGER + ops.encode_op(op)


def pack_operation(operation: bytes) -> bytes:
    """The operation as it goes into a request: a ledger operation over ``PACK_ABOVE`` bytes
    compressed (``PACKED``), if that makes it smaller; anything else as it is.

    Why: a ``Place`` carries each task's explanation verbatim (the replicas store the
    proposer's, never floats of their own), 3 KB a task and 34 KB of a 41 KB operation on a
    30-daemon testnet, mostly the same keys and node ids again. Its proposer, usually the
    primary, sends it to every member (requests go to all members of a committee that orders
    by reference), and batch bodies and commit proofs carry it again: on the ``planet``
    profile a primary on a 1 Mbit/s uplink spent seconds per placement sending it and its
    backups suspected it. zstd takes it to a fraction of that (``scripts/bench_pack.py``), and
    every replica undoes it within the operation limit (``ShardMachine.apply``)."""
    if operation[:1] != LEDGER or len(operation) <= PACK_ABOVE:
        return operation
    method, body = compress_parts(operation, sample_check=False)
    if method == RAW or len(body) + 2 >= len(operation):
        return operation
    return PACKED + bytes((method,)) + bytes(body)


def ledger_batcher(operations: list[bytes]) -> tuple[bytes, Callable[[bytes], list[bytes]]] | None:
    """Combine queued ledger operations into one ``Batch`` (key-value ones are not batched)."""
    if len(operations) < 2 or not all(o[:1] == LEDGER for o in operations):
        return None
    batch = ops.Batch(tuple(o[1:] for o in operations))

    def split(result: bytes) -> list[bytes]:
        try:
            replies = unpackb(result)["replies"]
        except (RemoteProtocolError, KeyError, TypeError):
            return []
        return [packb(r) for r in replies]

    return ledger_operation(batch), split


@dataclass
class LedgerClocks:
    """When this member next reports its clock to each shard's ledger: a pure planner.

    Each shard keeps its own last-tick time, so an active shard never starves an idle one of
    ticks (one time for all shards did: shard 1 never ticked while shard 0 had open jobs).

    An idle shard's first tick waits ``FIRST_IDLE_TICK_S`` and then ``phase`` of the idle
    interval (each member its own fraction, ``member_phase``): the members' idle ticks fall
    evenly over the interval, one committee round per ``LEDGER_TICK_IDLE_S``. Every member
    ticked at once when it first saw the shard instead: a committee's members start together,
    so its idle ticks came in a burst of n rounds once per interval, the first of them while
    the network was forming. Those were the only work a new committee had: 19 requests from
    members still dialling each other, ordered on uplinks full of the soft state's first
    exchange, and when the first batch took longer than the genesis timeouts the committee
    left view 0 (1 of 3 forming runs of 30 daemons on ``planet``, and every WAN bench run of
    the sessions before). An active shard (open jobs, or a job waiting for a fresh clock)
    ticks at once, as before.
    """

    last: dict[int, float] = field(default_factory=dict)
    phase: float = 0.0
    """Fraction of the idle interval, in [0, 1), that an idle shard's first tick waits after
    ``FIRST_IDLE_TICK_S``."""
    first_idle: dict[int, float] = field(default_factory=dict)
    """When each shard, idle since we first saw it, gets its first tick."""

    def due(self, shard: int, active: bool, now: float, members: int = 1) -> bool:
        interval = LEDGER_TICK_ACTIVE_S if active else LEDGER_TICK_IDLE_S * members
        last = self.last.get(shard)
        if last is None and not active:
            first = self.first_idle.setdefault(
                shard, now + FIRST_IDLE_TICK_S + self.phase * interval)
            if now < first:
                return False
        elif last is not None and now - last < interval:
            return False
        self.last[shard] = now
        return True


def member_phase(public_key: bytes) -> float:
    """A member's fixed place in the idle tick interval, in [0, 1): spread by its key's hash."""
    return int.from_bytes(hashlib.sha256(b"novacron-ledger-tick" + public_key).digest()[:8],
                          "big") / 2.0 ** 64


class LedgerShards:
    """The job ledger as the committees service's shard application."""

    def __init__(self, phase: float = 0.0) -> None:
        """``phase``: this member's ``member_phase`` (``LedgerClocks``)."""
        self.clocks = LedgerClocks(phase=phase)

    def machine(self, committee: tuple[bytes, ...]) -> ShardMachine:
        return ShardMachine(list(committee), max_faulty(len(committee)))

    def batcher(self, operations: list[bytes]) -> tuple[bytes, Callable[[bytes], list[bytes]]] | None:
        return ledger_batcher(operations)

    def pack(self, operation: bytes) -> bytes:
        return pack_operation(operation)

    def tick(self, shard: int, machine: ShardMachine, now: float, wall_ms: int,
             queued: int) -> list[bytes]:
        """Operations to submit to ``shard`` now: a ``Tick`` when its clock report is due."""
        ledger = machine.ledger
        active = ledger.anchoring is not None or any(
            j.state == JobState.OPEN for j in ledger.jobs.values())
        if not active and not ledger.jobs:
            return []  # nothing to keep, nothing to time out: an empty shard orders nothing
        if not self.clocks.due(shard, active, now, len(ledger.members)) \
                or queued >= MAX_QUEUED_TICKS:
            return []
        return [ledger_operation(ops.Tick(wall_ms))]
