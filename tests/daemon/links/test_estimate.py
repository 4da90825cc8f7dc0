import math

import numpy as np

from daemon.links import LinkTable
from daemon.links.estimate import FORGET_AFTER, MAX_PEERS


def test_learns_a_steady_link_and_narrows():
    t = LinkTable()
    t.rtt("p", 0.1, 0)
    rng = np.random.default_rng(0)
    for i in range(30):
        bw = 2e6 * math.exp(rng.normal(0, 0.2))
        t.transfer("p", 1_000_000, 0.1 + 1_000_000 / bw, float(i))
    p = t.predict("p", 1_000_000, 30.0)
    assert p.measured
    assert abs(math.log(p.bandwidth / 2e6)) < 0.2
    assert p.seconds == pytest_approx(0.1 + 1_000_000 / p.bandwidth)
    assert p.log_sd < 0.5
    assert t.bandwidth("p", 30.0) < p.bandwidth  # conservative


def pytest_approx(x):
    import pytest
    return pytest.approx(x, rel=1e-9)


def test_unknown_peer_gets_the_prior_and_uncertainty_grows_with_age():
    t = LinkTable()
    assert not t.predict("x", 10, 0).measured
    t.transfer("a", 1 << 20, 1.0, 0)
    t.transfer("a", 1 << 20, 1.0, 1)
    prior = t.predict("x", 0, 1)
    assert prior.bandwidth == t.predict("a", 0, 1).bandwidth  # median of known links
    assert t.predict("a", 0, 3600 * 5).log_sd > t.predict("a", 0, 2).log_sd


def test_small_and_bad_samples_are_ignored_and_stale_entries_forgotten():
    t = LinkTable()
    t.transfer("a", 100, 0.5, 0)
    t.transfer("a", 1 << 20, float("nan"), 0)
    t.transfer("a", 1 << 20, -1, 0)
    assert not t.predict("a", 0, 0).measured
    t.transfer("a", 1 << 20, 1.0, 0)
    assert t.expire(FORGET_AFTER + 1) == ["a"]


def test_table_is_bounded():
    t = LinkTable()
    for i in range(MAX_PEERS + 10):
        t.rtt(i, 0.1, float(i))
    assert len(t.peers()) == MAX_PEERS
    assert 0 not in t.peers()


def test_probes_are_wanted_until_the_link_is_fitted_and_again_when_it_is_stale() -> None:
    from daemon.links.estimate import FIT_SAMPLES, PROBE_STALE_S

    table = LinkTable()
    assert table.wants_samples("w", 0.0)
    for k, n in enumerate((1_000, 60_000, 1_000)):
        table.observe("w", n, 0.05 + n / 125e3, 1.0 + k)
        assert table.wants_samples("w", 5.0)  # not yet fitted (3 transfers)
    table.observe("w", 60_000, 0.05 + 60_000 / 125e3, 4.0)
    assert table.fit("w") is not None and not table.wants_samples("w", 5.0)
    assert table.wants_samples("w", 4.0 + PROBE_STALE_S + 1)
    # one size only can never be fitted: probes stop after FIT_SAMPLES tries all the same
    for k in range(FIT_SAMPLES):
        assert table.wants_samples("same", float(k))
        table.observe("same", 5_000, 0.1, float(k))
    assert table.fit("same") is None and not table.wants_samples("same", float(FIT_SAMPLES))
