"""The soft-state service's tick decisions, pure: heartbeat, republish, load, persist, scan."""

from __future__ import annotations

from daemon.capabilities import HEARTBEAT_S
from daemon.softstate.plan import (LOAD_REPUBLISH_S, MEMBERSHIP_SCAN_S, PERSIST_S, REFRESH_S,
                                   Steps, TickPlanner)


def test_a_quiet_node_republishes_every_refresh_period_and_scans_every_scan_period() -> None:
    p = TickPlanner(0.0, 100, ["/ip4/127.0.0.1/tcp/1"])
    published, scans, beats = [], [], []
    for k in range(1, 6501):
        t = k / 10
        s = p.plan(t, 100, ["/ip4/127.0.0.1/tcp/1"], None)
        if s.publish:
            published.append(t)
        if s.scan:
            scans.append(t)
        if s.heartbeat:
            beats.append(t)
        assert not s.persist
    assert published == [REFRESH_S, 2 * REFRESH_S]
    assert scans[:2] == [MEMBERSHIP_SCAN_S, 2 * MEMBERSHIP_SCAN_S]
    assert beats[0] == HEARTBEAT_S


def test_a_load_jump_writes_the_load_entry_not_more_often_than_the_load_period() -> None:
    p = TickPlanner(0.0, 0, [])
    assert not p.plan(1.0, 1000, [], None).load  # too soon after the start
    s = p.plan(LOAD_REPUBLISH_S, 1000, [], None)
    assert s.load and not s.publish  # the entry, not the whole record
    assert not p.plan(LOAD_REPUBLISH_S + 1, 0, [], None).load
    assert p.plan(2 * LOAD_REPUBLISH_S, 0, [], None).load
    assert not p.plan(3 * LOAD_REPUBLISH_S, 100, [], None).load  # a small change waits


def test_a_refresh_carries_the_load_and_restarts_the_load_period() -> None:
    p = TickPlanner(0.0, 0, [], refresh_s=20.0)
    s = p.plan(20.0, 1000, [], None)
    assert s.publish and not s.load  # the record says 1000
    assert not p.plan(20.1, 1000, [], None).load
    assert not p.plan(21.0, 0, [], None).load  # within the load period of the record
    assert p.plan(20.0 + LOAD_REPUBLISH_S, 0, [], None).load


def test_new_addresses_republish_at_once_and_dirty_state_persists_after_the_period() -> None:
    p = TickPlanner(0.0, 0, ["a"])
    assert p.plan(0.1, 0, ["a", "b"], None) == Steps(publish=True)
    assert not p.plan(3.0, 0, ["a", "b"], 1.0).persist
    assert p.plan(1.0 + PERSIST_S, 0, ["a", "b"], 1.0).persist


def test_a_change_at_clock_zero_is_dirty_too() -> None:
    # A test's MockClock starts at 0: a change then is a change (None says "nothing unsaved").
    p = TickPlanner(0.0, 0, ["a"])
    assert not p.plan(PERSIST_S, 0, ["a"], None).persist
    assert p.plan(PERSIST_S, 0, ["a"], 0.0).persist


def test_a_record_published_busy_outside_the_planner_is_corrected_when_idle() -> None:
    """A runtime became ready while a task ran: that record said "busy". The planner must
    measure the next change from it, or an idle worker looks full until the next refresh
    (a one-node network stalled after its first round of tasks)."""
    p = TickPlanner(0.0, 0, [])
    p.published(10.0, 1000, [])  # published by the service, not by plan
    assert not p.plan(12.0, 0, [], None).load  # not sooner than the load period
    assert p.plan(10.0 + LOAD_REPUBLISH_S, 0, [], None).load


def test_the_refresh_period_grows_with_the_network_within_the_eviction_silence() -> None:
    from daemon.softstate.plan import REFRESH_MAX_S, REFRESH_PER_NODE_S, refresh_period
    assert refresh_period(1) == refresh_period(50) == REFRESH_S  # small networks as before
    assert refresh_period(1000) == 1000 * REFRESH_PER_NODE_S
    # N nodes rewriting every N x 6 s: the network rewrites one record per 6 s at any size
    assert refresh_period(4000) / 4000 == refresh_period(1000) / 1000
    assert refresh_period(10_000) == min(REFRESH_MAX_S, 10_000 * REFRESH_PER_NODE_S)
    assert refresh_period(10**6) == REFRESH_MAX_S
    assert refresh_period(10**6, silence_s=86_400) == 86_400 / 3
    assert refresh_period(10_000, silence_s=3600) == 1200  # well inside a short silence
    assert refresh_period(10_000, silence_s=10) == REFRESH_S  # a test's tiny silence


def test_a_planner_follows_the_refresh_period_it_is_given() -> None:
    p = TickPlanner(0.0, 100, [])
    p.refresh_s = 2000.0
    published = [k for k in range(1, 4001) if p.plan(float(k), 100, [], None).publish]
    assert published == [2000, 4000]


def test_the_load_period_grows_with_the_network_so_its_load_rewrites_stay_bounded() -> None:
    """Busy workers rewrite their records for load at most about twice a second in all: each
    rewrite reaches every node once per soft-state link, whatever the network's size."""
    from daemon.softstate.plan import LOAD_PER_NODE_S, load_period
    assert load_period(1) == load_period(10) == LOAD_REPUBLISH_S  # small networks as before
    assert load_period(30) == 30 * LOAD_PER_NODE_S == 15.0
    assert 1000 / load_period(1000) == 30 / load_period(30) == 1 / LOAD_PER_NODE_S
    p = TickPlanner(0.0, 0, [], load_s=load_period(30))
    assert not p.plan(LOAD_REPUBLISH_S, 1000, [], None).load  # 5 s: too soon at 30 nodes
    assert p.plan(15.0, 1000, [], None).load
