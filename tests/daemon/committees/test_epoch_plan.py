"""The epoch manager's decisions, pure: join, advance, evict, retire, each at its time."""

from __future__ import annotations

from types import SimpleNamespace

from consensus.mesh import MESH_ABOVE
from daemon.committees.epoch_plan import (EPOCH_MESHED_MIN_S, EPOCH_MIN_S, EVICT_SCAN_S,
                                          JOIN_RETRY_S, RETIRE_S, Advance, epoch_min_s,
                                          EpochPlanner, Evict, Join, Retire)
from protocol.identity import node_id_from_public_key

ME, A, B = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def epoch(n: int, members: tuple[bytes, ...], committee: int = 4) -> SimpleNamespace:
    return SimpleNamespace(epoch=n, members=members, committee_size=committee)


def directory(n: int, joining: bool = False) -> SimpleNamespace:
    return SimpleNamespace(epoch=n, joining=[b"x"] if joining else [], leaving=[],
                           evicted=lambda: [])


def never(_node: str) -> None:
    return None


def test_a_node_outside_the_epoch_asks_to_join_every_retry_period() -> None:
    p = EpochPlanner(entered_at=0.0, started_wall=1000.0)
    e = epoch(1, (A, B))
    times = [t for t in range(0, 40) if p.plan(float(t), 1000.0 + t, ME, e, False, None, 0, never)]
    assert times == [15, 30] and JOIN_RETRY_S == 15
    assert not EpochPlanner(0.0, 0.0).plan(20.0, 20.0, ME, e, True, None, 0, never)  # left


def test_the_directory_advances_once_the_epoch_is_old_enough_and_asks_again_after_a_failure(
        ) -> None:
    p = EpochPlanner(entered_at=100.0, started_wall=0.0)
    e = epoch(3, (ME, A))
    assert p.plan(100.0 + EPOCH_MIN_S - 1, 0.0, ME, e, False, directory(3, True), 0, never) == []
    steps = p.plan(100.0 + EPOCH_MIN_S, 0.0, ME, e, False, directory(3, True), 0, never)
    assert steps == [Advance(4)]
    assert p.plan(200.0, 0.0, ME, e, False, directory(3, True), 0, never) == []
    p.failed(Advance(4))
    assert p.plan(201.0, 0.0, ME, e, False, directory(3, True), 0, never) == [Advance(4)]
    assert p.plan(300.0, 0.0, ME, e, False, directory(3, False), 0, never) == []


def test_silent_members_are_reported_once_counting_from_our_own_start() -> None:
    heard = {node_id_from_public_key(A): 5000.0}
    p = EpochPlanner(entered_at=0.0, started_wall=4000.0)
    e = epoch(2, (ME, A, B))
    # B never heard of: silent since our start (4000), not since 1970.
    assert p.plan(10.0, 4000.0 + 599, ME, e, False, directory(2), 600, heard.get) == []
    steps = p.plan(10.0 + EVICT_SCAN_S, 4000.0 + 600, ME, e, False, directory(2), 600, heard.get)
    assert [(s.public_key, s.epoch) for s in steps if isinstance(s, Evict)] == [(B, 2)]
    steps = p.plan(20.0 + EVICT_SCAN_S, 5000.0 + 600, ME, e, False, directory(2), 600, heard.get)
    assert [s.public_key for s in steps if isinstance(s, Evict)] == [A]  # B not again
    assert p.plan(30.0 + EVICT_SCAN_S, 9000.0, ME, e, False, None, 600, heard.get) == []


def test_old_replicas_retire_after_the_retire_period() -> None:
    p = EpochPlanner(entered_at=0.0, started_wall=0.0)
    p.entered(50.0, [(0, 1), (7, 1)])
    e = epoch(2, (ME,))
    assert p.plan(50.0 + RETIRE_S - 1, 0.0, ME, e, False, None, 0, never) == []
    assert p.plan(50.0 + RETIRE_S, 0.0, ME, e, False, None, 0, never) == [Retire(0, 1), Retire(7, 1)]
    assert p.plan(500.0, 0.0, ME, e, False, None, 0, never) == []
    assert Join() not in p.plan(500.0, 0.0, ME, e, False, None, 0, never)


def test_a_large_network_advances_its_epoch_less_often() -> None:
    """Each epoch costs every node the new membership (in proportion to the network): the
    minimum epoch grows with it, so a node's share stays bounded (``EPOCH_S_PER_MEMBER``)."""
    assert epoch_min_s(3) == epoch_min_s(100) == EPOCH_MIN_S
    assert epoch_min_s(1_000) == 100.0 and epoch_min_s(10_000) == 1_000.0
    big = epoch(3, (ME, A, *(bytes([i % 256, i // 256]) * 16 for i in range(998))))
    p = EpochPlanner(entered_at=100.0, started_wall=0.0)
    assert p.plan(100.0 + 99, 0.0, ME, big, False, directory(3, True), 0, never) == []
    assert p.plan(100.0 + 100, 0.0, ME, big, False, directory(3, True), 0, never) == [Advance(4)]


def test_a_network_whose_committees_are_meshed_advances_at_most_every_half_hour() -> None:
    """An epoch's closing round floods every member's votes over its committee's mesh (MBs a
    seat, whatever the network's size): once committees pass ``MESH_ABOVE`` the epoch lasts
    ``EPOCH_MESHED_MIN_S`` at least; all-to-all committees keep the short minimum."""
    assert epoch_min_s(30, MESH_ABOVE) == EPOCH_MIN_S
    assert epoch_min_s(60, MESH_ABOVE + 1) == epoch_min_s(10_000, 220) == EPOCH_MESHED_MIN_S
    assert epoch_min_s(100_000, 220) == 10_000.0  # the per-member pace, past 18,000 members
    meshed = epoch(3, (ME, A, *(bytes([i]) * 32 for i in range(58))), committee=37)
    p = EpochPlanner(entered_at=100.0, started_wall=0.0)
    assert p.plan(100.0 + EPOCH_MESHED_MIN_S - 1, 0.0, ME, meshed, False, directory(3, True), 0,
                  never) == []
    assert p.plan(100.0 + EPOCH_MESHED_MIN_S, 0.0, ME, meshed, False, directory(3, True), 0,
                  never) == [Advance(4)]
