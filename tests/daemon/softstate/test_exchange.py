"""Peer exchange frames: signed records of other peers, bounded, checked before use."""

from __future__ import annotations

import random

import pytest

from crdt.auth import DotVerifier
from daemon.softstate import exchange
from daemon.softstate.twins import SignedRecord
from protocol.canonical import packb
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity
from tests.daemon.softstate.test_twins import CAPS, NET, T0, signed

PEERS = [NodeIdentity(random.Random(4400 + i).randbytes(32)) for i in range(20)]
SENDER, ME = PEERS[18], PEERS[19]


def records(n: int) -> list[SignedRecord]:
    return [signed(p, instance=100 + i, started=T0, at=T0 + i) for i, p in enumerate(PEERS[:n])]


def test_an_exchange_carries_each_peers_signed_record_and_its_addresses_come_out():
    frame = exchange.encode(records(5))
    good, bad = exchange.verified(exchange.decode(frame), DotVerifier(NET), CAPS,
                                  SENDER.node_id, ME.node_id)
    assert bad == 0
    assert [n for n, _ in good] == [p.node_id for p in PEERS[:5]]
    assert good[0][1] == ("/ip4/127.0.0.1/tcp/4100",)


def test_records_not_signed_by_their_node_or_naming_sender_or_receiver_are_refused():
    rs = records(3)
    tampered = SignedRecord.from_wire(rs[1].node, [rs[1].counter + 1, *rs[1].to_wire()[1:]])
    mine = signed(ME, instance=7, started=T0, at=T0)
    theirs = signed(SENDER, instance=8, started=T0, at=T0)
    frame = exchange.encode([rs[0], tampered, mine, theirs, rs[2], rs[2]])
    good, bad = exchange.verified(exchange.decode(frame), DotVerifier(NET), CAPS,
                                  SENDER.node_id, ME.node_id)
    assert [n for n, _ in good] == [rs[0].node, rs[2].node]
    assert bad == 4  # the tampered one, ours, the sender's own, a repeat
    # Another network's signatures are no good here.
    assert exchange.verified(exchange.decode(exchange.encode(rs)), DotVerifier("elsewhere"),
                             CAPS, SENDER.node_id, ME.node_id) == ([], 3)


def test_an_exchange_is_bounded_both_ways():
    assert len(exchange.decode(exchange.encode(records(20)))) == exchange.MAX_PEERS
    big = records(1)[0]
    over = packb([[big.node, big.to_wire()]] * (exchange.MAX_PEERS + 1), maps=False)
    with pytest.raises(MalformedMessage):
        exchange.decode(over)
    with pytest.raises(MalformedMessage):
        exchange.decode(b"\x00" * (exchange.MAX_BYTES + 1))
    for bad in (packb({"a": 1}), packb([["x"]], maps=False), packb([[1, big.to_wire()]], maps=False),
                packb([[big.node, [1, 2]]], maps=False)):
        with pytest.raises(MalformedMessage):
            exchange.decode(bad)
    assert exchange.decode(exchange.encode([])) == []
