import random

import pytest

from daemon.p2p.peers import BackoffPolicy, PeerBook
from protocol.identity import NodeId

A, B, ME = NodeId("peer-a"), NodeId("peer-b"), NodeId("me")


def book(seed: int = 1, **kw: float) -> PeerBook:
    settings = {"fault_threshold": 5.0, "fault_decay": 1.0, "ban_seconds": 60.0}
    settings.update(kw)
    return PeerBook(
        self_id=ME,
        backoff=BackoffPolicy(0.5, 8.0),
        rng=random.Random(seed),
        **settings,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", range(20))
def test_backoff_doubles_with_jitter_and_stays_within_the_cap(seed):
    policy, rng = BackoffPolicy(0.5, 8.0), random.Random(seed)
    for failures in range(12):
        base = min(8.0, 0.5 * 2**failures)
        assert base / 2 <= policy.delay(failures, rng) <= base


def test_same_seed_same_delays():
    a, b = book(seed=7), book(seed=7)
    for bk in (a, b):
        bk.remember(A, ["/ip4/127.0.0.1/tcp/1"], bootstrap=True, now=0.0)
        assert bk.due(0.0) == [A]
    assert [a.dial_failed(A, t) for t in range(5)] == [b.dial_failed(A, t) for t in range(5)]


def test_remembered_peer_is_due_then_backs_off_after_each_failure():
    bk = book()
    assert bk.remember(A, ["/ip4/127.0.0.1/tcp/1"], bootstrap=True, now=10.0)
    assert bk.due(10.0) == [A]
    assert bk.due(10.0) == []  # being dialled: not handed out twice
    assert bk.next_wakeup() is None
    first = bk.dial_failed(A, 10.0)
    assert bk.due(10.0 + first - 0.001) == []
    assert bk.next_wakeup() == pytest.approx(10.0 + first)
    assert bk.due(10.0 + first) == [A]
    second = bk.dial_failed(A, 20.0)
    assert second > 0.5  # the second wait is drawn from [0.5, 1.0]


def test_our_own_id_is_never_dialled():
    bk = book()
    assert not bk.remember(ME, ["/ip4/127.0.0.1/tcp/1"], bootstrap=True, now=0.0)
    assert bk.due(0.0) == []


def test_peer_that_only_dialled_us_is_known_but_not_redialled():
    bk = book()
    bk.connected(B, 0.0)
    bk.disconnected(B, 100.0)
    assert bk.due(1000.0) == []
    assert [p.node_id for p in bk.snapshot(1000.0)] == [B]


def test_disconnect_after_a_long_connection_redials_soon_and_a_flap_backs_off():
    bk = book()
    bk.remember(A, ["x"], bootstrap=False, now=0.0)
    bk.due(0.0)
    bk.dial_succeeded(A, 0.0)
    bk.disconnected(A, 100.0)  # was up for 100 s > reconnect max: fresh start
    assert bk.next_wakeup() <= 100.0 + 0.5
    assert bk.due(100.5) == [A]
    bk.dial_succeeded(A, 100.5)
    bk.disconnected(A, 101.0)  # up for 0.5 s: a flap counts as a failure
    assert bk.next_wakeup() >= 101.0 + 0.5


def test_faults_leak_away_and_a_burst_bans_for_a_while():
    bk = book()
    bk.remember(A, ["x"], bootstrap=True, now=0.0)
    for t in range(10):  # one fault per second leaks at 1/s: never reaches 5
        assert not bk.fault(A, float(t))
    banned = [bk.fault(A, 20.0) for _ in range(5)]
    assert banned == [False, False, False, False, True]
    assert bk.is_banned(A, 20.0) and bk.banned(79.9) == [A]
    assert bk.due(79.9) == []  # a banned peer is not redialled
    assert not bk.is_banned(A, 80.0)
    assert bk.due(80.0) == [A]


def test_forget_stops_redialling():
    bk = book()
    bk.remember(A, ["x"], bootstrap=True, now=0.0)
    bk.forget(A)
    assert bk.due(0.0) == []
