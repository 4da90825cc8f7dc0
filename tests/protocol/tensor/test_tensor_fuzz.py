"""Every decoder in ``protocol.tensor.DECODERS`` raises only protocol errors on hostile bytes.

Three kinds of input: arbitrary bytes; valid encodings with bytes flipped, cut or inserted and
the CRC *recomputed* (otherwise the checksum would stop nearly every mutation at the door and
the payload checks would never run); and forged headers with arbitrary fields over arbitrary
payloads, also with a valid CRC.

The normal suite runs a few hundred examples per property. For a long run:
``NOVACRON_FUZZ_EXAMPLES=10000 scripts/test.sh tests/protocol/tensor/test_tensor_fuzz.py``.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.compression import compress
from protocol.errors import RemoteProtocolError
from protocol.tensor import DECODERS, Codec, CodecSpec, ErrorFeedback, encode_tensor

EXAMPLES = int(os.environ.get("NOVACRON_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _feed_all(data: bytes) -> None:
    for name, decode in DECODERS.items():
        try:
            decode(data)
        except RemoteProtocolError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point is to name what escaped
            raise AssertionError(f"{name} leaked {type(exc).__name__}: {exc}") from exc


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@st.composite
def _valid_encodings(draw: st.DrawFn) -> bytes:
    codec = draw(st.sampled_from(list(Codec)))
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    x = (rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 100.0]))).astype(dtype)
    if draw(st.booleans()):
        x = x.reshape(-1, 1) if n else x.reshape(0, 3)
    block = draw(st.sampled_from([8, 16, 64])) if codec in (Codec.INT8, Codec.INT4,
                                                           Codec.SIGN1) else 0
    density = draw(st.sampled_from([0.01, 0.3, 1.0])) if codec is Codec.TOPK else 0.0
    return encode_tensor(x, CodecSpec(codec, block_size=block, density=density))


@given(data=st.binary(max_size=512))
@FUZZ
def test_arbitrary_bytes(data: bytes) -> None:
    _feed_all(data)


@given(wire=_valid_encodings(), edits=st.lists(
    st.tuples(st.sampled_from(["flip", "set", "cut", "insert"]), st.integers(0, 10**6),
              st.integers(0, 255)), min_size=1, max_size=4))
@FUZZ
def test_mutated_encodings_with_a_valid_checksum(wire: bytes,
                                                 edits: list[tuple[str, int, int]]) -> None:
    body = bytearray(wire[:-4])
    for kind, where, value in edits:
        at = where % (len(body) + 1)
        if kind == "flip" and at < len(body):
            body[at] ^= 1 << (value % 8)
        elif kind == "set" and at < len(body):
            body[at] = value
        elif kind == "cut":
            del body[at:at + 1 + value % 16]
        elif kind == "insert":
            body[at:at] = bytes([value]) * (1 + value % 4)
    _feed_all(_reseal(bytes(body)))


@given(codec=st.integers(0, 7), dtype=st.integers(0, 13), shape=st.lists(st.integers(0, 70),
       max_size=3), block=st.sampled_from([0, 8, 16, 1 << 16, 3]),
       scale=st.floats(width=32) | st.sampled_from([0.0, 1.0, 1e-40]), k=st.integers(0, 80),
       raw=st.binary(max_size=600), zstd=st.booleans())
@FUZZ
def test_forged_headers_over_arbitrary_payloads(codec: int, dtype: int, shape: list[int],
                                                block: int, scale: float, k: int, raw: bytes,
                                                zstd: bool) -> None:
    body = struct.pack("<2sBBBBHIfI", b"NT", 1, codec, dtype, len(shape), 0, block, scale, k)
    body += struct.pack(f"<{len(shape)}Q", *shape)
    body += compress(raw, sample_check=False) if zstd else b"\x00" + raw
    _feed_all(_reseal(body))


@given(seed=st.integers(0, 2**32 - 1), edits=st.lists(st.tuples(st.integers(0, 10**6),
                                                                 st.integers(0, 255)),
                                                       min_size=1, max_size=3))
@FUZZ
def test_mutated_error_feedback_state(seed: int, edits: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(seed)
    state = ErrorFeedback()
    for name in ("a", "b"):
        state.encode(name, rng.standard_normal(rng.integers(1, 40)), Codec.SIGN1)
    data = bytearray(state.to_bytes())
    for where, value in edits:
        data[where % len(data)] = value
    _feed_all(bytes(data))
