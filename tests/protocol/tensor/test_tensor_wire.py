"""protocol.tensor.wire and the decoders' checks: hostile bytes with a *valid* CRC are still caught.

``forge`` builds tensors field by field and seals them with a correct checksum, so each test
reaches the check it is about instead of failing at the CRC.
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from typing import Callable

import numpy as np
import pytest
import zstandard

from protocol.compression import RAW, ZSTD, compress
from protocol.errors import (CodecError, DecompressionError, MalformedMessage, MessageTooLarge,
                             RemoteProtocolError, UnsupportedVersion)
from protocol.tensor import Codec, CodecSpec, decode_tensor, encode_tensor, read_header
from protocol.tensor.wire import HEADER_SIZE

F32, F64, I32, BOOL = 2, 3, 6, 12


def forge(codec: int, dtype: int, shape: tuple[int, ...], raw: bytes = b"", *, block: int = 0,
          scale: float = 0.0, k: int = 0, version: int = 1, magic: bytes = b"NT",
          reserved: int = 0, payload: bytes | None = None) -> bytes:
    body = struct.pack("<2sBBBBHIfI", magic, version, codec, dtype, len(shape), reserved, block,
                       scale, k)
    body += struct.pack(f"<{len(shape)}Q", *shape)
    body += compress(raw, sample_check=False) if payload is None else payload
    return body + struct.pack("<I", zlib.crc32(body))


def _peak(action: Callable[[], object], error: type[Exception]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(error):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_forged_valid_tensor_decodes() -> None:
    raw = np.array([1.0, 2.0, 3.0], dtype=np.float32).tobytes()
    shuffled = np.frombuffer(raw, np.uint8).reshape(3, 4).T.tobytes()
    np.testing.assert_array_equal(decode_tensor(forge(0, F32, (3,), shuffled)), [1, 2, 3])


def test_read_header_reports_the_fields() -> None:
    wire = encode_tensor(np.ones((4, 40), dtype=np.float64), CodecSpec(Codec.INT8, block_size=32))
    header, start = read_header(wire)
    assert (header.codec, header.dtype, header.shape, header.block_size, header.scale) == (
        Codec.INT8, np.dtype(np.float64), (4, 40), 32, pytest.approx(1 / 127, rel=1e-6))
    assert start == HEADER_SIZE + 16


@pytest.mark.parametrize("kwargs, error, message", [
    ({"magic": b"XX"}, MalformedMessage, "not a NovaCron tensor"),
    ({"version": 2}, UnsupportedVersion, "version 2"),
    ({"reserved": 1}, MalformedMessage, "reserved"),
])
def test_header_framing_errors(kwargs: dict[str, object], error: type[Exception],
                               message: str) -> None:
    with pytest.raises(error, match=message):
        decode_tensor(forge(0, F32, (1,), bytes(4), **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("codec, dtype, message", [
    (9, F32, "unknown tensor codec"), (0, 0, "unknown tensor dtype"),
    (0, 13, "unknown tensor dtype"), (2, I32, "float arrays"),
])
def test_unknown_or_incompatible_codec_and_dtype(codec: int, dtype: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_tensor(forge(codec, dtype, (1,), bytes(4), block=8 if codec == 2 else 0))


def test_too_many_dimensions() -> None:
    with pytest.raises(MalformedMessage, match="dimensions"):
        decode_tensor(forge(0, F32, (1,) * 33, bytes(4)))


def test_truncated_inputs_are_malformed() -> None:
    wire = encode_tensor(np.zeros((3, 3), dtype=np.float32))
    for cut in (0, 5, HEADER_SIZE, HEADER_SIZE + 9):
        with pytest.raises(RemoteProtocolError):
            decode_tensor(wire[:cut])


def test_huge_shape_is_rejected_before_allocating() -> None:
    wire = forge(0, F32, (1 << 32, 1 << 32, 1 << 32), bytes(4))
    assert _peak(lambda: decode_tensor(wire), MessageTooLarge) < 64 * 1024


def test_byte_cap_applies_to_the_decoded_dtype() -> None:
    wire = encode_tensor(np.zeros(1000, dtype=np.float64))
    with pytest.raises(MessageTooLarge, match="bytes"):
        decode_tensor(wire, max_elements=1000, max_bytes=7999)
    with pytest.raises(MessageTooLarge, match="elements"):
        decode_tensor(wire, max_elements=999)
    assert decode_tensor(wire, max_elements=1000, max_bytes=8000).size == 1000


@pytest.mark.parametrize("block", [0, 4, 100, 1 << 17])
def test_block_size_must_be_a_power_of_two_in_range(block: int) -> None:
    with pytest.raises(CodecError, match="block size"):
        decode_tensor(forge(2, F32, (8,), bytes(16), block=block))


def test_codecs_without_blocks_carry_none() -> None:
    with pytest.raises(CodecError, match="no block size"):
        decode_tensor(forge(0, F32, (1,), bytes(4), block=8))
    with pytest.raises(CodecError, match="no scale"):
        decode_tensor(forge(0, F32, (1,), bytes(4), scale=-0.0))
    with pytest.raises(CodecError, match="no k"):
        decode_tensor(forge(2, F32, (8,), bytes(9), block=8, k=1))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0, 3e36])
def test_reference_scale_must_keep_values_finite(scale: float) -> None:
    with pytest.raises(CodecError, match="reference scale"):
        decode_tensor(forge(2, F32, (8,), bytes(9), block=8, scale=scale))


def test_float16_output_has_a_tighter_scale_limit() -> None:
    forge(2, 1, (8,), bytes(9), block=8, scale=500.0)  # fine for float16
    with pytest.raises(CodecError, match="reference scale"):
        decode_tensor(forge(2, 1, (8,), bytes(9), block=8, scale=600.0))


@pytest.mark.parametrize("n, k", [(10, 11), (10, 0)])
def test_topk_count_must_fit(n: int, k: int) -> None:
    with pytest.raises(CodecError, match="TOPK keeps"):
        decode_tensor(forge(5, F32, (n,), bytes(8 * k), k=k))


def test_checksum_catches_damage() -> None:
    wire = bytearray(encode_tensor(np.arange(100, dtype=np.float32)))
    wire[HEADER_SIZE + 20] ^= 0x01
    with pytest.raises(CodecError, match="checksum"):
        decode_tensor(bytes(wire))


@pytest.mark.parametrize("raw_len", [399, 401, 0])
def test_payload_must_have_the_size_the_header_implies(raw_len: int) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_tensor(forge(0, F32, (100,), bytes(raw_len)))


def test_payload_bomb_is_capped_by_the_header_size() -> None:
    bomb = bytes((ZSTD,)) + zstandard.ZstdCompressor(level=19).compress(bytes(32 << 20))
    wire = forge(0, F32, (1000,), payload=bomb)
    assert _peak(lambda: decode_tensor(wire), DecompressionError) < 256 * 1024


def test_payload_longer_than_any_encoding_of_it_is_rejected() -> None:
    wire = forge(0, F32, (10,), payload=bytes((RAW,)) + bytes(40 + 200))
    with pytest.raises(MessageTooLarge, match="too long"):
        decode_tensor(wire)


def _int8_raw(q: list[int], code: int = 0) -> bytes:
    return bytes([code]) + np.array(q, dtype=np.int8).tobytes()


def test_int8_rejects_minus_128_and_dirty_padding() -> None:
    good = forge(2, F32, (6,), _int8_raw([1, -127, 0, 5, 0, 0, 0, 0]), block=8, scale=1.0)
    np.testing.assert_array_equal(decode_tensor(good), [1, -127, 0, 5, 0, 0])
    with pytest.raises(CodecError, match="-128"):
        decode_tensor(forge(2, F32, (6,), _int8_raw([-128, 0, 0, 0, 0, 0, 0, 0]), block=8,
                            scale=1.0))
    with pytest.raises(CodecError, match="padding"):
        decode_tensor(forge(2, F32, (6,), _int8_raw([0, 0, 0, 0, 0, 0, 3, 0]), block=8,
                            scale=1.0))


def test_int4_rejects_dirty_padding() -> None:
    # 6 elements, block 8: codes byte, sign byte, four nibble bytes. Nibble 8 means zero.
    clean = bytes([0, 0]) + bytes([0x98, 0x88, 0x88, 0x88])
    np.testing.assert_array_equal(decode_tensor(forge(3, F32, (6,), clean, block=8, scale=1.0)),
                                  [0, 1, 0, 0, 0, 0])
    dirty_values = bytes([0, 0]) + bytes([0x88, 0x88, 0x88, 0x89])
    with pytest.raises(CodecError, match="INT4 padding"):
        decode_tensor(forge(3, F32, (6,), dirty_values, block=8, scale=1.0))
    dirty_signs = bytes([0, 0b10]) + bytes([0x88] * 4)
    with pytest.raises(CodecError, match="scale-sign padding"):
        decode_tensor(forge(3, F32, (6,), dirty_signs, block=8, scale=1.0))


def test_sign1_rejects_dirty_padding() -> None:
    with pytest.raises(CodecError, match="SIGN1 padding"):
        decode_tensor(forge(4, F32, (6,), bytes([0, 0b1000_0000]), block=8, scale=1.0))


def _topk_raw(gaps: list[int], values: list[float]) -> bytes:
    g = np.array(gaps, dtype="<u4").view(np.uint8).reshape(-1, 4).T.tobytes()
    v = np.array(values, dtype="<f4").view(np.uint8).reshape(-1, 4).T.tobytes()
    return g + v


def test_topk_indices_and_values_are_checked() -> None:
    good = forge(5, F32, (10,), _topk_raw([2, 3], [1.5, -2.0]), k=2)
    np.testing.assert_array_equal(decode_tensor(good), [0, 0, 1.5, 0, 0, -2.0, 0, 0, 0, 0])
    with pytest.raises(CodecError, match="strictly increasing"):
        decode_tensor(forge(5, F32, (10,), _topk_raw([2, 0], [1.0, 1.0]), k=2))
    with pytest.raises(CodecError, match="out of range"):
        decode_tensor(forge(5, F32, (10,), _topk_raw([2, 8], [1.0, 1.0]), k=2))
    with pytest.raises(CodecError, match="out of range"):  # gaps that wrap a u32 sum
        decode_tensor(forge(5, F32, (10,), _topk_raw([0xFFFFFFFF, 0xFFFFFFFF], [1, 1]), k=2))
    with pytest.raises(CodecError, match="finite"):
        decode_tensor(forge(5, F32, (10,), _topk_raw([2, 3], [1.0, float("nan")]), k=2))


def test_bool_bytes_must_be_zero_or_one() -> None:
    with pytest.raises(CodecError, match="bool"):
        decode_tensor(forge(0, BOOL, (3,), bytes([0, 1, 2])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_memory_is_a_small_multiple_of_the_output(dtype: type) -> None:
    x = np.random.default_rng(2).standard_normal(1 << 18).astype(dtype)
    for codec in Codec:
        wire = encode_tensor(x, codec)
        tracemalloc.start()
        try:
            y = decode_tensor(wire, max_elements=x.size, max_bytes=x.nbytes)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert y.nbytes == x.nbytes
        assert peak <= 3 * x.nbytes, f"{codec.name} peaked at {peak / x.nbytes:.2f}x the output"
