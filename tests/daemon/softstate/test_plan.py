"""The soft-state service's tick decisions, pure: heartbeat, republish, persist, scan."""

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


def test_a_load_jump_republishes_but_not_more_often_than_the_load_period() -> None:
    p = TickPlanner(0.0, 0, [])
    assert not p.plan(1.0, 1000, [], None).publish  # too soon after the start
    assert p.plan(LOAD_REPUBLISH_S, 1000, [], None).publish
    assert not p.plan(LOAD_REPUBLISH_S + 1, 0, [], None).publish
    assert p.plan(2 * LOAD_REPUBLISH_S, 0, [], None).publish
    assert not p.plan(3 * LOAD_REPUBLISH_S, 100, [], None).publish  # a small change waits


def test_new_addresses_republish_at_once_and_dirty_state_persists_after_the_period() -> None:
    p = TickPlanner(0.0, 0, ["a"])
    assert p.plan(0.1, 0, ["a", "b"], None) == Steps(publish=True)
    assert not p.plan(3.0, 0, ["a", "b"], 1.0).persist
    assert p.plan(1.0 + PERSIST_S, 0, ["a", "b"], 1.0).persist


def test_a_record_published_busy_outside_the_planner_is_corrected_when_idle() -> None:
    """A runtime became ready while a task ran: that record said "busy". The planner must
    measure the next change from it, or an idle worker looks full until the next refresh
    (a one-node network stalled after its first round of tasks)."""
    p = TickPlanner(0.0, 0, [])
    p.published(10.0, 1000, [])  # published by the service, not by plan
    assert not p.plan(12.0, 0, [], None).publish  # not sooner than the load period
    assert p.plan(10.0 + LOAD_REPUBLISH_S, 0, [], None).publish
