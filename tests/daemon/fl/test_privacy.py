import math

import numpy as np
import pytest

from daemon.fl import FLError, clip, epsilon, noisy_mean
from daemon.fl.params import norm
from daemon.fl.privacy import rdp_gaussian


def test_clip_bounds_the_norm_and_keeps_small_updates():
    big = {"w": np.full(100, 1.0, np.float32)}
    assert norm(clip(big, 1.0)) == pytest.approx(1.0, rel=1e-5)
    small = {"w": np.full(4, 0.1, np.float32)}
    assert clip(small, 1.0)["w"].tobytes() == small["w"].tobytes()
    with pytest.raises(FLError):
        clip(small, 0)


def test_noisy_mean_noise_has_the_stated_scale():
    ups = [{"w": np.zeros(20000, np.float32)} for _ in range(4)]
    out = noisy_mean(ups, max_norm=2.0, noise_multiplier=1.5, rng=np.random.default_rng(0))
    assert np.std(out["w"]) == pytest.approx(1.5 * 2.0 / 4, rel=0.03)


def test_rdp_matches_closed_forms():
    # no sampling: a / (2 z^2)
    assert rdp_gaussian(1.0, 2.0, 8) == pytest.approx(8 / 8)
    # order 2, any q: log(1 + q^2 (e^{1/z^2} - 1))
    q, z = 0.1, 1.3
    assert rdp_gaussian(q, z, 2) == pytest.approx(math.log1p(q * q * math.expm1(1 / z ** 2)))
    # sampling only helps
    assert rdp_gaussian(0.05, 1.0, 16) < rdp_gaussian(1.0, 1.0, 16)


def test_epsilon_grows_with_rounds_and_falls_with_noise():
    e10 = epsilon(rounds=10, noise_multiplier=1.0, delta=1e-5)
    assert 0 < e10 < epsilon(rounds=100, noise_multiplier=1.0, delta=1e-5)
    assert epsilon(rounds=10, noise_multiplier=4.0, delta=1e-5) < e10
    assert epsilon(rounds=0, noise_multiplier=1.0, delta=1e-5) == 0.0
    assert epsilon(rounds=1, noise_multiplier=0.0, delta=1e-5) == math.inf
    # a known value: one round of the Gaussian mechanism, z = 1, delta = 1e-5, via RDP,
    # is min_a a/2 + log(1e5)/(a-1) ~= 5.3 (the analytic Gaussian gives ~4.4; RDP is looser)
    assert epsilon(rounds=1, noise_multiplier=1.0, delta=1e-5) == pytest.approx(
        min(a / 2 + math.log(1e5) / (a - 1) for a in range(2, 65)))
