"""protocol.tensor.feedback: nothing a lossy codec drops is lost, only delayed."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from protocol.errors import LocalProtocolError, MalformedMessage, MessageTooLarge
from protocol.tensor import Codec, CodecSpec, ErrorFeedback, decode_tensor, encode_tensor


@pytest.mark.parametrize("spec", [CodecSpec(Codec.SIGN1), CodecSpec(Codec.INT4),
                                  CodecSpec(Codec.TOPK, density=0.05)])
def test_received_sum_equals_sent_sum_minus_the_last_residual(spec: CodecSpec) -> None:
    rng = np.random.default_rng(7)
    feedback = ErrorFeedback()
    sent = np.zeros(1000)
    received = np.zeros(1000)
    for _ in range(30):
        g = rng.standard_normal(1000).astype(np.float32)
        sent += g
        received += decode_tensor(feedback.encode("layer1.weight", g, spec))
    residual = feedback.residual("layer1.weight")
    assert residual is not None and residual.dtype == np.float32
    np.testing.assert_allclose(received + residual, sent, atol=1e-3)


def test_feedback_makes_the_average_converge_where_plain_sign_does_not() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal(4096).astype(np.float32)
    feedback = ErrorFeedback()
    plain = decode_tensor(encode_tensor(x, Codec.SIGN1))
    total = np.zeros(x.size)
    errors = {}
    for rounds in range(1, 257):
        total += decode_tensor(feedback.encode("g", x, Codec.SIGN1))
        errors[rounds] = float(np.linalg.norm(total / rounds - x) / np.linalg.norm(x))
    assert np.linalg.norm(plain - x) / np.linalg.norm(x) > 0.5  # every plain round is this far
    # With feedback the residual grows slower than the rounds, so the average converges.
    assert errors[16] > errors[64] > errors[256]
    assert errors[256] < 0.05


def test_lossless_leaves_no_residual_and_names_are_independent() -> None:
    feedback = ErrorFeedback()
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    feedback.encode("a", x, Codec.LOSSLESS)
    feedback.encode("b", x, Codec.SIGN1)
    assert not feedback.residual("a").any()  # type: ignore[union-attr]
    assert feedback.residual("b").any()  # type: ignore[union-attr]
    assert feedback.names() == ["a", "b"]
    feedback.reset("b")
    assert feedback.names() == ["a"]
    feedback.reset()
    assert feedback.names() == []


def test_a_resized_tensor_starts_fresh() -> None:
    feedback = ErrorFeedback()
    feedback.encode("w", np.ones(64, dtype=np.float32) * 0.3, Codec.INT4)
    data = feedback.encode("w", np.ones(32, dtype=np.float32), Codec.LOSSLESS)
    np.testing.assert_array_equal(decode_tensor(data), np.ones(32))


def test_integer_arrays_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="float"):
        ErrorFeedback().encode("n", np.arange(5), Codec.LOSSLESS)


def test_state_round_trips_through_canonical_bytes() -> None:
    feedback = ErrorFeedback()
    rng = np.random.default_rng(9)
    for name in ("z", "a", "m"):
        feedback.encode(name, rng.standard_normal((8, 8)), Codec.INT4)
    data = feedback.to_bytes()
    restored = ErrorFeedback.from_bytes(data)
    assert restored.names() == ["a", "m", "z"]
    for name in restored.names():
        np.testing.assert_array_equal(restored.residual(name), feedback.residual(name))
    assert restored.to_bytes() == data


def test_saved_state_is_checked_like_untrusted_input() -> None:
    good = ErrorFeedback()
    good.encode("b", np.ones(4), Codec.SIGN1)
    good.encode("a", np.full(4, 0.5), Codec.SIGN1)
    entries = msgpack.unpackb(good.to_bytes())
    unsorted = msgpack.packb(dict(reversed(list(entries.items()))))
    with pytest.raises(MalformedMessage, match="canonical"):
        ErrorFeedback.from_bytes(unsorted)
    with pytest.raises(MalformedMessage, match="not msgpack"):
        ErrorFeedback.from_bytes(b"\xc1")
    with pytest.raises(MalformedMessage, match="names to bytes"):
        ErrorFeedback.from_bytes(msgpack.packb({"a": 1}))
    with pytest.raises(MalformedMessage, match="not float"):
        ErrorFeedback.from_bytes(msgpack.packb({"i": encode_tensor(np.arange(3))}))
    with pytest.raises(MessageTooLarge):
        ErrorFeedback.from_bytes(good.to_bytes(), max_elements=6)
