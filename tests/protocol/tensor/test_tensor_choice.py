"""protocol.tensor.choice: fast links keep precision, slow links cut bits, the table explains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocol.errors import LocalProtocolError
from protocol.tensor import Codec, CodecSpec, choose_codec, decode_tensor, encode_tensor
from protocol.tensor.choice import relative_error

TEN_GBIT = 10e9 / 8
ONE_MBIT = 1e6 / 8


@pytest.fixture(scope="module")
def gradients() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    n = 1 << 20  # 8x the sample, so the estimates are extrapolated
    return {"normal": rng.standard_normal(n).astype(np.float32),
            "laplace": rng.laplace(size=n).astype(np.float32)}


@pytest.mark.parametrize("kind", ["normal", "laplace"])
def test_ten_gigabit_link_keeps_precision(gradients: dict[str, np.ndarray], kind: str) -> None:
    choice = choose_codec(gradients[kind], bandwidth=TEN_GBIT, latency=0.5e-3, time_budget=1.0,
                          error_budget=0.01)
    assert choice.spec.codec in (Codec.LOSSLESS, Codec.FLOAT16)


@pytest.mark.parametrize("kind", ["normal", "laplace"])
def test_one_megabit_link_picks_a_low_bit_codec(gradients: dict[str, np.ndarray],
                                                 kind: str) -> None:
    choice = choose_codec(gradients[kind], bandwidth=ONE_MBIT, latency=0.05, time_budget=1.0,
                          error_budget=0.1)
    assert choice.spec.codec in (Codec.INT4, Codec.SIGN1, Codec.TOPK)
    rewards = {row.spec.codec: row.reward for row in choice.estimates}
    assert rewards[choice.spec.codec] == max(rewards.values())
    assert rewards[Codec.LOSSLESS] < rewards[Codec.INT8] < rewards[choice.spec.codec]


@pytest.mark.parametrize("kind", ["normal", "laplace"])
def test_estimates_match_the_real_encoding(gradients: dict[str, np.ndarray], kind: str) -> None:
    x = gradients[kind]
    choice = choose_codec(x, bandwidth=ONE_MBIT, latency=0.0, time_budget=1.0, error_budget=0.1)
    for row in choice.estimates:
        wire = encode_tensor(x, row.spec)
        actual_error = relative_error(x, decode_tensor(wire))
        assert row.encoded_bytes == pytest.approx(len(wire), rel=0.10), row.spec.describe()
        assert row.rel_error == pytest.approx(actual_error, rel=0.05, abs=1e-9)
        assert row.transfer_time == pytest.approx(row.encoded_bytes / ONE_MBIT)


def test_small_arrays_get_exact_figures() -> None:
    x = np.random.default_rng(4).standard_normal((50, 30)).astype(np.float32)
    choice = choose_codec(x, bandwidth=1e6, latency=0.0, time_budget=1.0, error_budget=0.1)
    for row in choice.estimates:
        wire = encode_tensor(x, row.spec)
        assert row.encoded_bytes == len(wire)
        assert row.rel_error == pytest.approx(relative_error(x, decode_tensor(wire)))


def test_reward_is_the_formula() -> None:
    x = np.random.default_rng(5).standard_normal(1000).astype(np.float32)
    choice = choose_codec(x, bandwidth=2e4, latency=0.01, time_budget=0.5, error_budget=0.2,
                          w1=0.3, w2=0.7)
    for row in choice.estimates:
        seconds = 0.01 + row.encoded_bytes / 2e4
        assert row.transfer_time == pytest.approx(seconds)
        assert row.reward == pytest.approx(-0.3 * seconds / 0.5 - 0.7 * row.rel_error / 0.2)


def test_weights_decide_the_extremes() -> None:
    x = np.random.default_rng(6).standard_normal(5000).astype(np.float32)
    link = dict(bandwidth=1e5, latency=0.0, time_budget=1.0, error_budget=0.1)
    assert choose_codec(x, w1=0.0, w2=1.0, **link).spec.codec is Codec.LOSSLESS
    only_time = choose_codec(x, w1=1.0, w2=0.0, **link)
    sizes = {row.spec.codec: row.encoded_bytes for row in only_time.estimates}
    assert sizes[only_time.spec.codec] == min(sizes.values())


def test_integer_arrays_can_only_go_lossless() -> None:
    choice = choose_codec(np.arange(1000), bandwidth=ONE_MBIT, latency=0.0, time_budget=1.0,
                          error_budget=0.1)
    assert choice.spec.codec is Codec.LOSSLESS
    unusable = [row for row in choice.estimates if not row.usable]
    assert len(unusable) == len(Codec) - 1
    assert all("float" in row.note and row.reward == -math.inf for row in unusable)


def test_non_finite_values_allow_only_lossless_and_float16() -> None:
    x = np.random.default_rng(7).standard_normal(2000).astype(np.float32)
    x[10] = np.nan
    choice = choose_codec(x, bandwidth=ONE_MBIT, latency=0.0, time_budget=1.0, error_budget=0.1)
    usable = {row.spec.codec for row in choice.estimates if row.usable}
    assert usable == {Codec.LOSSLESS, Codec.FLOAT16}
    assert choice.spec.codec is Codec.FLOAT16


def test_big_endian_arrays_get_the_same_table() -> None:
    x = np.random.default_rng(8).standard_normal(3000)
    link = dict(bandwidth=1e5, latency=0.0, time_budget=1.0, error_budget=0.1)
    assert choose_codec(x.astype(">f8"), **link).table() == choose_codec(x, **link).table()


def test_float16_overflow_is_explained() -> None:
    x = np.array([1.0, 1e6], dtype=np.float32)
    choice = choose_codec(x, bandwidth=ONE_MBIT, latency=0.0, time_budget=1.0, error_budget=0.1)
    row = next(r for r in choice.estimates if r.spec.codec is Codec.FLOAT16)
    assert not row.usable and "overflow float16" in row.note


def test_table_is_json_ready_and_in_candidate_order() -> None:
    x = np.ones(100, dtype=np.float32)
    candidates = [CodecSpec(Codec.INT8, block_size=32), CodecSpec(Codec.LOSSLESS)]
    choice = choose_codec(x, bandwidth=1e6, latency=0.0, time_budget=1.0, error_budget=0.1,
                          candidates=candidates)
    assert [row["codec"] for row in choice.table()] == ["int8/32", "lossless"]
    assert set(choice.table()[0]) == {"codec", "usable", "encoded_bytes", "rel_error",
                                      "transfer_time_s", "reward", "note"}


@pytest.mark.parametrize("kwargs", [
    dict(bandwidth=0.0), dict(time_budget=0.0), dict(error_budget=-1.0), dict(latency=-1.0),
    dict(w1=-0.5), dict(candidates=[]),
])
def test_invalid_arguments_are_our_bug(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(bandwidth=1e6, latency=0.0, time_budget=1.0, error_budget=0.1)
    args.update(kwargs)
    with pytest.raises(LocalProtocolError):
        choose_codec(np.ones(10, dtype=np.float32), **args)  # type: ignore[arg-type]
