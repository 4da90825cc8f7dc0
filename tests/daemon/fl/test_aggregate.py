import numpy as np
import pytest

from daemon.fl import FLError, Rule, aggregate, coordinate_median, fedavg, trimmed_mean
from daemon.fl.aggregate import prox_gradient


def _u(*values):
    return {"w": np.array(values, dtype=np.float32)}


def test_fedavg_weights_by_sample_count():
    out = fedavg([_u(0.0, 2.0), _u(4.0, 2.0)], [3, 1])
    assert out["w"].dtype == np.float32
    np.testing.assert_allclose(out["w"], [1.0, 2.0])


def test_fedavg_refuses_bad_weights():
    with pytest.raises(FLError, match="weights"):
        fedavg([_u(1.0)], [0])
    with pytest.raises(FLError, match="weights"):
        fedavg([_u(1.0), _u(2.0)], [1])


def test_median_and_trimmed_mean_ignore_one_outlier():
    honest = [_u(1.0, -1.0), _u(1.1, -0.9), _u(0.9, -1.1), _u(1.05, -1.0)]
    poisoned = honest + [_u(1e6, -1e6)]
    assert np.abs(coordinate_median(poisoned)["w"] - [1.05, -1.0]).max() < 1e-6
    trimmed = trimmed_mean(poisoned, 0.2)["w"]
    assert np.abs(trimmed - [1.05, -1.0]).max() < 0.05
    assert np.abs(fedavg(poisoned)["w"]).max() > 1e5  # the mean has no defence


def test_even_count_median_is_mean_of_middle_two():
    np.testing.assert_allclose(coordinate_median([_u(0.0), _u(1.0), _u(3.0), _u(10.0)])["w"], [2.0])


def test_trim_bounds():
    with pytest.raises(FLError, match="trim"):
        trimmed_mean([_u(1.0)], 0.5)
    np.testing.assert_allclose(trimmed_mean([_u(1.0), _u(3.0)], 0.0)["w"], [2.0])


def test_rule_parse_names_the_choices():
    assert Rule.parse("trimmed_mean") is Rule.TRIMMED_MEAN
    with pytest.raises(FLError, match="fedavg, fedprox, median, trimmed_mean"):
        Rule.parse("mean")


def test_fedprox_aggregates_as_fedavg_and_pulls_towards_global():
    ups = [_u(1.0), _u(3.0)]
    np.testing.assert_allclose(aggregate(Rule.FEDPROX, ups)["w"], aggregate(Rule.FEDAVG, ups)["w"])
    g = prox_gradient({"w": np.array([2.0], np.float32)}, {"w": np.array([1.0], np.float32)}, 0.5)
    np.testing.assert_allclose(g["w"], [0.5])
    with pytest.raises(FLError, match="mu"):
        prox_gradient(_u(1.0), _u(1.0), -1)


def test_aggregation_is_deterministic_bytes():
    rng = np.random.default_rng(3)
    ups = [{"a": rng.normal(size=(7, 5)).astype(np.float32)} for _ in range(6)]
    for rule in Rule:
        one, two = aggregate(rule, ups), aggregate(rule, [dict(u) for u in ups])
        assert one["a"].tobytes() == two["a"].tobytes()
