from collections import Counter

import numpy as np
import pytest

from daemon.sched.timebase import DAY, HOUR, WEEK
from daemon.sched.weibull import fit_weibull
from testnet.traces import EPOCH_MONDAY, FTA_CLASSES, generate_traces


def test_same_seed_same_traces_other_seed_other_traces():
    a = generate_traces(20, seed=1, duration_s=WEEK)
    b = generate_traces(20, seed=1, duration_s=WEEK)
    c = generate_traces(20, seed=2, duration_s=WEEK)
    assert all(np.array_equal(x.up, y.up) and x.kind == y.kind for x, y in zip(a, b))
    assert any(not np.array_equal(x.up, y.up) for x, y in zip(a, c))


def test_class_counts_follow_the_mix_exactly():
    traces = generate_traces(300, seed=3, duration_s=DAY)
    assert Counter(t.kind for t in traces) == {
        "microsoft99": 75, "condor": 60, "overnet": 60, "office": 60, "server": 45,
    }


def test_intervals_are_sorted_disjoint_and_inside_the_window():
    for t in generate_traces(50, seed=4, duration_s=2 * WEEK, burn_in_s=WEEK):
        assert np.all(t.up[:, 1] >= t.up[:, 0])
        assert np.all(t.up[1:, 0] >= t.up[:-1, 1])
        assert t.up.min() >= EPOCH_MONDAY - WEEK and t.up.max() <= EPOCH_MONDAY + 2 * WEEK


@pytest.mark.parametrize("kind", ["microsoft99", "condor", "overnet"])
def test_up_times_follow_the_published_shape(kind):
    """Without the per-host scale spread, pooled up-times refit to the archive's shape."""
    traces = generate_traces(40, seed=5, duration_s=20 * WEEK, mix={kind: 1.0}, scale_spread=0.0)
    d, obs = [], []
    for t in traces:
        inner = t.up[(t.up[:, 0] > EPOCH_MONDAY - 2 * WEEK)]
        d.extend((inner[:, 1] - inner[:, 0]) / HOUR)
        obs.extend(inner[:, 1] < EPOCH_MONDAY + 20 * WEEK)  # the last one is cut by the window
    fit = fit_weibull(np.array(d), np.array(obs))
    assert fit is not None
    assert fit.dist.shape == pytest.approx(FTA_CLASSES[kind].up.shape, rel=0.08)
    assert fit.dist.scale_h == pytest.approx(FTA_CLASSES[kind].up.scale_h, rel=0.15)


def test_each_host_keeps_the_law_its_sessions_were_drawn_from():
    """The known-law policy forecasts with ``HostTrace.law``: it must be the host's own law
    (its per-host scale, not the class's), and survive clipping."""
    traces = generate_traces(12, seed=6, duration_s=30 * WEEK, mix={"condor": 1.0, "office": 1.0})
    for t in traces:
        if t.kind == "office":
            assert t.law is None
            continue
        assert t.law is not None and t.law.shape == FTA_CLASSES["condor"].up.shape
        done = t.up[:-1]
        fit = fit_weibull((done[:, 1] - done[:, 0]) / HOUR, np.ones(len(done), dtype=bool))
        assert fit is not None
        assert fit.dist.scale_h == pytest.approx(t.law.scale_h, rel=0.3)
        assert t.clip(EPOCH_MONDAY, EPOCH_MONDAY + WEEK).law == t.law
    scales = [t.law.scale_h for t in traces if t.law is not None]
    assert max(scales) > 1.5 * min(scales)  # hosts of one class differ


def test_office_desktops_work_office_hours_in_their_own_time_zone():
    for t in generate_traces(16, seed=6, duration_s=2 * WEEK, mix={"office": 1.0}):
        local_start = ((t.up[:, 0] + t.tz_offset_s) % DAY) / HOUR
        weekday = ((np.floor((t.up[:, 0] + t.tz_offset_s) / DAY) + 3) % 7) < 5
        assert np.median(local_start[weekday]) == pytest.approx(8.75, abs=1.0)
        assert weekday.mean() > 0.8


def test_servers_are_almost_always_up():
    traces = generate_traces(10, seed=7, duration_s=4 * WEEK, mix={"server": 1.0})
    assert np.mean([t.on_fraction(EPOCH_MONDAY, EPOCH_MONDAY + 4 * WEEK) for t in traces]) > 0.99


def test_unknown_class_is_refused():
    with pytest.raises(ValueError):
        generate_traces(3, seed=1, mix={"seti": 1.0})
