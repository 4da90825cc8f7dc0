"""Properties of the robust rules: with fewer bad clients than they tolerate, every coordinate
of the result stays within the honest clients' range, wherever the bad ones put theirs."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.fl import coordinate_median, fedavg, trimmed_mean


@settings(max_examples=60, deadline=None)
@given(honest=st.integers(3, 9), seed=st.integers(0, 2**32 - 1),
       bad_value=st.floats(-1e30, 1e30, allow_nan=False))
def test_robust_rules_stay_within_the_honest_range(honest, seed, bad_value):
    rng = np.random.default_rng(seed)
    good = [{"w": rng.normal(size=5).astype(np.float32)} for _ in range(honest)]
    lo = np.min([u["w"] for u in good], axis=0)
    hi = np.max([u["w"] for u in good], axis=0)
    n_bad = (honest - 1) // 2  # a minority
    bad = [{"w": np.full(5, bad_value, np.float32)} for _ in range(n_bad)]
    everyone = good + bad
    med = coordinate_median(everyone)["w"]
    assert np.all(med >= lo - 1e-6) and np.all(med <= hi + 1e-6)
    trim = (n_bad + 0.5) / len(everyone)  # drops at least n_bad from each end
    if trim < 0.5:
        tm = trimmed_mean(everyone, trim)["w"]
        assert np.all(tm >= lo - 1e-5) and np.all(tm <= hi + 1e-5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_fedavg_of_identical_updates_is_that_update(n, seed):
    u = {"w": np.random.default_rng(seed).normal(size=7).astype(np.float32)}
    weights = list(np.random.default_rng(seed + 1).integers(1, 100, n))
    np.testing.assert_allclose(fedavg([u] * n, weights)["w"], u["w"], rtol=1e-6)
