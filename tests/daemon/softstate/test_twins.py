"""Two daemons with one key, judged from signed records (``daemon.softstate.twins``): the later
one steps aside only on a record of the earlier one that names it; the earlier one keeps its
seat; a witness keeps what the registry drops and finds evidence anyone can check; nothing a
peer can forge or replay (a dead predecessor's record, a record signed by another key, junk
bytes) moves anyone."""

from __future__ import annotations

import random

import pytest

from crdt import CrdtReplica, LWWMap, ObjectSpec, Policy
from crdt.auth import DotSigner, DotVerifier
from daemon.capabilities import build_record, record_from_wire, record_to_wire
from daemon.softstate.twins import (
    MAX_REPLY_BYTES, SignedRecord, TwinBook, Verdict, decode_reply, decode_request,
    encode_reply, encode_request, find_evidence, judge,
)
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity

NET = "twins-test"
CAPS = "caps"
SCHEMA = {CAPS: ObjectSpec(LWWMap(), Policy.OWNER_KEYED)}
T0 = 1_750_000_000_000
ME = NodeIdentity(random.Random(1301).randbytes(32))
OTHER = NodeIdentity(random.Random(1302).randbytes(32))


def signed(who: NodeIdentity, *, instance: int, started: int, at: int, rivals=(),
           counter_floor: int = 0) -> SignedRecord:
    """A record as the daemon ``instance`` of ``who`` writes it into a real signed replica."""
    replica = CrdtReplica(who.node_id, SCHEMA, session=instance | 1,
                          signer=DotSigner(who, NET))
    if counter_floor:
        replica.reserve_own(CAPS, counter_floor)
    wire = record_to_wire(build_record(
        who.node_id, slots=1, memory_mib=512, runtimes=("wasm32-wasi",),
        listen=(f"/ip4/127.0.0.1/tcp/{4000 + instance % 1000}",), attestation=None,
        availability=None, load_permille=0, domain="", now_ms=at, generation=at,
        instance=instance, started_ms=started, rivals=tuple(rivals)))
    delta = replica.update(CAPS, lambda m, w: m.p_set(w, who.node_id, wire), at)
    (path, entry), = delta.entries()
    return SignedRecord.from_entry(path[0], entry, delta.sigs[(entry[0], entry[1])])


def test_the_earlier_keeps_its_seat_and_the_later_steps_aside_only_when_named():
    a = signed(ME, instance=11, started=T0, at=T0 + 5)
    b = signed(ME, instance=22, started=T0 + 60_000, at=T0 + 60_001)
    assert judge(ME.node_id, 11, T0, b.record) is Verdict.KEEP_SEAT
    # A record of the earlier daemon that does not name us may be our own dead predecessor's.
    assert judge(ME.node_id, 22, T0 + 60_000, a.record) is Verdict.NONE
    a2 = signed(ME, instance=11, started=T0, at=T0 + 61_000, rivals=(22,))
    assert judge(ME.node_id, 22, T0 + 60_000, a2.record) is Verdict.STEP_ASIDE
    assert judge(ME.node_id, 33, T0 + 90_000, a2.record) is Verdict.NONE  # names another
    # our own record, records from before instances, and other nodes' records are no twin
    assert judge(ME.node_id, 11, T0, a2.record) is Verdict.NONE
    assert judge(ME.node_id, 11, T0, signed(ME, instance=0, started=0, at=T0).record) \
        is Verdict.NONE
    assert judge(ME.node_id, 11, T0, signed(OTHER, instance=5, started=T0 + 9,
                                            at=T0 + 9).record) is Verdict.NONE


def test_same_start_time_is_settled_by_instance_the_same_way_on_both_sides():
    low = signed(ME, instance=100, started=T0, at=T0 + 1)
    high = signed(ME, instance=200, started=T0, at=T0 + 1)
    assert judge(ME.node_id, 100, T0, high.record) is Verdict.KEEP_SEAT
    assert judge(ME.node_id, 200, T0, low.record) is Verdict.NONE  # until low names it
    assert judge(ME.node_id, 200, T0, signed(ME, instance=100, started=T0, at=T0 + 2,
                                             rivals=(200,)).record) is Verdict.STEP_ASIDE


def test_signatures_are_checked_and_a_record_cannot_be_moved_to_another_key():
    v = DotVerifier(NET)
    a = signed(ME, instance=11, started=T0, at=T0 + 5)
    assert a.verify(v, CAPS)
    assert not a.verify(v, "other-object")
    assert not a.verify(DotVerifier("another-network"), CAPS)
    tampered = SignedRecord.from_wire(ME.node_id, [a.counter + 1, *a.to_wire()[1:]])
    assert not tampered.verify(v, CAPS)
    forged = signed(OTHER, instance=11, started=T0, at=T0 + 5)  # OTHER's key, ME's id?
    with pytest.raises(MalformedMessage):
        SignedRecord.from_wire(ME.node_id, forged.to_wire())  # the record names OTHER


def test_the_witness_keeps_dropped_records_answers_each_instance_with_the_other_and_finds_evidence():
    v = DotVerifier(NET)
    book = TwinBook()
    a = signed(ME, instance=11, started=T0, at=T0 + 5, counter_floor=40)  # the registry's
    b = signed(ME, instance=22, started=T0 + 60_000, at=T0 + 60_001)  # lower dot: dropped
    assert b.verify(v, CAPS)
    assert book.wants(b, a.record) and book.observe(b, a) is None  # a restart looks the same
    assert not book.wants(b, a.record)  # the same record again costs nothing
    assert [r.record.instance for r in book.others(ME.node_id, 11, a)] == [22]
    assert [r.record.instance for r in book.others(ME.node_id, 22, a)] == [11]
    a2 = signed(ME, instance=11, started=T0, at=T0 + 61_000, rivals=(22,), counter_floor=41)
    ev = book.observe(b, a2) or book.observe(a2, b)
    assert ev is not None and (ev.earlier.record.instance, ev.later.record.instance) == (11, 22)
    assert ev.earlier.verify(v, CAPS) and ev.later.verify(v, CAPS)
    assert book.evidence == 1
    assert book.observe(signed(ME, instance=22, started=T0 + 60_000, at=T0 + 70_000,
                               counter_floor=5), a2) is None  # counted once
    assert book.evidence == 1
    assert find_evidence([a, b]) is None and find_evidence([b, a2]) is not None


def test_the_book_is_bounded():
    book = TwinBook()
    ids = [NodeIdentity(random.Random(9000 + i).randbytes(32)) for i in range(3)]
    for i in range(6):
        book.observe(signed(ids[0], instance=10 + i, started=T0 + i, at=T0 + i), None)
    assert len(book.others(ids[0].node_id, 1, None)) == 3
    from daemon.softstate import twins
    old, twins.MAX_NODES = twins.MAX_NODES, 2
    try:
        for k in range(3):
            book.observe(signed(ids[k], instance=7, started=T0, at=T0), None)
        assert book.others(ids[0].node_id, 1, None) == []  # least recently changed went
    finally:
        twins.MAX_NODES = old


def test_wire_limits():
    a = signed(ME, instance=11, started=T0, at=T0 + 5)
    assert decode_request(ME.node_id, encode_request(11, None)) == (11, None)
    assert decode_request(ME.node_id, encode_request(11, a)) == (11, a)
    with pytest.raises(MalformedMessage):  # a record of another instance than the asker's
        decode_request(ME.node_id, encode_request(12, a))
    with pytest.raises(MalformedMessage):  # the asker's question carries someone else's record
        decode_request(OTHER.node_id, encode_request(11, a))
    for junk in (b"\x91\xa1x", b"\x90", b"\x92\x01\x02", b"\x00" * 100,
                 b"\xc4" + b"\x00" * 80_000):
        with pytest.raises(MalformedMessage):
            decode_request(ME.node_id, junk)
    back = decode_reply(ME.node_id, encode_reply([a, a, a, a, a]))
    assert len(back) == 3 and back[0] == a
    with pytest.raises(MalformedMessage):
        decode_reply(ME.node_id, b"\x00" * (MAX_REPLY_BYTES + 1))
    with pytest.raises(MalformedMessage):
        decode_reply(ME.node_id, encode_reply([a])[:-3])
    with pytest.raises(MalformedMessage):
        SignedRecord.from_wire(ME.node_id, [1, 2, 3, b"\xc1", b"x" * 64])


def test_records_from_before_instances_still_decode():
    wire = signed(ME, instance=4, started=T0, at=T0).record
    full = record_to_wire(wire)
    old = record_from_wire(full[:-3], expected_node=ME.node_id)
    assert (old.instance, old.started_ms, old.rivals) == (0, 0, ())
    assert record_from_wire(full).instance == 4
