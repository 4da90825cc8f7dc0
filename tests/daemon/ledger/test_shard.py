"""The ledger as the committees' shard application: per-shard clock ticks, batching, wire form."""

from __future__ import annotations

import random

from consensus.sizes import MAX_OPERATION
from consensus.statemachine import ClientRequest
from daemon.ledger.shard import (FIRST_IDLE_TICK_S, KV, LEDGER, LEDGER_TICK_ACTIVE_S,
                                 LEDGER_TICK_IDLE_S, MAX_QUEUED_TICKS, PACKED, LedgerClocks,
                                 LedgerShards, ledger_batcher, ledger_operation, member_phase,
                                 pack_operation)
from protocol.canonical import packb, unpackb
from protocol.compression import compress
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.schema import REGISTRY
from tests.daemon.ledger.ledger_helpers import MEMBERS, SUBMITTER, Harness


def _ticks(ops_bytes: list[bytes]) -> list[int]:
    return [ops.decode_op(o[1:]).now_ms for o in ops_bytes]  # type: ignore[union-attr]


def test_each_shard_keeps_its_own_clock() -> None:
    """The bug this replaced: one last-tick time for all shards, so shard 1 never ticked
    while shard 0 had open jobs (shard 0 took every tick)."""
    clocks = LedgerClocks()
    due = []
    horizon = int(2 * 4 * LEDGER_TICK_IDLE_S) + 1
    for step in range(horizon):  # at one tick a second
        now = float(step)
        due += [(shard, now) for shard, active in ((0, True), (1, False))
                if clocks.due(shard, active, now, members=4)]
    shard0 = [t for s, t in due if s == 0]
    shard1 = [t for s, t in due if s == 1]
    assert shard0 == [float(t) for t in range(0, horizon, int(LEDGER_TICK_ACTIVE_S))]
    assert shard1 == [FIRST_IDLE_TICK_S, FIRST_IDLE_TICK_S + 4 * LEDGER_TICK_IDLE_S]


def test_an_idle_committee_orders_one_tick_per_idle_period_whatever_its_size() -> None:
    """Each idle tick is a PBFT round costing every member a message to and from every other:
    the committee's idle rounds must not grow with its size (each member's share shrinks)."""
    for members in (1, 4, 19, 220):
        horizon = 10 * members * int(LEDGER_TICK_IDLE_S)
        clocks = LedgerClocks()
        ticks = sum(clocks.due(0, False, float(t), members) for t in range(0, horizon, 5))
        per_member_period = horizon / ticks
        assert abs(per_member_period / members - LEDGER_TICK_IDLE_S) <= LEDGER_TICK_IDLE_S / 2


def test_a_new_idle_committee_has_no_ticks_to_order_and_its_members_ticks_spread_out() -> None:
    """Every member ticked when it first saw the shard: a forming committee's only work was a
    burst of n ticks (its first batch, ordered while members still dialled each other), and
    the burst came again every idle interval. Each member's first idle tick now waits
    ``FIRST_IDLE_TICK_S`` and its own phase of the interval: nothing while the network forms,
    then one round at a time."""
    members = [NodeIdentity(bytes([k]) * 32).public_key for k in range(19)]
    interval = 19 * LEDGER_TICK_IDLE_S
    clocks = [LedgerClocks(phase=member_phase(pk)) for pk in members]
    ticks = sorted(t - FIRST_IDLE_TICK_S for c in clocks
                   for t in range(0, int(2 * interval + FIRST_IDLE_TICK_S), 5)
                   if c.due(0, False, float(t), 19))
    assert ticks[0] >= 0  # none before FIRST_IDLE_TICK_S: past a network's forming
    first_round = [t for t in ticks if t < interval]
    assert len(first_round) == 19 and len(ticks) == 38  # one each per interval, as before
    gaps = [b - a for a, b in zip(first_round, first_round[1:])]
    assert max(gaps) < interval / 3 and sum(g < 5 for g in gaps) <= 1  # spread, not a burst
    assert all(0.0 <= member_phase(pk) < 1.0 for pk in members)
    active = LedgerClocks(phase=0.9)
    assert active.due(0, True, 10.0, 19)  # a job waiting for a fresh clock: at once
    idle_then_busy = LedgerClocks(phase=0.9)
    assert not idle_then_busy.due(1, False, 10.0, 19)
    assert idle_then_busy.due(1, True, 11.0, 19)  # a job came: its clock ticks at once


def test_the_tick_hook_ticks_an_active_ledger_often_and_skips_a_full_queue() -> None:
    h = Harness()
    app = LedgerShards()
    machine = app.machine(tuple(m.public_key for m in MEMBERS))
    machine.ledger = h.ledger
    assert app.tick(0, machine, 100.0, 5_000, queued=0) == []  # idle: rarely
    h.submit()
    assert _ticks(app.tick(0, machine, 102.0, 7_000, queued=0)) == [7_000]  # open job: every 2 s
    assert app.tick(0, machine, 104.0, 9_000, queued=MAX_QUEUED_TICKS) == []
    assert _ticks(app.tick(1, machine, 104.0, 9_000, queued=0)) == [9_000]  # its own clock


def test_an_empty_shard_orders_nothing_and_one_keeping_ended_jobs_ticks_once_an_hour() -> None:
    """Nothing needs an idle shard's clock but the retention of ended jobs: a shard with no job
    orders no tick at all (at one round per 10 minutes a 220-member committee's idle ticks cost
    each member about 1.7 KB/s over its mesh), and one keeping ended jobs one round an hour."""
    h = Harness()
    app = LedgerShards(phase=0.5)
    machine = app.machine(tuple(m.public_key for m in MEMBERS))
    machine.ledger = h.ledger
    day = 24 * 3600
    assert [t for t in range(0, day, 60) if app.tick(0, machine, float(t), t * 1000, 0)] == []
    job = h.submit()
    assert _ticks(app.tick(0, machine, float(day), day * 1000, 0)) == [day * 1000]  # open: at once
    assert h.call(SUBMITTER, ops.Cancel(job))["state"] == "cancelled"
    ticks = [t for t in range(day + 60, 2 * day, 60) if app.tick(0, machine, float(t), t * 1000, 0)]
    interval = len(MEMBERS) * LEDGER_TICK_IDLE_S  # this member's: the committee's is an hour
    assert LEDGER_TICK_IDLE_S == 3600.0 and ticks[0] - day <= interval
    assert len(ticks) >= day // interval - 1
    assert all(b - a >= interval for a, b in zip(ticks, ticks[1:]))


def test_the_factory_makes_a_ledger_for_the_committee_with_its_f() -> None:
    machine = LedgerShards().machine(tuple(m.public_key for m in MEMBERS))
    assert machine.ledger.f == 1 and len(machine.ledger.members) == 4


def test_queued_ledger_operations_batch_and_replies_split() -> None:
    a, b = ledger_operation(ops.Cancel(b"a" * 32)), ledger_operation(ops.Cancel(b"b" * 32))
    assert ledger_batcher([a]) is None and ledger_batcher([a, b"K" + packb(["get", "x"])]) is None
    batched = ledger_batcher([a, b])
    assert batched is not None
    request, split = batched
    assert request[:1] == LEDGER and isinstance(ops.decode_op(request[1:]), ops.Batch)
    machine = LedgerShards().machine(tuple(m.public_key for m in MEMBERS))
    reply = machine.apply(ClientRequest(SUBMITTER.public_key, 1, request, b""))
    assert [unpackb(r) for r in split(reply)] == [{"error": "no job 6161616161616161"},
                                                  {"error": "no job 6262626262626262"}]


def test_operations_are_registered_messages_with_their_old_wire_tags() -> None:
    assert {c.TYPE for c in ops.TAGS.values()} <= set(REGISTRY.names())
    assert REGISTRY.lookup("ledger.tick", 1) is ops.Tick
    # The bytes a ledger stored before the operations joined the registry: [tag, body].
    assert ops.encode_op(ops.Tick(1234)) == packb([3, [1234]])
    assert ops.decode_op(packb([2, [b"j" * 32]])) == ops.Cancel(b"j" * 32)


def _apply(h: Harness, operation: bytes) -> bytes:
    machine = LedgerShards().machine(tuple(m.public_key for m in MEMBERS))
    machine.ledger = h.ledger
    return machine.apply(ClientRequest(MEMBERS[0].public_key, 10_000, operation, b""))


def test_a_large_ledger_operation_goes_compressed_and_does_what_it_did_uncompressed() -> None:
    """A ``Place`` carries every task's explanation verbatim: it is the big request of a job,
    and its proposer sends it to every member of the committee."""
    plain, packed = Harness(), Harness()
    job = plain.submit(n_tasks=11)
    assert packed.submit(n_tasks=11) == job
    raw = ledger_operation(plain.proposal(job, plain.candidates()))
    wire = pack_operation(raw)
    assert wire[:1] == PACKED and len(wire) < len(raw) / 2
    assert LedgerShards().pack(raw) == wire
    reply = _apply(plain, raw)
    assert unpackb(reply)["placed"] and _apply(packed, wire) == reply
    assert packed.ledger.snapshot() == plain.ledger.snapshot()


def test_small_incompressible_and_other_operations_go_as_they_are() -> None:
    tick = ledger_operation(ops.Tick(5))
    noise = LEDGER + random.Random(1).randbytes(4000)
    kv = KV + packb(["put", "k", "v" * 4000])
    assert [pack_operation(o) for o in (tick, noise, kv)] == [tick, noise, kv]


def test_a_compressed_operation_is_bounded_and_must_hold_a_ledger_operation() -> None:
    """A client's bytes: an error reply, never an exception or an unbounded buffer."""
    h = Harness()
    bomb = PACKED + compress(LEDGER + bytes(MAX_OPERATION), sample_check=False)
    assert len(bomb) < 100
    assert _apply(h, bomb).startswith(b"error: a compressed operation does not decompress")
    assert _apply(h, PACKED + b"\x01garbage").startswith(b"error: a compressed operation")
    other = PACKED + compress(KV + packb(["put", "k", "v" * 2000]), sample_check=False)
    assert _apply(h, other) == b"error: a compressed operation holds no ledger operation"
