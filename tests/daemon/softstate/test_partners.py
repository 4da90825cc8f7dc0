"""Which connected peers the soft state runs anti-entropy with (pure)."""

from __future__ import annotations

from crdt.antientropy import AntiEntropyConfig
from daemon.softstate.partners import HEARD_S, MAX_PASSIVE, Partners


def test_view_peers_are_active_and_a_peer_that_sends_summaries_is_passive():
    p = Partners()
    changed, stopped = p.update({"v", "w", "committee"}, {"v", "gone"}, 0.0)
    assert changed == {"v": True} and stopped == set()  # committee peer: no soft state
    assert p.heard_summary("w", 1.0) is True  # w holds us in its view
    assert p.heard_summary("w", 2.0) is False  # already a partner
    assert p.roles == {"v": True, "w": False}
    # w enters our view too: active on both ends; v leaves it and sends us nothing: stopped.
    changed, stopped = p.update({"v", "w", "committee"}, {"w"}, 3.0)
    assert changed == {"w": True} and stopped == {"v"}


def test_a_passive_partner_goes_when_its_summaries_stop_or_it_disconnects():
    p = Partners()
    p.heard_summary("w", 0.0)
    p.heard_summary("x", 0.0)
    assert p.update({"w", "x"}, set(), HEARD_S) == ({}, set())
    p.heard_summary("w", HEARD_S)
    assert p.update({"w", "x"}, set(), HEARD_S + 1.0) == ({}, {"x"})
    p.gone("w")
    assert p.roles == {}
    # w is back, with no view peer up: every connection (``test_a_node_with_no_overlay...``)
    assert p.update({"w"}, set(), HEARD_S + 2.0) == ({"w": True}, set())


def test_two_passive_ends_cannot_keep_each_other_alive():
    # A passive end sends its summaries less often than a partner is kept without one.
    assert HEARD_S * 1000 < AntiEntropyConfig().passive_digest_every_ms


def test_without_an_overlay_every_connection_is_active_and_passive_ones_are_bounded():
    p = Partners()
    assert p.update({"a", "b"}, None, 0.0) == ({"a": True, "b": True}, set())
    q = Partners()
    for i in range(MAX_PASSIVE + 10):
        assert q.heard_summary(f"p{i}", 0.0) is (i < MAX_PASSIVE)
    changed, _ = q.update({f"p{i}" for i in range(MAX_PASSIVE + 10)}, set(), 1.0)
    assert changed == {} and len(q.roles) == MAX_PASSIVE


def test_a_node_with_no_overlay_link_up_uses_every_connection_until_one_is():
    p = Partners()
    assert p.update({"c1", "c2"}, {"v"}, 0.0) == ({"c1": True, "c2": True}, set())
    assert p.update({"c1", "c2", "v"}, {"v"}, 1.0) == ({"v": True}, {"c1", "c2"})
    # Held by a peer whose summary came, but its own view peer still down: still every one.
    q = Partners()
    q.heard_summary("c1", 0.0)
    assert q.update({"c1", "c2"}, {"v"}, 1.0) == ({"c1": True, "c2": True}, set())
    assert q.update({"c1", "c2"}, set(), 2.0) == ({"c1": False}, {"c2"})  # empty view: held
