import numpy as np
import pytest

from daemon.fl import FLOAT32, INT8, Budgets, FLError, choose_level, decode_update, encode_update
from daemon.fl.uplink import wire_codec
from protocol.errors import RemoteProtocolError
from protocol.tensor import Codec, CodecSpec, ErrorFeedback


def _update(seed=0, n=4096):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(0, 0.01, (n // 64, 64)).astype(np.float32),
            "b": rng.normal(0, 0.01, 64).astype(np.float32)}


def test_round_trip_and_determinism():
    u = _update()
    for spec in (FLOAT32, INT8, CodecSpec(Codec.INT4)):
        one, two = encode_update(u, spec), encode_update(u, spec)
        assert one == two
        back = decode_update(one, u)
        assert sorted(back) == ["b", "w"] and back["w"].shape == u["w"].shape
    assert decode_update(encode_update(u, FLOAT32), u)["w"].tobytes() == u["w"].tobytes()
    assert wire_codec(encode_update(u, INT8)) == "int8"


def test_int8_is_a_quarter_of_float32():
    u = _update()
    assert len(encode_update(u, INT8)) < 0.3 * len(encode_update(u, FLOAT32))


def test_slow_links_get_fewer_bits():
    u = _update(n=16384)
    budgets = Budgets(time_s=0.1, error=0.5)
    fast = choose_level(u, bandwidth=50e6, rtt=0.05, budgets=budgets).spec
    slow = choose_level(u, bandwidth=50e3, rtt=0.05, budgets=budgets).spec
    bits = {Codec.FLOAT16: 16, Codec.INT8: 8, Codec.INT4: 4, Codec.SIGN1: 1}
    assert bits[slow.codec] < bits[fast.codec]


def test_error_feedback_loses_nothing_over_rounds():
    rng = np.random.default_rng(1)
    ef = ErrorFeedback()
    like = {"w": np.zeros(1024, np.float32)}
    sent = np.zeros(1024)
    total = np.zeros(1024)
    for _ in range(20):
        x = {"w": rng.normal(0, 1, 1024).astype(np.float32)}
        total += x["w"]
        sent += decode_update(encode_update(x, CodecSpec(Codec.INT4), ef), like)["w"]
    # everything not yet delivered is the last residual alone
    np.testing.assert_allclose(total - sent, ef.residual("w"), atol=1e-4)
    assert np.linalg.norm(total - sent) < 0.2 * np.linalg.norm(x["w"])


def test_hostile_bytes_are_rejected():
    u = _update()
    good = encode_update(u, INT8)
    for bad in (b"", b"\x81\xa1w\xc4\x01x", good[:-3], b"\xc1" * 10):
        with pytest.raises(RemoteProtocolError):
            decode_update(bad, u)
    wrong_shape = encode_update({"w": np.zeros((3, 64), np.float32), "b": u["b"]}, INT8)
    with pytest.raises(RemoteProtocolError, match="shape"):
        decode_update(wrong_shape, u)
    with pytest.raises(RemoteProtocolError, match="cap"):
        decode_update(b"\x00" * (10 << 20), u)
    missing = encode_update({"w": u["w"]}, INT8)
    with pytest.raises(RemoteProtocolError, match="names"):
        decode_update(missing, u)


def test_budgets_must_be_positive():
    with pytest.raises(FLError):
        Budgets(time_s=0, error=0.1)
