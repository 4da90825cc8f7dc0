import numpy as np
import pytest

from daemon.sched.survival import conditional_cum_hazard, fit_host_model
from daemon.sched.timebase import HOUR, WEEK, WEEK_BINS
from daemon.sched.weibull import Weibull
from testnet.traces import EPOCH_MONDAY, generate_traces


def _sessions(trace, t_end):
    up = trace.up[(trace.up[:, 0] < t_end) & (trace.up[:, 1] > EPOCH_MONDAY)]
    return up[:, 0], np.minimum(up[:, 1], t_end), up[:, 1] <= t_end


def test_office_desktop_profile_peaks_when_its_owner_goes_home_in_utc():
    traces = [t for t in generate_traces(60, seed=11, mix={"office": 1.0}) if t.tz_offset_s == 9 * 3600]
    assert traces, "seed 11 has Tokyo offices"
    model = fit_host_model(*_sessions(traces[0], EPOCH_MONDAY + 4 * WEEK))
    assert model is not None
    by_hour = model.profile.as_array().reshape(7, 24)[:5].mean(axis=0)
    # 17:30 in UTC+9 is 08:30 UTC: departures cluster there, and nights (local) are calm.
    assert int(np.argmax(by_hour)) in (7, 8, 9)
    assert by_hour[8] > 3 * by_hour[20]


def _amplitudes(kind, n=30):
    out = []
    for tr in generate_traces(n, seed=4, mix={kind: 1.0}):
        model = fit_host_model(*_sessions(tr, EPOCH_MONDAY + 4 * WEEK))
        assert model is not None
        m = model.profile.as_array()
        out.append(np.percentile(m, 95) / np.percentile(m, 5))
    return np.array(out)


def test_hosts_without_a_weekly_pattern_get_a_flat_or_mild_profile():
    # Condor hosts in the generator have no weekly habit: the empirical-Bayes shrinkage must
    # not invent one from chance clusters of departures.
    amp = _amplitudes("condor")
    assert np.median(amp) == 1.0
    assert np.percentile(amp, 80) < 1.6


def test_office_desktops_get_a_strong_profile():
    assert np.median(_amplitudes("office")) > 5.0


def test_flat_profile_reduces_to_the_plain_weibull():
    w = Weibull(0.6, 12.0)
    start = np.array([EPOCH_MONDAY + 123.0])
    now = start + 5.3 * HOUR
    got = conditional_cum_hazard(
        np.array([w.shape]), np.array([w.scale_h]), np.ones((1, WEEK_BINS)), start, now, np.array([7.7 * HOUR]),
    )
    want = w.cum_hazard(5.3 + 7.7) - w.cum_hazard(5.3)
    assert float(got[0]) == pytest.approx(float(want), rel=1e-9)


def test_a_host_that_never_left_has_no_model():
    assert fit_host_model(np.array([0.0]), np.array([3600.0]), np.array([False])) is None
