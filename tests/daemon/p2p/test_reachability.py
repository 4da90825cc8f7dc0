"""The pure reachability planner: what AutoNAT verdicts to believe, which relays to hold."""

import random

from daemon.p2p.reachability import (
    AskAutoNat,
    Reachability,
    Reserve,
    Traversal,
    TraversalPolicy,
    Unreserve,
)

PEERS = [f"peer{i}" for i in range(8)]


def asks(actions):
    return [a.peer for a in actions if isinstance(a, AskAutoNat)]


def reserves(actions):
    return [a.relay for a in actions if isinstance(a, Reserve)]


def test_one_peer_saying_we_are_dialable_does_not_make_us_public():
    t = Traversal("me")
    t.verdict("peer0", True, 1.0)
    assert t.state is Reachability.UNKNOWN
    t.verdict("peer1", False, 1.0)
    t.verdict("peer2", False, 1.0)
    assert t.state is Reachability.UNKNOWN  # 2 failures: not yet 3
    t.verdict("peer3", False, 1.0)
    assert t.state is Reachability.PRIVATE
    # The same liar again counts once.
    for _ in range(5):
        t.verdict("peer0", True, 2.0)
    assert t.state is Reachability.PRIVATE


def test_asks_a_few_fresh_peers_each_round_and_slows_down_once_known():
    t = Traversal("me", TraversalPolicy(asks_per_round=3))
    rng = random.Random(1)
    first = asks(t.tick(0.0, PEERS, [], rng))
    assert len(first) == 3 and len(set(first)) == 3
    assert asks(t.tick(5.0, PEERS, [], rng)) == []  # next round at ask_every_unknown
    second = asks(t.tick(10.0, PEERS, [], rng))
    assert len(second) == 3 and not set(second) & set(first)  # pending ones are not re-asked
    for p in first + second:
        t.verdict(p, False, 11.0)
    assert t.state is Reachability.PRIVATE
    assert asks(t.tick(20.0, PEERS, [], rng)) == []
    assert asks(t.tick(11.0 + TraversalPolicy().ask_every_known, PEERS, [], rng)) != []


def test_private_node_holds_two_relays_renews_them_and_replaces_a_refusal():
    t = Traversal("me", TraversalPolicy(relays_wanted=2))
    rng = random.Random(2)
    for p in PEERS[:3]:
        t.verdict(p, False, 0.0)
    acts = t.tick(1.0, [], PEERS[:4], rng)
    wanted = reserves(acts)
    assert len(wanted) == 2
    assert reserves(t.tick(2.0, [], PEERS[:4], rng)) == []  # in flight
    t.reserved(wanted[0], True, 3.0, ttl=100.0, addrs=[f"/ip4/127.0.0.1/tcp/1/p2p/{wanted[0]}/p2p-circuit"])
    t.reserved(wanted[1], False, 3.0, detail="relay refused (status 201)")
    assert "failed (relay refused (status 201))" in t.last_tried
    again = reserves(t.tick(4.0, [], PEERS[:4], rng))
    assert len(again) == 1 and again[0] not in wanted  # the refusing relay is backed off
    t.reserved(again[0], True, 5.0, ttl=100.0, addrs=["/x/p2p-circuit"])
    assert len(t.relays()) == 2
    assert t.status_line().startswith("behind NAT, reached through relay ")
    # Renewed once three quarters of the lifetime are gone, not before.
    assert reserves(t.tick(70.0, [], PEERS[:4], rng)) == []
    assert sorted(reserves(t.tick(80.0, [], PEERS[:4], rng))) == sorted(t.relays())


def test_a_lost_relay_is_replaced_and_a_public_node_gives_its_relays_up():
    t = Traversal("me", TraversalPolicy(relays_wanted=1))
    rng = random.Random(3)
    for p in PEERS[:3]:
        t.verdict(p, False, 0.0)
    (r,) = reserves(t.tick(1.0, [], ["peer5"], rng))
    t.reserved(r, True, 2.0, ttl=600.0, addrs=["/a/p2p-circuit"])
    t.relay_lost(r)
    assert t.relays() == [] and "lost relay" in t.last_tried
    (r2,) = reserves(t.tick(3.0, [], ["peer5"], rng))
    t.reserved(r2, True, 4.0, ttl=600.0, addrs=["/a/p2p-circuit"])
    # Verdicts expire; new ones say we are dialable now (the user forwarded a port).
    later = 4.0 + TraversalPolicy().verdict_ttl + 1
    for p in PEERS[3:7]:
        t.verdict(p, True, later)
    assert t.state is Reachability.PUBLIC
    acts = t.tick(later, PEERS, PEERS, rng)
    assert [a.relay for a in acts if isinstance(a, Unreserve)] == [r2]
    assert t.relayed_addrs() == [] and t.status_line().startswith("public (dialled back by 4")


def test_hole_punch_outcomes_show_in_status_and_stay_bounded():
    t = Traversal("me")
    for p in PEERS[:3]:
        t.verdict(p, False, 0.0)
    t.hole_punch("peer7", True)
    assert "direct after hole punching to 1 peer(s)" in t.status_line()
    t.hole_punch("peer6", False)
    assert t.last_tried == "hole punch to peer6: failed, staying relayed"
    for i in range(300):
        t.hole_punch(f"x{i}", True)
    assert len(t.punched) <= 256


def test_a_peer_that_gave_no_verdict_is_asked_again_next_round():
    t = Traversal("me", TraversalPolicy(asks_per_round=3))
    rng = random.Random(4)
    first = asks(t.tick(0.0, PEERS[:3], [], rng))
    assert sorted(first) == PEERS[:3]
    t.verdict(first[0], None, 1.0, "TooSlowError")
    t.verdict(first[1], False, 1.0)
    t.verdict(first[2], False, 1.0)
    assert asks(t.tick(10.0, PEERS[:3], [], rng)) == [first[0]]
    t.verdict(first[0], False, 11.0)
    assert t.state is Reachability.PRIVATE
