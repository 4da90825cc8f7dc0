import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from daemon.sched.weibull import Weibull, fit_weibull, kl_divergence, lgamma


@pytest.mark.parametrize("shape,scale", [(0.55, 35.3), (0.45, 4.16), (0.85, 2.04), (2.5, 9.0)])
def test_censored_fit_recovers_published_parameters(shape, scale):
    rng = np.random.default_rng(7)
    life = scale * rng.weibull(shape, 4000)
    censor = rng.uniform(0, 3 * scale, 4000)  # observation ends before many sessions do
    fit = fit_weibull(np.minimum(life, censor), life <= censor)
    assert fit is not None
    assert fit.dist.shape == pytest.approx(shape, rel=0.06)
    assert fit.dist.scale_h == pytest.approx(scale, rel=0.08)
    assert fit.events == int(np.sum(life <= censor))


def test_treating_censored_sessions_as_departures_would_underestimate_scale():
    rng = np.random.default_rng(3)
    life = 35.3 * rng.weibull(0.55, 3000)
    censor = rng.uniform(0, 60, 3000)
    d = np.minimum(life, censor)
    honest = fit_weibull(d, life <= censor)
    naive = fit_weibull(d, np.ones(d.size, dtype=bool))
    assert honest is not None and naive is not None
    assert naive.dist.scale_h < 0.6 * honest.dist.scale_h
    assert honest.dist.scale_h == pytest.approx(35.3, rel=0.12)


def test_no_departure_means_no_fit():
    assert fit_weibull(np.array([5.0, 10.0]), np.array([False, False])) is None


def test_one_departure_gives_a_tame_shape_thanks_to_the_prior():
    fit = fit_weibull(np.array([3.0]), np.array([True]))
    assert fit is not None
    assert 0.2 < fit.dist.shape < 3.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        fit_weibull(np.array([1.0, -2.0]), np.array([True, True]))
    with pytest.raises(ValueError):
        fit_weibull(np.array([1.0]), np.array([True, False]))
    with pytest.raises(ValueError):
        Weibull(0.0, 1.0)


def test_decreasing_hazard_means_longer_uptime_predicts_longer_stay():
    w = Weibull(0.55, 35.3)
    p = [w.conditional_survival(u, 4.0) for u in (0.1, 1, 10, 100)]
    assert p == sorted(p) and p[-1] - p[0] > 0.15  # 0.77 right after boot, 0.96 after 100 h


def test_lgamma_matches_the_standard_library():
    xs = np.array([1e-3, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 7.99, 8.0, 25.0, 171.3, 1e4])
    assert np.max(np.abs(lgamma(xs) - np.array([math.lgamma(x) for x in xs]))) < 1e-10


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.2, 5), st.floats(0.1, 500), st.floats(0.2, 5), st.floats(0.1, 500),
)
def test_kl_divergence_is_non_negative_and_zero_only_at_identity(k1, l1, k2, l2):
    kl = float(kl_divergence(k1, l1, k2, l2))
    assert kl >= -1e-9
    assert float(kl_divergence(k1, l1, k1, l1)) == pytest.approx(0.0, abs=1e-9)


def test_kl_divergence_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    x = 2.0 * rng.weibull(0.85, 300_000)

    def logpdf(k, lam):
        return np.log(k / lam) + (k - 1) * np.log(x / lam) - (x / lam) ** k

    mc = float(np.mean(logpdf(0.85, 2.0) - logpdf(0.55, 35.3)))
    assert float(kl_divergence(0.85, 2.0, 0.55, 35.3)) == pytest.approx(mc, rel=0.02)
