"""The partial view: what a node dials, keeps, swaps and hangs up on (pure, seeded)."""

from __future__ import annotations

import random

import pytest

from daemon.p2p.overlay import Close, Overlay, OverlayPolicy, Unwant, Want
from protocol.identity import NodeId

SELF = NodeId("self")
SEED = NodeId("seed")


def nid(i: int) -> NodeId:
    return NodeId(f"n{i:03d}")


def addr(i: int) -> str:
    return f"/ip4/127.0.0.1/tcp/{10000 + i}"


def overlay(seed: int = 1, **kw: object) -> Overlay:
    policy = OverlayPolicy(**{"degree": 4, "max_connections": 10, "idle_close": 60.0,
                              "shuffle_every": 30.0, **kw})  # type: ignore[arg-type]
    return Overlay(SELF, policy, random.Random(seed), seeds={SEED: ("/ip4/127.0.0.1/tcp/1",)})


def no_failures(_: NodeId) -> int:
    return 0


def not_banned(_: NodeId) -> bool:
    return False


def wants(actions: list) -> set[NodeId]:
    return {a.node for a in actions if isinstance(a, Want)}


def test_a_node_that_knows_only_its_seed_wants_the_seed():
    ov = overlay()
    assert wants(ov.tick(0.0, no_failures, not_banned)) == {SEED}
    assert ov.view() == {SEED}


def test_learned_peers_fill_the_view_up_to_the_degree_and_no_further():
    ov = overlay()
    ov.tick(0.0, no_failures, not_banned)
    for i in range(50):
        ov.learn(nid(i), [addr(i)], 1.0)
    actions = ov.tick(1.0, no_failures, not_banned)
    assert len(wants(actions)) == 3  # seed + 3 = degree 4
    assert len(ov.view()) == 4
    assert wants(ov.tick(2.0, no_failures, not_banned)) == set()


def test_shuffles_move_the_seed_out_of_the_view_over_time():
    """Else every node would keep its seed forever and the seed would carry the network."""
    ov = overlay(seed=7)
    for i in range(50):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    still_there = []
    for t in range(1, 40):
        ov.tick(t * 30.0, no_failures, not_banned)
        still_there.append(SEED in ov.view())
    assert not all(still_there[-10:])
    assert ov.stats.shuffled >= 20


def test_a_view_peer_that_keeps_failing_is_replaced_by_another():
    ov = overlay(give_up_after=3)
    for i in range(10):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    dead = sorted(ov.view())[0]
    actions = ov.tick(1.0, lambda n: 3 if n == dead else 0, not_banned)
    assert Unwant(dead) in actions
    assert dead not in ov.view() and len(ov.view()) == 4


def test_when_every_known_peer_fails_the_view_is_kept_not_churned():
    """A loaded network fails every dial: swapping one failing peer for another only adds
    dials, so the view stays and the book's backoff paces the redials (shuffles aside)."""
    ov = overlay(give_up_after=3, shuffle_every=1e6)
    for i in range(30):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    view = ov.view()
    for t in range(1, 300):
        assert ov.tick(float(t), lambda n: 5, not_banned) == []
    assert ov.view() == view and ov.stats.replaced == 0


def test_failing_view_peers_are_replaced_one_per_interval():
    ov = overlay(give_up_after=3, replace_every=2.0)
    for i in range(30):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    dead = set(ov.view())
    failing = lambda n: 3 if n in dead else 0  # noqa: E731
    replaced_at = []
    for k in range(20):
        t = 1.0 + k * 0.5
        if any(isinstance(a, Unwant) for a in ov.tick(t, failing, not_banned)):
            replaced_at.append(t)
    assert replaced_at == [1.0, 3.0, 5.0, 7.0]  # all four, 2 s apart
    assert not ov.view() & dead and len(ov.view()) == 4


def test_a_banned_view_peer_goes_at_once_even_right_after_a_replacement():
    ov = overlay(give_up_after=3, replace_every=60.0)
    for i in range(30):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    first, second = sorted(ov.view())[:2]
    assert Unwant(first) in ov.tick(1.0, lambda n: 3 if n == first else 0, not_banned)
    assert Unwant(second) in ov.tick(1.5, no_failures, lambda n: n == second)


def test_a_failing_seed_is_kept_when_nobody_else_is_known():
    ov = overlay()
    ov.tick(0.0, no_failures, not_banned)
    assert ov.tick(1.0, lambda n: 10, not_banned) == []
    assert ov.view() == {SEED}


def test_idle_outbound_work_connections_close_but_view_kept_and_inbound_ones_stay():
    ov = overlay(shuffle_every=1e6)  # no shuffles here: a view peer swapped out becomes work
    for i in range(4):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    view = ov.view()
    work_out, work_kept, work_in = nid(10), nid(11), nid(12)
    for node in (*view, work_out, work_kept):
        ov.connected(node, 0.0, outbound=True)
    ov.connected(work_in, 0.0, outbound=False)
    ov.keep([work_kept])
    assert [a for a in ov.tick(59.0, no_failures, not_banned) if isinstance(a, Close)] == []
    ov.used(work_out, 30.0)
    assert [a for a in ov.tick(89.0, no_failures, not_banned) if isinstance(a, Close)] == []
    closes = [a for a in ov.tick(90.0, no_failures, not_banned) if isinstance(a, Close)]
    assert closes == [Close(work_out, "idle")]


def test_over_the_cap_the_least_recently_used_spare_connections_go():
    ov = overlay(max_connections=6)
    ov.tick(0.0, no_failures, not_banned)
    ov.connected(SEED, 0.0, outbound=True)
    for i in range(8):  # inbound: never idle-closed, but over the cap they go, oldest use first
        ov.connected(nid(i), 0.0, outbound=False)
        ov.used(nid(i), float(i))
    closes = [a.node for a in ov.tick(10.0, no_failures, not_banned) if isinstance(a, Close)]
    # The fill took up to 3 connected peers into the view; of the rest, the oldest-used go
    # until 6 connections remain.
    assert len(closes) == 9 - 6
    spare = sorted((i for i in range(8) if nid(i) not in ov.view()))
    assert closes == [nid(i) for i in spare[:3]]
    assert SEED not in closes


def test_at_an_epoch_change_the_last_committees_peers_go_to_keep_the_budget():
    """Kept and view peers count against the budget before they are connected (the new
    committees dial in right after the tick); past it, every peer that left the kept set
    goes, then the least recently used spare ones; kept and view peers never do."""
    ov = overlay(max_connections=48, budget=30, shuffle_every=1e6)
    for i in range(4):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    view = ov.view()
    old = [nid(100 + i) for i in range(12)]
    inbound = [nid(200 + i) for i in range(8)]
    for node in (*view, *old):
        ov.connected(node, 0.0, outbound=True)
    for k, node in enumerate(inbound):
        ov.connected(node, 0.0, outbound=False)
        ov.used(node, 1.0 + k)
    ov.keep(old)
    # 12 kept + 4 view + 8 inbound = 24: within the budget, nothing goes.
    assert [a for a in ov.tick(5.0, no_failures, not_banned) if isinstance(a, Close)] == []
    # The next epoch: 16 new committee peers, none connected yet. 16 + 4 + 12 old + 8 = 40.
    new = [nid(300 + i) for i in range(16)]
    ov.keep(new)
    closes = [a.node for a in ov.tick(6.0, no_failures, not_banned) if isinstance(a, Close)]
    assert sorted(closes) == sorted(old)  # all of the last epoch's, though 10 would do
    for node in closes:
        ov.disconnected(node)
    for node in new:
        ov.connected(node, 7.0, outbound=False)
    # 16 + 4 + 8 = 28: two more inbound peers fit the budget, a third does not.
    for k, node in enumerate(nid(400 + i) for i in range(3)):
        ov.connected(node, 8.0, outbound=False)
        ov.used(node, 8.0 + k)
    closes = [a.node for a in ov.tick(9.0, no_failures, not_banned) if isinstance(a, Close)]
    assert closes == inbound[:1]  # the least recently used spare one
    assert not set(closes) & (set(new) | view)
    ov.disconnected(inbound[0])
    # Kept and view peers alone past the budget: they stay, everything else goes.
    ov.keep([*new, *(nid(500 + i) for i in range(20))])
    closes = [a.node for a in ov.tick(10.0, no_failures, not_banned) if isinstance(a, Close)]
    assert sorted(closes) == sorted([*inbound[1:], *(nid(400 + i) for i in range(3))])


def test_known_peers_are_capped_and_seeds_never_evicted():
    ov = overlay(max_known=20, degree=2)
    for i in range(1000):
        ov.learn(nid(i), [addr(i)], 0.0)
    assert ov.known_count() == 20
    assert ov.addrs(SEED)


def test_undialable_and_own_addresses_are_not_learned():
    ov = overlay()
    assert not ov.learn(nid(1), ["/ip4/0.0.0.0/tcp/5"], 0.0)
    assert not ov.learn(SELF, [addr(1)], 0.0)
    assert ov.learn(nid(2), ["/ip4/0.0.0.0/tcp/5", addr(2)], 0.0)
    assert ov.addrs(nid(2)) == (addr(2),)


def test_the_policy_refuses_nonsense():
    with pytest.raises(ValueError):
        OverlayPolicy(degree=0)
    with pytest.raises(ValueError):
        OverlayPolicy(degree=10, max_connections=5)


def test_kept_peers_are_kept_connected_and_let_go_when_no_longer_kept():
    """A committee's members are kept connected like view peers (the book dials them and
    redials with backoff), not only dialled when a message is due: an idle committee's members
    were never connected and its health read stalled. One whose address is not known yet is
    wanted once it is learned; one no longer kept is let go (unless the view holds it)."""
    ov = overlay(degree=1)
    ov.tick(0.0, no_failures, not_banned)  # the view: the seed alone
    for i in range(3):
        ov.learn(nid(i), [addr(i)], now=0.0)
    ov.keep([nid(0), nid(1), nid(9), SEED])
    out = ov.tick(1.0, no_failures, not_banned)
    assert ov.view() == {SEED}
    assert wants(out) == {nid(0), nid(1)}  # nid(9): no address yet; the seed: in the view
    assert all(a.addrs == (addr(int(a.node[1:])),) for a in out if isinstance(a, Want))
    assert not wants(ov.tick(2.0, no_failures, not_banned)) & {nid(0), nid(1)}  # asked once
    ov.learn(nid(9), [addr(9)], now=2.0)
    assert nid(9) in wants(ov.tick(3.0, no_failures, not_banned))
    ov.keep([nid(1)])
    out = ov.tick(4.0, no_failures, not_banned)
    assert {a.node for a in out if isinstance(a, Unwant)} == {nid(0), nid(9)}
    with pytest.raises(ValueError):
        OverlayPolicy(degree=10, budget=5)
