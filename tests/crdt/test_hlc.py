"""Hybrid logical clock: monotonic through clock jumps, bounded trust in remote clocks."""

import pytest

from crdt.errors import ClockSkew
from crdt.hlc import HybridClock


def test_timestamps_increase_even_when_the_clock_jumps_back():
    clock = HybridClock()
    a = clock.now(1_000)
    b = clock.now(1_000)
    c = clock.now(400)  # NTP stepped the clock back
    d = clock.now(1_001)
    assert a < b < c < d
    assert c[0] == 1_000 and d == (1_001, 0)


def test_observed_timestamps_order_later_local_writes_after_them():
    clock = HybridClock()
    clock.observe((5_000, 7), now_ms=4_990)
    assert clock.now(4_995) > (5_000, 7)


def test_a_timestamp_far_in_the_future_is_refused_and_not_adopted():
    clock = HybridClock(max_ahead_ms=60_000)
    with pytest.raises(ClockSkew, match=r"3600\.0 s ahead of this node's clock \(limit 60 s\)"):
        clock.observe((1_000 + 3_600_000, 0), now_ms=1_000)
    assert clock.now(1_000) == (1_000, 0)
