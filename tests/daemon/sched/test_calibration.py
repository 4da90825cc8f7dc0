import numpy as np
import pytest

from daemon.sched.calibration import Calibration, IsotonicMap, fit_guarded, fit_isotonic


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
    lo = IsotonicMap((0.0, 1.0), (0.0, 0.0))
    hi = IsotonicMap((0.0, 1.0), (1.0, 1.0))
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


def _heavy_ties(seed, n=5_000):
    """Most forecasts share a handful of exact values (as hosts past a common age do)."""
    rng = np.random.default_rng(seed)
    p = np.where(rng.uniform(size=n) < 0.63, 0.9731, rng.choice([0.41, 0.66, 0.88, 0.999], n))
    p = np.where(rng.uniform(size=n) < 0.1, rng.uniform(size=n), p)
    y = (rng.uniform(size=n) < p**1.5).astype(float)
    return p, y


@pytest.mark.parametrize("seed", range(200))
def test_heavy_ties_never_break_the_fit(seed):
    p, y = _heavy_ties(seed)
    m = fit_isotonic(p, y)
    assert all(b > a for a, b in zip(m.xs, m.xs[1:]))
    g = fit_guarded(p, y)
    assert np.all(np.diff(g(np.linspace(0, 1, 101))) >= 0)


def test_tied_forecasts_are_one_block():
    p = np.array([0.5] * 300 + [0.7] * 300)
    y = np.array([0.0, 1.0] * 150 + [1.0, 1.0, 0.0] * 100)
    m = fit_isotonic(p, y, shrink=0.0)
    assert m.xs == (0.5, 0.7) and m.ys == pytest.approx((0.5, 2 / 3))


def test_a_thin_block_cannot_send_a_confident_forecast_to_zero():
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(0.3, 0.8, 2000), np.full(5, 0.92)])
    y = np.concatenate([(rng.uniform(size=2000) < 0.6).astype(float), np.zeros(5)])
    m = fit_isotonic(p, y)
    assert m(np.array([0.92]))[0] > 0.5


def test_noise_forecasts_are_pulled_to_the_base_rate_not_past_it():
    """A forecast that knows nothing must not end worse than the constant it is fitted on,
    on pairs it was not fitted on; the ranking survives (the map stays increasing)."""
    rng = np.random.default_rng(11)
    n = 20_000
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < 0.97).astype(float)  # base rate 0.97, unrelated to p
    m = fit_guarded(p[: n // 2], y[: n // 2])
    test_p, test_y = p[n // 2:], y[n // 2:]
    const = float(y[: n // 2].mean())
    brier_const = float(np.mean((const - test_y) ** 2))
    brier_map = float(np.mean((m(test_p) - test_y) ** 2))
    assert brier_map <= brier_const * 1.002
    assert brier_map < float(np.mean((test_p - test_y) ** 2)) / 10  # raw was far worse
    assert m.ys[-1] > m.ys[0]


def test_a_good_map_is_kept_whole():
    said, y = _overconfident(8)
    m = fit_guarded(said, y)
    said2, y2 = _overconfident(9)
    iso = fit_isotonic(said, y)
    assert np.mean((m(said2) - y2) ** 2) <= np.mean((iso(said2) - y2) ** 2) + 1e-4
