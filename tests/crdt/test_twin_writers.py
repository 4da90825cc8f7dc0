"""Two replicas holding one key (a copied snapshot) behind a shared neighbour: what the
neighbour drops is still seen (``watch``), and ``reserve_own`` lets a write replace the
other's everywhere instead of being dropped as a dot already seen."""

from protocol.identity import NodeIdentity

from crdt import CrdtReplica, DotSigner, LWWMap, ObjectSpec, Policy
from crdt.replica import MAX_OBSERVED
from tests.crdt.harness import connect, pump

NET = "novacron-test"
T0 = 1_700_000_000_000
ME, PEER = NodeIdentity(bytes([7]) * 32), NodeIdentity(bytes([8]) * 32)
RELAY = NodeIdentity(bytes([9]) * 32)
SCHEMA = {"caps": ObjectSpec(LWWMap(), Policy.OWNER_KEYED)}


def replica(ident, session):
    return CrdtReplica(ident.node_id, SCHEMA, session=session, signer=DotSigner(ident, NET))


def put(r, value, now):
    r.update("caps", lambda m, w: m.p_set(w, r.node_id, value), now)


def test_a_write_dropped_as_seen_is_observed_and_reserve_own_makes_the_next_one_win():
    # orig and its copy each reach ``peer``; orig's writes go through ``relay``.
    orig, relay, peer = replica(ME, 1), replica(RELAY, 2), replica(PEER, 4)
    for r in (relay, peer):
        r.watch("caps")
    rs = {ME.node_id: orig, RELAY.node_id: relay, PEER.node_id: peer}
    now = pump(rs, T0, connect(rs, ME.node_id, RELAY.node_id, T0)
               + connect(rs, RELAY.node_id, PEER.node_id, T0))
    put(orig, {"who": "orig", "n": 1}, now)
    copy = CrdtReplica.restore(orig.snapshot(), SCHEMA, session=3, signer=DotSigner(ME, NET))
    put(orig, {"who": "orig", "n": 2}, now + 1)
    now = pump(rs, now + 2)
    # the copy raises its counter past what the original used: its write replaces everywhere
    copy.reserve_own("caps", 10)
    put(copy, {"who": "copy"}, now)
    rs2 = {ME.node_id: copy, PEER.node_id: peer}
    now = pump(rs2, now, connect(rs2, ME.node_id, PEER.node_id, now))
    peer.on_disconnect(ME.node_id)
    assert peer.get("caps").get(ME.node_id)["who"] == "copy"
    assert peer.get("caps").ctx.intervals(ME.node_id) == [(1, 11)]  # one interval, no gap
    assert len(peer.get("caps").store[ME.node_id]) == 1  # the original's entry is covered
    for r in (relay, peer):
        r.take_observed()
    put(orig, {"who": "orig", "n": 3}, now)  # a dot the copy's write covers: the join drops it
    now = pump(rs, now + 1)
    assert relay.get("caps").get(ME.node_id)["who"] == "copy"
    theirs = copy.get("caps").get_raw(ME.node_id)
    # whichever of relay and peer met orig's write after the copy's dropped it, and kept it
    dropped = [o for r in (relay, peer) for o in r.take_observed()
               if o.entry[4] != theirs and not o.verified]
    assert dropped and dropped[0].sig is not None and dropped[0].path == (ME.node_id,)


def test_observed_entries_are_bounded():
    peer, other = replica(PEER, 2), replica(ME, 1)
    peer.watch("caps")
    rs = {ME.node_id: other, PEER.node_id: peer}
    now = pump(rs, T0, connect(rs, ME.node_id, PEER.node_id, T0))
    n = MAX_OBSERVED // 2 + 5
    for i in range(n):
        put(other, i, now + i)
        now = pump(rs, now + i)
    assert len(peer.take_observed()) == MAX_OBSERVED
    assert peer.stats.observed_dropped == 2 * n - 1 - MAX_OBSERVED  # each write, each replaced
    assert peer.take_observed() == []


def test_an_interval_dropped_as_a_gap_still_shows_the_watch_its_entries():
    """The original and its copy reach a neighbour under one peer id, so it keeps one stream
    state for both: once the copy's interval is applied, the original's next one looks like a
    gap and is dropped. Its entries must still reach the watch (the twin guard), or the copy
    is never shown the original's record naming it."""
    orig, peer = replica(ME, 1), replica(PEER, 2)
    peer.watch("caps")
    rs = {ME.node_id: orig, PEER.node_id: peer}
    now = pump(rs, T0, connect(rs, ME.node_id, PEER.node_id, T0))
    put(orig, {"who": "orig", "n": 1}, now)
    now = pump(rs, now + 1)
    copy = CrdtReplica.restore(orig.snapshot(), SCHEMA, session=3, signer=DotSigner(ME, NET))
    copy.reserve_own("caps", 10)
    put(copy, {"who": "copy"}, now)
    rs2 = {ME.node_id: copy, PEER.node_id: peer}
    now = pump(rs2, now, connect(rs2, ME.node_id, PEER.node_id, now))
    assert peer.get("caps").get(ME.node_id)["who"] == "copy"
    peer.take_observed()
    put(orig, {"who": "orig", "n": 2, "rivals": "copy"}, now)
    gaps = peer.stats.gaps
    for dst, msg in orig.tick(now + 1000):
        if dst == PEER.node_id:
            peer.on_message(ME.node_id, msg, now + 1000)
    assert peer.stats.gaps == gaps + 1  # dropped: the stream state is the copy's
    seen = [o for o in peer.take_observed() if not o.verified]
    assert [o.path for o in seen] == [(ME.node_id,)] and seen[0].sig is not None
    assert seen[0].origin == ME.node_id
