"""Round-trip estimates and the timers scaled by them (pure)."""

from __future__ import annotations

import pytest

from daemon.p2p.rtt import (
    DEAD_AFTER_MISSES,
    MAX_PEERS,
    PROBE_EVERY,
    RETRY_EVERY,
    PING_TIMEOUT_CEILING,
    RttTable,
    pbft_timers,
    scale,
)
from protocol.identity import NodeId

A, B, C = NodeId("a"), NodeId("b"), NodeId("c")


def test_the_smoothed_round_trip_follows_samples_as_tcp_does():
    t = RttTable()
    t.sample(A, 0.300, 0.0)
    assert t.srtt(A) == pytest.approx(0.300)
    assert t.conservative(A) == pytest.approx(0.300 + 4 * 0.150)
    for i in range(100):
        t.sample(A, 0.100, float(i))
    assert t.srtt(A) == pytest.approx(0.100, abs=1e-3)
    assert t.conservative(A) == pytest.approx(0.100, abs=5e-3)


def test_nonsense_samples_are_ignored_and_stale_peers_forgotten():
    t = RttTable()
    t.sample(A, -1.0, 0.0)
    t.sample(A, 120.0, 0.0)
    assert t.srtt(A) is None
    t.sample(A, 0.01, 0.0)
    t.sample(B, 0.01, 500.0)
    t.forget_stale(700.0)
    assert t.srtt(A) is None and t.srtt(B) is not None


def test_the_table_is_bounded():
    t = RttTable()
    for i in range(MAX_PEERS + 50):
        t.sample(NodeId(f"p{i}"), 0.01, float(i))
    assert t.summary()["peers"] == MAX_PEERS
    assert t.srtt(NodeId("p0")) is None  # the stalest went first


def test_a_group_round_trip_is_the_median_of_measured_members():
    t = RttTable()
    for peer, rtt in ((A, 0.05), (B, 0.30), (C, 0.07)):
        for i in range(50):
            t.sample(peer, rtt, float(i))
    assert t.group([A, B, C, "unmeasured"]) == pytest.approx(0.07, abs=1e-3)
    assert t.group(["unmeasured"]) is None


def test_loopback_keeps_the_base_timers_and_a_far_committee_gets_patient_ones():
    assert pbft_timers(1.0, 0.25, None, 30.0) == (1.0, 0.25)
    assert pbft_timers(1.0, 0.25, 0.0005, 30.0) == (1.0, 0.25)  # loopback: not slowed down
    vc, status = pbft_timers(1.0, 0.25, 0.300, 30.0)
    assert vc == pytest.approx(2.4) and status == pytest.approx(0.45)
    assert pbft_timers(1.0, 0.25, 20.0, 30.0) == (30.0, 7.5)  # a ceiling: dead is still dead
    assert scale(2.0, 1.0, 8.0, 1.0) == 2.0  # a ceiling below the base keeps the base


def test_ping_timeouts_follow_the_round_trip_and_three_misses_in_a_row_mean_dead():
    t = RttTable()
    near, far, new = NodeId("near"), NodeId("far"), NodeId("new")
    for i in range(20):
        t.sample(near, 0.001, float(i))
        t.sample(far, 0.300 + (0.02 if i % 2 else -0.02), float(i))
    # Loopback keeps the base; a 300 ms link gets more than 4 round trips; nothing waits
    # beyond the ceiling; an unmeasured peer gets the base.
    assert t.ping_timeout(near, 5.0) == 5.0
    assert 1.2 < t.ping_timeout(far, 1.0) < 2.0
    assert t.ping_timeout(far, 0.1) > 4 * 0.3
    assert t.ping_timeout(new, 5.0) == 5.0
    for _ in range(50):
        t.sample(far, 59.0, 30.0)
    assert t.ping_timeout(far, 5.0) == PING_TIMEOUT_CEILING
    # Misses: only a run of DEAD_AFTER_MISSES counts; an answer in between resets it.
    assert [t.missed(near, 21.0) for _ in range(DEAD_AFTER_MISSES - 1)] == [False, False]
    t.sample(near, 0.001, 22.0)
    assert [t.missed(near, 23.0) for _ in range(DEAD_AFTER_MISSES)] == [False, False, True]
    assert t.missed(new, 23.0) is False  # never measured: the dial has its own timeout


def test_a_peer_heard_from_while_its_ping_waited_is_slow_not_dead():
    """On a sub-Mbit uplink a ping queues behind consensus frames; the frames that do arrive
    say the link is alive: hanging up on it (as three unanswered pings would) only costs a
    redial on the busiest links."""
    t = RttTable()
    busy = NodeId("busy")
    t.sample(busy, 0.3, 0.0)
    for k in range(10 * DEAD_AFTER_MISSES):
        assert t.missed(busy, 1.0 + k, heard_since=True) is False
    assert [t.missed(busy, 50.0) for _ in range(DEAD_AFTER_MISSES)] == [False, False, True]
    t.missed(busy, 51.0)
    t.missed(busy, 52.0, heard_since=True)  # a word in between resets the run, as an answer does
    assert [t.missed(busy, 53.0) for _ in range(DEAD_AFTER_MISSES)] == [False, False, True]


def test_a_new_peer_is_due_at_once_then_every_probe_interval():
    t = RttTable()
    a, b = NodeId("a"), NodeId("b")
    assert t.due([a], 0.0) == [a]
    assert t.due([a], 1.0) == []
    assert t.due([a, b], 2.0) == [b]  # b is new: no waiting for a's interval
    assert t.due([a, b], PROBE_EVERY) == [a]
    assert t.due([a, b], PROBE_EVERY + 2.0) == [b]


def test_a_peer_that_reconnects_is_due_at_once():
    t = RttTable()
    a = NodeId("a")
    assert t.due([a], 0.0) == [a]
    assert t.due([], 1.0) == []  # a disconnected
    assert t.due([a], 2.0) == [a]


def test_a_peer_timed_by_other_traffic_is_not_pinged():
    # Acknowledged soft-state deltas are samples too: a peer they keep measured needs no
    # ping; one left unmeasured for PROBE_EVERY is pinged again.
    t = RttTable()
    a, b = NodeId("a"), NodeId("b")
    assert t.due([a, b], 0.0) == [a, b]
    for k in range(1, 10):
        t.sample(a, 0.05, k * PROBE_EVERY / 2)
        assert t.due([a, b], k * PROBE_EVERY / 2 + 1.0) == ([b] if k % 2 == 0 else [])
    assert t.due([a, b], 20 * PROBE_EVERY) == [a, b]  # a went quiet


def test_after_a_missed_ping_the_next_comes_sooner():
    t = RttTable()
    a = NodeId("a")
    assert t.due([a], 0.0) == [a]
    t.sample(a, 0.05, 0.5)
    assert t.due([a], PROBE_EVERY) == []  # the sample came after the ping
    assert t.due([a], PROBE_EVERY + 0.5) == [a]
    t.missed(a, PROBE_EVERY + 5.0)
    assert t.due([a], PROBE_EVERY + 0.5 + RETRY_EVERY - 1.0) == []
    assert t.due([a], PROBE_EVERY + 0.5 + RETRY_EVERY) == [a]
    t.missed(a, PROBE_EVERY + RETRY_EVERY + 5.0)
    assert t.due([a], PROBE_EVERY + 0.5 + 2 * RETRY_EVERY) == [a]
    assert RETRY_EVERY < PROBE_EVERY
