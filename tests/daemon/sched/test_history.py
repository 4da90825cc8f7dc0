import pytest

from daemon.sched.history import AvailabilityHistory
from daemon.sched.timebase import DAY, HOUR, WEEK

T0 = 1_704_067_200.0


def test_clean_sessions_are_recorded_as_they_happened():
    h = AvailabilityHistory().started(T0).alive(T0 + HOUR).stopped(T0 + 2 * HOUR)
    h = h.started(T0 + 5 * HOUR)
    assert h.sessions == ((T0, T0 + 2 * HOUR),)
    assert h.current_start == T0 + 5 * HOUR and h.is_up


def test_a_crash_closes_the_session_at_the_last_heartbeat():
    h = AvailabilityHistory().started(T0).alive(T0 + 3 * HOUR)
    # kill -9: no stopped(); the daemon comes back a day later.
    h = h.started(T0 + DAY)
    assert h.sessions == ((T0, T0 + 3 * HOUR),)
    assert h.current_start == T0 + DAY


def test_history_is_bounded_by_count_and_age():
    h = AvailabilityHistory(max_sessions=5)
    for i in range(20):
        h = h.started(T0 + i * HOUR).stopped(T0 + i * HOUR + 1800)
    assert len(h.sessions) == 5 and h.sessions[-1][0] == T0 + 19 * HOUR
    old = AvailabilityHistory(max_age_s=WEEK).started(T0).stopped(T0 + HOUR)
    old = old.started(T0 + 3 * WEEK).stopped(T0 + 3 * WEEK + HOUR)
    assert old.sessions == ((T0 + 3 * WEEK, T0 + 3 * WEEK + HOUR),)


def test_on_fraction_counts_the_open_session():
    h = AvailabilityHistory().started(T0).stopped(T0 + HOUR).started(T0 + 3 * HOUR)
    assert h.on_fraction(T0 + 4 * HOUR) == pytest.approx(0.5)


def test_durable_record_round_trips():
    h = AvailabilityHistory().started(T0).stopped(T0 + HOUR).started(T0 + 2 * HOUR).alive(T0 + 2.5 * HOUR)
    assert AvailabilityHistory.from_record(h.to_record()) == h


def test_inconsistent_history_is_refused():
    with pytest.raises(ValueError):
        AvailabilityHistory(sessions=((T0 + 10, T0 + 20), (T0, T0 + 5)))
    with pytest.raises(ValueError):
        AvailabilityHistory(sessions=((T0, T0 + 20),), current_start=T0 + 10)


def test_fit_treats_the_open_session_as_censored():
    h = AvailabilityHistory()
    t = T0
    for _ in range(12):
        h = h.started(t).stopped(t + 2 * HOUR)
        t += 3 * HOUR
    h = h.started(t)
    short = h.fit(t + 1)
    long_open = h.fit(t + 30 * DAY)
    assert short is not None and long_open is not None
    assert short.events == long_open.events == 12
    # A month-long current session is evidence of long sessions, not a departure.
    assert long_open.weibull.scale_h > 2 * short.weibull.scale_h
