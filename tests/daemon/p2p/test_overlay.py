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
    # Others can fill the view: the seed gives way in the same tick, not at a later one.
    assert Unwant(SEED) in actions
    assert len(wants(actions)) == 4 and SEED not in ov.view()
    assert len(ov.view()) == 4
    assert ov.tick(2.0, no_failures, not_banned) == []


def test_a_seed_stays_in_the_view_while_the_others_cannot_fill_it():
    """A small network: two peers besides the seed, a view of four. The seed is a peer like
    any then; swapping it out would leave the view short (and it would come back next tick)."""
    ov = overlay()
    ov.tick(0.0, no_failures, not_banned)
    for i in range(2):
        ov.learn(nid(i), [addr(i)], 1.0)
    assert wants(ov.tick(1.0, no_failures, not_banned)) == {nid(0), nid(1)}
    assert ov.view() == {SEED, nid(0), nid(1)}
    assert ov.tick(2.0, no_failures, not_banned) == []
    # Two more make it possible: the view is filled without the seed, which then goes.
    for i in range(2, 4):
        ov.learn(nid(i), [addr(i)], 3.0)
    out = ov.tick(3.0, no_failures, not_banned)
    assert Unwant(SEED) in out and ov.view() == {nid(i) for i in range(4)}
    assert ov.tick(4.0, no_failures, not_banned) == []


def test_shuffles_keep_the_view_mixing_and_never_bring_the_seed_back():
    """The seed leaves at once; shuffles swap view peers among the others and never pick the
    seed while others can fill the view (else each shuffle would hand it connections)."""
    ov = overlay(seed=7)
    for i in range(50):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    first = ov.view()
    assert SEED not in first
    for t in range(1, 40):
        ov.tick(t * 30.0, no_failures, not_banned)
        assert SEED not in ov.view()
    assert ov.stats.shuffled >= 20
    assert ov.view() != first


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
    closes = []
    for i in range(8):  # inbound: never idle-closed, but over the cap they go, oldest use first
        closes += ov.connected(nid(i), float(i), outbound=False)
        for c in closes:
            ov.disconnected(c.node)
    # Each arrival past 6 connections closed the oldest-used spare one, with a peer exchange
    # (it dialled us); the seed, in the view, stays.
    assert closes == [Close(nid(i), "over the connection cap", exchange=True) for i in range(3)]
    assert [a for a in ov.tick(10.0, no_failures, not_banned) if isinstance(a, Close)] == []
    assert ov.summary()["connections"] == 6


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
    arrivals = []
    for k, node in enumerate(nid(400 + i) for i in range(3)):
        arrivals += ov.connected(node, 8.0 + k, outbound=False)
    # The least recently used spare one goes as the third arrives, not at the next tick.
    assert arrivals == [Close(inbound[0], "over the connection cap", exchange=True)]
    assert [a for a in ov.tick(9.0, no_failures, not_banned) if isinstance(a, Close)] == []
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
    (view,) = ov.view()  # the seed gave way to one of the three learned
    assert view != SEED
    # nid(9): no address yet; the seed, now out of the view, is kept connected as kept.
    assert wants(out) == {nid(0), nid(1), SEED} | {view}
    assert all(a.addrs == (addr(int(a.node[1:])),) for a in out
               if isinstance(a, Want) and a.node != SEED)
    assert not wants(ov.tick(2.0, no_failures, not_banned)) & {nid(0), nid(1)}  # asked once
    ov.learn(nid(9), [addr(9)], now=2.0)
    assert nid(9) in wants(ov.tick(3.0, no_failures, not_banned))
    ov.keep([nid(1)])
    out = ov.tick(4.0, no_failures, not_banned)
    assert {a.node for a in out if isinstance(a, Unwant)} == {nid(0), nid(9), SEED} - {view}
    with pytest.raises(ValueError):
        OverlayPolicy(degree=10, budget=5)


def test_the_budget_is_kept_as_each_connection_arrives_not_at_the_next_tick():
    """A peer that chose us between two ticks took a node of 10,000 simulated ones to 65: the
    closes come back from ``connected`` itself. Inbound spares are closed with a peer exchange
    (they dialled us: they learn where else to go); the newest connection is the last to go."""
    ov = overlay(max_connections=48, budget=8, shuffle_every=1e6)
    ov.tick(0.0, no_failures, not_banned)  # the view: the seed (the only peer known)
    assert ov.connected(SEED, 0.0, outbound=True) == []
    for i in range(7):  # 1 + 7 = the budget
        assert ov.connected(nid(i), 1.0 + i, outbound=i % 2 == 0) == []
    closes = ov.connected(nid(7), 9.0, outbound=False)
    assert closes == [Close(nid(0), "over the connection cap", exchange=False)]
    ov.disconnected(nid(0))
    closes = ov.connected(nid(8), 10.0, outbound=False)
    assert closes == [Close(nid(1), "over the connection cap", exchange=True)]
    # A connection already counted (a second one to the same peer) changes nothing.
    assert ov.connected(nid(8), 11.0, outbound=True) == []


def test_a_peer_that_said_it_is_full_leaves_the_view_and_is_not_picked_again_for_a_while():
    ov = overlay(full_for=300.0, shuffle_every=1e6)
    for i in range(6):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    full = sorted(ov.view())[0]
    ov.full(full, 10.0)
    out = ov.tick(11.0, no_failures, not_banned)
    assert Unwant(full) in out and full not in ov.view() and len(ov.view()) == 4
    assert ov.summary()["full_peers"] == 1
    # Never back within full_for, even as the view churns through every other peer ...
    for t in range(12, 300):
        ov.full(sorted(ov.view())[0], float(t)) if t % 50 == 0 else None
        ov.tick(float(t), no_failures, not_banned)
        assert full not in ov.view()
    # ... and not in what we hand out to others meanwhile.
    assert full not in ov.exchange_sample(nid(99), 50)


def test_a_peer_exchange_is_a_uniform_sample_of_the_others_not_our_view():
    ov = overlay()
    for i in range(40):
        ov.learn(nid(i), [addr(i)], 0.0)
    ov.tick(0.0, no_failures, not_banned)
    picks: dict[NodeId, int] = {}
    for _ in range(400):
        sample = ov.exchange_sample(nid(3), 8)
        assert len(sample) == len(set(sample)) == 8
        assert nid(3) not in sample and SEED not in sample
        for n in sample:
            picks[n] = picks.get(n, 0) + 1
    assert len(picks) == 39  # everyone but the recipient, view or not
    assert max(picks.values()) < 3 * min(picks.values())
    small = overlay()
    small.learn(nid(1), [addr(1)], 0.0)
    assert small.exchange_sample(nid(1), 8) == []


def test_a_peer_that_connects_again_while_we_hang_up_is_counted_and_closed_again():
    ov = overlay(max_connections=48, budget=2, degree=1, shuffle_every=1e6)
    ov.tick(0.0, no_failures, not_banned)  # the view: the seed
    ov.connected(SEED, 0.0, outbound=True)
    assert ov.connected(nid(1), 1.0, outbound=False) == []
    (close,) = ov.connected(nid(2), 2.0, outbound=False)
    assert close.node == nid(1)
    # Being hung up on, it is not counted: nothing more goes at the tick ...
    assert [a for a in ov.tick(3.0, no_failures, not_banned) if isinstance(a, Close)] == []
    # ... but a new connection of it while the old one closes counts again.
    assert ov.connected(nid(1), 4.0, outbound=False) == [
        Close(nid(1), "over the connection cap", exchange=True)]
