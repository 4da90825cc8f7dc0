import numpy as np
import pytest

from daemon.sched.profile import WeekProfile, smooth_rates, split_hours
from daemon.sched.timebase import HOUR, WEEK_BINS, hour_index, hour_of_week

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC


def test_week_bins_start_monday_midnight_utc():
    assert hour_of_week(hour_index(MONDAY)) == 0
    assert hour_of_week(hour_index(MONDAY + 17.5 * HOUR)) == 17
    assert hour_of_week(hour_index(MONDAY + 6 * 24 * HOUR + 23 * HOUR)) == 167
    assert hour_of_week(hour_index(MONDAY + 7 * 24 * HOUR)) == 0


def test_split_hours_covers_each_session_exactly_once():
    starts = np.array([MONDAY + 0.5 * HOUR, MONDAY + 30 * HOUR])
    ends = np.array([MONDAY + 3.25 * HOUR, MONDAY + 30.2 * HOUR])
    p = split_hours(starts, ends)
    for i in range(2):
        sel = p.session == i
        assert np.sum(p.age_end_h[sel] - p.age_start_h[sel]) == pytest.approx((ends[i] - starts[i]) / HOUR)
        assert p.age_start_h[sel][0] == 0.0
    assert list(p.bin[p.session == 0]) == [0, 1, 2, 3]
    assert list(p.bin[p.session == 1]) == [30]


def test_profile_wire_form_round_trips_and_flat_is_exact():
    rng = np.random.default_rng(1)
    prof = WeekProfile.from_array(np.exp(rng.normal(0, 1, WEEK_BINS)))
    assert WeekProfile.from_bytes(prof.to_bytes()) == prof
    assert len(prof.to_bytes()) == WEEK_BINS
    assert np.all(WeekProfile.flat().as_array() == 1.0)
    assert WeekProfile.from_array(np.ones(WEEK_BINS)).is_flat
    assert not prof.is_flat


def test_any_bytes_decode_to_a_bounded_profile():
    prof = WeekProfile.from_bytes(bytes([255]) * WEEK_BINS)
    assert prof == WeekProfile.from_bytes(bytes([254]) * WEEK_BINS)
    assert np.all(prof.as_array() <= 16.0) and np.all(WeekProfile.from_bytes(bytes(WEEK_BINS)).as_array() >= 1 / 16)
    with pytest.raises(ValueError):
        WeekProfile.from_bytes(b"\x00" * 10)


def test_departures_spread_like_chance_give_a_flat_profile():
    rng = np.random.default_rng(5)
    exposure = np.full(WEEK_BINS, 0.2)
    events = rng.poisson(exposure).astype(float)
    assert np.allclose(smooth_rates(events, exposure), 1.0)


def test_a_strong_daily_pattern_is_kept():
    exposure = np.full(WEEK_BINS, 0.3)
    events = np.zeros(WEEK_BINS)
    for day in range(5):
        events[day * 24 + 17] = 3.0  # everyone leaves at 17:00 UTC on weekdays
    m = smooth_rates(events, exposure)
    by_hour = m.reshape(7, 24).mean(axis=0)
    assert int(np.argmax(by_hour)) == 17
    assert by_hour[17] > 4 * by_hour[5]
    assert np.dot(m, exposure) == pytest.approx(exposure.sum(), rel=0.01)  # up to the clamp
