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
SCHEMA = {"caps": ObjectSpec(LWWMap(), Policy.OWNER_KEYED)}


def replica(ident, session):
    return CrdtReplica(ident.node_id, SCHEMA, session=session, signer=DotSigner(ident, NET))


def put(r, value, now):
    r.update("caps", lambda m, w: m.p_set(w, r.node_id, value), now)


def test_a_write_dropped_as_seen_is_observed_and_reserve_own_makes_the_next_one_win():
    orig, peer = replica(ME, 1), replica(PEER, 2)
    peer.watch("caps")
    rs = {ME.node_id: orig, PEER.node_id: peer}
    now = pump(rs, T0, connect(rs, ME.node_id, PEER.node_id, T0))
    put(orig, {"who": "orig", "n": 1}, now)
    copy = CrdtReplica.restore(orig.snapshot(), SCHEMA, session=3, signer=DotSigner(ME, NET))
    put(orig, {"who": "orig", "n": 2}, now + 1)
    put(orig, {"who": "orig", "n": 3}, now + 2)
    now = pump(rs, now + 3)
    peer.take_observed()
    put(copy, {"who": "copy"}, now)  # a dot the peer has covered: the join drops it
    rs2 = {ME.node_id: copy, PEER.node_id: peer}
    now = pump(rs2, now, connect(rs2, ME.node_id, PEER.node_id, now))
    assert peer.get("caps").get(ME.node_id)["who"] == "orig"
    seen = [o for o in peer.take_observed() if o.entry[4] != orig.get("caps").get_raw(ME.node_id)]
    assert seen and not seen[0].verified and seen[0].sig is not None and seen[0].path == (ME.node_id,)
    # the copy raises its counter past what the original used: its write replaces everywhere
    copy.reserve_own("caps", 10)
    put(copy, {"who": "copy", "again": True}, now)
    now = pump(rs2, now + 1)
    assert peer.get("caps").get(ME.node_id)["who"] == "copy"
    assert peer.get("caps").ctx.intervals(ME.node_id) == [(1, 11)]  # one interval, no gap
    assert len(peer.get("caps").store[ME.node_id]) == 1  # the original's entry is covered


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
