import numpy as np
import pytest

from daemon.sched.calibration import Calibration, fit_isotonic


def _overconfident(seed, n=20_000):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < truth).astype(float)
    said = truth**0.4  # says 0.76 when the truth is 0.5
    return said, y


def test_isotonic_map_makes_an_overconfident_forecaster_honest():
    said, y = _overconfident(1)
    cal = fit_isotonic(said, y)
    said2, y2 = _overconfident(2)
    fixed = cal(said2)
    for lo in np.arange(0.0, 1.0, 0.1):
        sel = (fixed >= lo) & (fixed < lo + 0.1)
        if sel.sum() > 500:
            assert abs(fixed[sel].mean() - y2[sel].mean()) < 0.03
    assert len(cal.xs) <= 48


def test_isotonic_map_is_strictly_increasing_between_knots():
    said, y = _overconfident(3)
    cal = fit_isotonic(said, y)
    assert all(b > a for a, b in zip(cal.ys, cal.ys[1:]))
    grid = np.linspace(0, 1, 1001)
    assert np.all(np.diff(cal(grid)) >= 0)


def test_identity_calibration_changes_nothing():
    p = np.linspace(0, 1, 11)
    assert np.array_equal(Calibration.identity().apply(p, 4.0), p)


def test_horizons_between_fitted_ones_blend_in_log_horizon():
    lo = fit_isotonic(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    hi = fit_isotonic(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    cal = Calibration((1.0, 4.0), (lo, hi))
    assert cal.apply(np.array([0.5]), 2.0)[0] == pytest.approx(0.5)
    assert cal.apply(np.array([0.5]), 0.25)[0] == pytest.approx(0.0)
    assert cal.apply(np.array([0.5]), 100.0)[0] == pytest.approx(1.0)


def test_calibration_wire_round_trips():
    said, y = _overconfident(4)
    cal = Calibration.fit((1.0, 4.0), [(said, y), (said**2, y)])
    assert Calibration.from_wire(cal.to_wire()) == cal


def test_rhythmic_hosts_get_their_own_maps():
    rng = np.random.default_rng(5)
    said = rng.uniform(0, 1, 20_000)
    rhythmic = np.arange(said.size) % 2 == 0
    truth = np.where(rhythmic, 0.2 * said, said**2.5)  # both increasing, differently wrong
    y = (rng.uniform(0, 1, said.size) < truth).astype(float)
    cal = Calibration.fit((4.0,), [(said, y)], [rhythmic])
    assert cal.rhythm_maps
    assert cal.apply(np.array([0.9]), 4.0, np.array([False]))[0] == pytest.approx(0.9**2.5, abs=0.04)
    assert cal.apply(np.array([0.9]), 4.0, np.array([True]))[0] == pytest.approx(0.18, abs=0.04)
    few = Calibration.fit((4.0,), [(said, y)], [np.arange(said.size) < 10])
    assert not few.rhythm_maps  # too few outcomes to calibrate a group apart
