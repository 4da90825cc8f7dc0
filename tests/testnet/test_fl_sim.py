"""The FL simulation: training works, the codecs save what they claim, a seed replays a run."""

import pytest

pytest.importorskip("sklearn", reason="the FL simulation trains on scikit-learn's digits")

from testnet.fl_sim import Config, run  # noqa: E402

SHORT = dict(rounds=8, clients=10, per_round=5, seed=5)


def _bytes(result):
    return sum(r["up_bytes"] + r["probe_bytes"] for r in result["rows"])


def test_training_learns_and_adaptive_sends_a_fraction_of_float32():
    f32 = run(Config(mode="float32", **SHORT))
    ada = run(Config(mode="adaptive", **SHORT))
    acc = [r["accuracy"] for r in f32["rows"]]
    assert acc[-1] > acc[0] + 0.2, f"seed {SHORT['seed']}: accuracy {acc}"
    assert _bytes(ada) < 0.4 * _bytes(f32)
    assert abs(ada["rows"][-1]["accuracy"] - f32["rows"][-1]["accuracy"]) < 0.05
    assert all(sum(r["codecs"].values()) == r["selected"] for r in ada["rows"])


def test_a_seed_replays_the_run():
    one = run(Config(mode="adaptive", selection="phi", churn=0.2, **SHORT))
    two = run(Config(mode="adaptive", selection="phi", churn=0.2, **SHORT))
    assert one["rows"] == two["rows"]
    assert sum(r["lost"] for r in one["rows"]) > 0


def test_dp_run_reports_epsilon():
    out = run(Config(mode="int8", dp_clip=1.0, dp_noise=1.0, **SHORT))
    assert 0 < out["epsilon"] < float("inf")
