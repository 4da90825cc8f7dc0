"""protocol.tensor.codec: every codec round-trips within its documented bound, any shape/dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.protocol.tensor.tensor_bounds import check_quantized

from protocol.errors import LocalProtocolError
from protocol.tensor import (Codec, CodecSpec, decode_tensor, decode_tensor_with_header,
                             encode_tensor)

FLOATS = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
ALL_DTYPES = FLOATS + [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                             np.uint16, np.uint32, np.uint64, np.bool_)]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40)
BLOCKS = st.sampled_from([8, 16, 32, 128, 1024])


def _finite_arrays(dtype: np.dtype, limit: float | None = None) -> st.SearchStrategy[np.ndarray]:
    top = float(np.finfo(np.float32).max) if limit is None else limit
    top = min(top, float(np.finfo(dtype).max))
    width = {2: 16, 4: 32, 8: 64}[dtype.itemsize]
    elements = st.floats(-top, top, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(dtype, SHAPES, elements=elements)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@given(data=st.data(), dtype=st.sampled_from(ALL_DTYPES))
@settings(max_examples=150, deadline=None, derandomize=True)
def test_lossless_is_bit_exact_for_every_dtype(data: st.DataObject, dtype: np.dtype) -> None:
    x = data.draw(hnp.arrays(dtype, SHAPES))  # floats include NaN, inf, -0.0, subnormals
    y = decode_tensor(encode_tensor(x, Codec.LOSSLESS))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert _bits(y) == _bits(x)


def test_lossless_keeps_nan_payloads_infinities_and_negative_zero() -> None:
    special = np.array([0x7FC00001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 1],
                       dtype=np.uint32).view(np.float32)
    y = decode_tensor(encode_tensor(special))
    assert _bits(y) == _bits(special)


def test_lossless_takes_big_endian_and_strided_arrays() -> None:
    x = np.arange(60, dtype=">f8").reshape(6, 10)[:, ::3]
    y = decode_tensor(encode_tensor(x))
    assert y.shape == (6, 4) and y.dtype == np.float64
    np.testing.assert_array_equal(y, x)


def test_bfloat16_travels_as_its_uint16_bits() -> None:
    bits = np.array([0x3F80, 0xC000, 0x7FC0], dtype=np.uint16)  # 1.0, -2.0, NaN in bfloat16
    assert _bits(decode_tensor(encode_tensor(bits))) == _bits(bits)


@given(data=st.data(), dtype=st.sampled_from(FLOATS))
@settings(max_examples=120, deadline=None, derandomize=True)
def test_float16_rounds_to_nearest_half(data: st.DataObject, dtype: np.dtype) -> None:
    x = data.draw(_finite_arrays(dtype, limit=65504.0))
    y = decode_tensor(encode_tensor(x, Codec.FLOAT16))
    assert y.dtype == x.dtype and y.shape == x.shape
    source = x.astype(np.float64)
    error = np.abs(y.astype(np.float64) - source)
    assert np.all(error <= 2.0**-11 * np.abs(source) + 2.0**-25)


def test_float16_passes_infinities_and_nan_but_refuses_overflow() -> None:
    x = np.array([np.inf, -np.inf, np.nan, 1.5], dtype=np.float32)
    y = decode_tensor(encode_tensor(x, Codec.FLOAT16))
    assert np.isposinf(y[0]) and np.isneginf(y[1]) and np.isnan(y[2]) and y[3] == 1.5
    with pytest.raises(LocalProtocolError, match="65504"):
        encode_tensor(np.array([70000.0], dtype=np.float32), Codec.FLOAT16)


@pytest.mark.parametrize("codec", [Codec.INT8, Codec.INT4, Codec.SIGN1])
@given(data=st.data(), dtype=st.sampled_from(FLOATS), block=BLOCKS)
@settings(max_examples=100, deadline=None, derandomize=True)
def test_block_codecs_stay_within_their_bounds(codec: Codec, data: st.DataObject,
                                               dtype: np.dtype, block: int) -> None:
    x = data.draw(_finite_arrays(dtype))
    wire = encode_tensor(x, CodecSpec(codec, block_size=block))
    y = decode_tensor(wire)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.all(np.isfinite(y))
    check_quantized(x, wire, y)


@pytest.mark.parametrize("codec", [Codec.INT8, Codec.INT4, Codec.SIGN1])
def test_block_codecs_on_wide_dynamic_range(codec: Codec) -> None:
    # Blocks from 1e-30 to 1e30: the smallest fall below the scale grid's 2**-15.9 range and
    # must still be covered (decoded within their bound), just with a coarser step.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 32)) * np.logspace(-30, 30, 64)[:, None]).astype(np.float32)
    wire = encode_tensor(x, CodecSpec(codec, block_size=32))
    check_quantized(x, wire, decode_tensor(wire))


def test_int8_near_the_float32_maximum_stays_finite() -> None:
    top = np.finfo(np.float32).max
    x = np.array([top, -top, top / 3, 1.0] * 4, dtype=np.float32)
    wire = encode_tensor(x, Codec.INT8)
    y = decode_tensor(wire)
    assert np.all(np.isfinite(y))
    check_quantized(x, wire, y)


@pytest.mark.parametrize("codec", [Codec.INT8, Codec.INT4, Codec.SIGN1, Codec.TOPK])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_lossy_codecs_refuse_non_finite_values(codec: Codec, bad: float) -> None:
    x = np.ones(100, dtype=np.float32)
    x[37] = bad
    with pytest.raises(LocalProtocolError, match="finite"):
        encode_tensor(x, codec)


def test_float64_beyond_float32_range_is_refused_by_quantizers() -> None:
    with pytest.raises(LocalProtocolError, match="finite"):
        encode_tensor(np.array([1e300, 1.0]), Codec.INT8)


@pytest.mark.parametrize("codec", sorted(set(Codec) - {Codec.LOSSLESS}))
def test_lossy_codecs_refuse_integer_arrays(codec: Codec) -> None:
    with pytest.raises(LocalProtocolError, match="float"):
        encode_tensor(np.arange(10, dtype=np.int32), codec)


@given(data=st.data(), dtype=st.sampled_from(FLOATS),
       density=st.sampled_from([1e-6, 0.01, 0.1, 0.5, 1.0]))
@settings(max_examples=120, deadline=None, derandomize=True)
def test_topk_keeps_the_largest_exactly(data: st.DataObject, dtype: np.dtype,
                                        density: float) -> None:
    x = data.draw(_finite_arrays(dtype))
    wire = encode_tensor(x, CodecSpec(Codec.TOPK, density=density))
    header, y = decode_tensor_with_header(wire)
    assert y.dtype == x.dtype and y.shape == x.shape
    n = x.size
    assert header.k == (0 if n == 0 else min(n, max(1, math.ceil(density * n))))
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    kept = flat_y != 0
    np.testing.assert_array_equal(flat_y[kept], flat_x[kept])
    assert np.count_nonzero(kept) <= header.k
    dropped = np.abs(flat_x[~kept])
    if header.k and dropped.size and kept.any():
        assert dropped.max() <= np.abs(flat_x[kept]).min()


def test_topk_ties_keep_the_lowest_indices() -> None:
    x = np.array([1, 5, 5, 5, 5, 2], dtype=np.float32)
    y = decode_tensor(encode_tensor(x, CodecSpec(Codec.TOPK, density=0.5)))
    np.testing.assert_array_equal(y, [0, 5, 5, 5, 0, 0])


@pytest.mark.parametrize("codec", list(Codec))
def test_empty_and_scalar_arrays(codec: Codec) -> None:
    for x in (np.zeros((0, 7), dtype=np.float32), np.float32(2.5).reshape(())):
        y = decode_tensor(encode_tensor(x, codec))
        assert y.shape == x.shape and y.dtype == x.dtype


@pytest.mark.parametrize("codec", [Codec.INT8, Codec.INT4, Codec.SIGN1])
def test_zero_blocks_decode_to_zero(codec: Codec) -> None:
    x = np.zeros(300, dtype=np.float32)
    x[200:210] = 3.0
    y = decode_tensor(encode_tensor(x, CodecSpec(codec, block_size=64)))
    assert not y[:192].any() and not y[256:].any()


def test_quantization_quality_on_normal_data() -> None:
    """The size/error figures the benchmark reports, on a smaller array."""
    x = np.random.default_rng(11).standard_normal(1 << 18).astype(np.float32)
    raw = x.nbytes

    def measure(spec: CodecSpec | Codec) -> tuple[float, float]:
        wire = encode_tensor(x, spec)
        y = decode_tensor(wire)
        return raw / len(wire), float(np.linalg.norm(y - x) / np.linalg.norm(x))

    assert measure(Codec.LOSSLESS) == (pytest.approx(1.19, abs=0.03), 0.0)
    ratio, error = measure(Codec.FLOAT16)
    assert ratio > 2.0 and error < 1e-3
    ratio, error = measure(Codec.INT8)
    assert ratio > 4.0 and error < 0.01
    ratio, error = measure(Codec.INT4)
    assert ratio > 7.0 and error < 0.10
    ratio, error = measure(Codec.SIGN1)
    assert ratio > 28 and error == pytest.approx(math.sqrt(1 - 2 / math.pi), abs=0.02)


@pytest.mark.parametrize("spec, message", [
    (CodecSpec(Codec.INT8, block_size=100), "power of two"),
    (CodecSpec(Codec.INT8, block_size=4), "power of two"),
    (CodecSpec(Codec.LOSSLESS, block_size=64), "no block size"),
    (CodecSpec(Codec.TOPK, density=1.5), "density"),
    (CodecSpec(Codec.INT4, density=0.1), "no density"),
    (CodecSpec(Codec.INT8, level=0), "level"),
])
def test_invalid_specs_are_our_bug(spec: CodecSpec, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        encode_tensor(np.ones(64, dtype=np.float32), spec)


def test_unsupported_dtypes_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="not supported"):
        encode_tensor(np.ones(3, dtype=np.complex64))
    with pytest.raises(LocalProtocolError, match="not supported"):
        encode_tensor(np.array(["a"]))


def test_spec_labels() -> None:
    assert CodecSpec(Codec.INT4).describe() == "int4/16"
    assert CodecSpec(Codec.TOPK).describe() == "topk/0.01"
    assert CodecSpec(Codec.FLOAT16).describe() == "float16"


def test_encoding_is_deterministic() -> None:
    x = np.random.default_rng(3).laplace(size=5000).astype(np.float32)
    for codec in Codec:
        assert encode_tensor(x, codec) == encode_tensor(x.copy(), codec)
