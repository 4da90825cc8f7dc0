"""Peers on other versions of our protocols: named from identify, said in status."""

import random

from daemon.p2p.compat import Mismatch, compare, families, health_line
from daemon.p2p.service import P2PService
from tests.daemon.p2p.conftest import config, identity, make_host, running, wait_until

OURS = ["/novacron/crdt/2", "/novacron/pbft/1", "/ipfs/id/1.0.0"]


def test_families_keep_only_ours_grouped_by_name():
    assert families(OURS + ["/novacron/bad", "/meshsub/1.1.0"]) == {
        "crdt": {"2"}, "pbft": {"1"}}


def test_a_shared_version_of_every_common_protocol_is_compatible():
    assert compare(OURS, ["/novacron/crdt/1", "/novacron/crdt/2", "/novacron/pbft/1"]) is None
    # A protocol only one side serves is a feature of its release, not a conflict.
    assert compare(OURS, ["/novacron/pbft/1", "/novacron/twin/1"]) is None
    # Not identified yet, or not one of us: nothing to say.
    assert compare(OURS, []) is None and compare(OURS, ["/ipfs/id/1.0.0"]) is None


def test_no_common_version_is_named_with_both_sides():
    m = compare(OURS, ["/novacron/crdt/1", "/novacron/pbft/1"])
    assert m == Mismatch((("crdt", "2", "1"),))
    assert m.describe() == "/novacron/crdt/1 where this node speaks /2"
    line = health_line({"peerB": m, "peerA": m}, connected=5)
    assert line.startswith("2 of 5 connected peers speak other versions of our protocols"
                           " (/novacron/crdt/1 where this node speaks /2)")
    assert health_line({}, connected=5) is None


def test_many_mismatches_are_counted_past_the_first_three():
    ours = [f"/novacron/p{i}/2" for i in range(5)]
    theirs = [f"/novacron/p{i}/1" for i in range(5)]
    assert compare(ours, theirs).describe().endswith("(and 2 more)")


async def test_status_names_a_connected_peer_of_another_release():
    new, old = make_host("new"), make_host("old")
    for proto in ("/novacron/test/2", "/novacron/same/1"):
        new.handle(proto, lambda peer, frame: None)
    for proto in ("/novacron/test/1", "/novacron/same/1"):
        old.handle(proto, lambda peer, frame: None)
    service = P2PService(identity("new"), config(), random.Random(0))
    service.host = new
    async with running(new, old):
        new.add_peer(old.listen_addrs()[0])
        # identify runs on every new connection; its answer fills the peerstore
        await wait_until(lambda: bool(new.incompatible_peers()), timeout=20)
        assert new.incompatible_peers()[old.node_id].describe() == (
            "/novacron/test/1 where this node speaks /2")
        st = service.status()
        assert st["health"].startswith("1 of 1 connected peers speak other versions")
        assert st["incompatible"] == {old.node_id: "/novacron/test/1 where this node speaks /2"}
