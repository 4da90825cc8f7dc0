"""protocol.compression: round trips, the raw fallback, bombs that must fail before allocating."""

from __future__ import annotations

import random
import struct
import tracemalloc
from typing import Callable

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.compression import (MAX_LEVEL, MIN_LEVEL, RAW, ZSTD, compress, decompress,
                                  looks_compressible)
from protocol.errors import DecompressionError, LocalProtocolError, RemoteProtocolError

MiB = 1 << 20


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _peak_bytes(action: Callable[[], object]) -> int:
    """Peak Python-heap allocation while running ``action`` (it is expected to raise)."""
    tracemalloc.start()
    try:
        with pytest.raises(DecompressionError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A real ~1 KiB zstd frame that expands to 32 MiB of zeros."""
    frame = zstandard.ZstdCompressor(level=19).compress(bytes(32 * MiB))
    assert len(frame) <= 1100
    return bytes((ZSTD,)) + frame


@given(data=st.binary(max_size=4096), level=st.integers(MIN_LEVEL, MAX_LEVEL),
       sample_check=st.booleans())
@settings(max_examples=150, deadline=None, derandomize=True)
def test_round_trip_any_bytes(data: bytes, level: int, sample_check: bool) -> None:
    packed = compress(data, level, sample_check=sample_check)
    assert decompress(packed, max_size=len(data)) == data


def test_compressible_data_uses_zstd_and_shrinks() -> None:
    data = b"novacron task result line\n" * 4000
    packed = compress(data)
    assert packed[0] == ZSTD
    assert len(packed) < len(data) // 20
    assert decompress(packed, max_size=len(data)) == data


def test_random_data_is_sent_raw_after_a_sample_test() -> None:
    data = _random_bytes(seed=1, size=200_000)
    assert not looks_compressible(data)
    packed = compress(data)
    assert packed[0] == RAW and packed[1:] == data


def test_sample_sees_every_part_of_the_input() -> None:
    # Random first half, zeros second half: a prefix-only sample would call it incompressible.
    data = _random_bytes(seed=2, size=100_000) + bytes(100_000)
    assert looks_compressible(data)
    assert compress(data)[0] == ZSTD


def test_small_gains_are_kept_only_without_the_sample_check() -> None:
    # Bytes like int8-quantized gradients: zstd saves ~4%, under the 1.05 the sample asks for.
    rng = random.Random(3)
    data = bytes(round(rng.gauss(0, 50)) & 0xFF for _ in range(200_000))
    assert compress(data)[0] == RAW
    full = compress(data, sample_check=False)
    assert full[0] == ZSTD and len(full) < len(data)
    assert decompress(full, max_size=len(data)) == data


def test_short_inputs_are_raw() -> None:
    assert compress(b"") == bytes((RAW,))
    assert compress(b"\x00" * 10) == bytes((RAW,)) + b"\x00" * 10


@pytest.mark.parametrize("level", [0, MAX_LEVEL + 1, -5])
def test_bad_level_is_our_bug(level: int) -> None:
    with pytest.raises(LocalProtocolError):
        compress(b"x" * 100, level)


def test_one_kib_bomb_fails_before_allocating(bomb: bytes) -> None:
    peak = _peak_bytes(lambda: decompress(bomb, max_size=MiB))
    assert peak < 256 * 1024  # nothing near the 32 MiB it would expand to, nor the 1 MiB cap


def test_bomb_within_a_large_enough_cap_decodes(bomb: bytes) -> None:
    assert decompress(bomb, max_size=32 * MiB) == bytes(32 * MiB)


def test_frame_that_lies_small_about_its_size_is_rejected(bomb: bytes) -> None:
    # Byte 5 of the frame (after our method byte): 4-byte content size, little-endian.
    lying = bomb[:7] + struct.pack("<I", 1000) + bomb[11:]
    assert zstandard.get_frame_parameters(lying[1:]).content_size == 1000
    peak = _peak_bytes(lambda: decompress(lying, max_size=MiB))
    assert peak < 256 * 1024


def test_frame_claiming_gigabytes_is_rejected_by_its_header(bomb: bytes) -> None:
    huge = bomb[:7] + struct.pack("<I", 0xFFFFFFFF) + bomb[11:]
    with pytest.raises(DecompressionError, match="over the cap"):
        decompress(huge, max_size=MiB)


def test_frame_without_a_content_size_is_rejected() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    body = frame.compress(b"a" * 1000) + frame.flush()
    with pytest.raises(DecompressionError, match="does not declare"):
        decompress(bytes((ZSTD,)) + body, max_size=MiB)


def test_frame_with_a_huge_window_is_rejected() -> None:
    params = zstandard.ZstdCompressionParameters(window_log=25, compression_level=1)
    body = zstandard.ZstdCompressor(compression_params=params).compress(bytes(40 * MiB))
    with pytest.raises(DecompressionError, match="window"):
        decompress(bytes((ZSTD,)) + body, max_size=64 * MiB)


def test_trailing_bytes_after_the_frame_are_rejected() -> None:
    packed = compress(b"abc" * 1000)
    with pytest.raises(DecompressionError, match="unused data"):
        decompress(packed + b"\x00", max_size=MiB)


def test_empty_zstd_frame_is_rejected() -> None:
    body = zstandard.ZstdCompressor().compress(b"")
    with pytest.raises(DecompressionError, match="0 bytes"):
        decompress(bytes((ZSTD,)) + body, max_size=MiB)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\x07abc", "unknown compression method"),
    (b"\x00" + b"x" * 11, "over the cap"),
    (b"\x01not a frame", "not a zstd frame"),
])
def test_malformed_inputs_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(DecompressionError, match=message):
        decompress(data, max_size=10)


def test_corrupt_frame_body_is_a_decompression_error() -> None:
    packed = bytearray(compress(bytes(range(256)) * 200))
    packed[len(packed) // 2] ^= 0xFF
    packed[len(packed) // 2 + 1] ^= 0x55
    try:
        out = decompress(bytes(packed), max_size=MiB)
    except DecompressionError:
        return
    assert out != bytes(range(256)) * 200  # if zstd cannot tell, the data still changed


@given(data=st.binary(max_size=2048))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        decompress(data, max_size=4096)
    except RemoteProtocolError:
        pass


@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 8))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_mutated_frames_raise_only_protocol_errors(seed: int, flips: int) -> None:
    rng = random.Random(seed)
    packed = bytearray(compress(b"gradient shard " * 300, level=rng.randint(1, 5)))
    for _ in range(flips):
        packed[rng.randrange(len(packed))] = rng.randrange(256)
    try:
        decompress(bytes(packed), max_size=8192)
    except RemoteProtocolError:
        pass
