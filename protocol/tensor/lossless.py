"""LOSSLESS (byte-shuffle, then zstd) and FLOAT16 (round to half precision, shuffle, zstd).

Byte-shuffle stores byte 0 of every element, then byte 1 of every element, and so on (the
HDF5/Blosc filter). The sign/exponent bytes of floats are far from random, the low mantissa
bytes are noise; apart, zstd finds the structure that interleaving hides. It is one numpy
transpose each way.

- LOSSLESS keeps every bit, NaN payloads, infinities and -0.0 included, for every dtype of
  ``wire.DTYPE_CODES``: float16/32/64, signed and unsigned ints of 8..64 bits, bool. numpy has
  no bfloat16; send bfloat16 data as its ``uint16`` bit pattern (``a.view(np.uint16)``).
- FLOAT16 rounds to nearest half: ``|x' - x| <= 2**-11 |x|`` for ``|x| >= 2**-14`` and
  ``<= 2**-25`` below; infinities and NaN stay (NaN payload bits do not). Finite values that
  would round to infinity (``|x| >= 65520``) are refused. Decoding restores the source dtype.
"""

from __future__ import annotations

import numpy as np

from protocol.errors import CodecError, LocalProtocolError
from protocol.tensor.wire import TensorHeader

_F16 = np.dtype("<f2")


def shuffle(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The byte planes of the flat little-endian array ``x``, one after another (uint8).

    Writes into ``out`` (``x.nbytes`` uint8) when given, so callers can build one payload.
    """
    width = x.dtype.itemsize
    planes = x.view(np.uint8).reshape(x.size, width).T
    if out is None:
        out = np.empty(x.nbytes, dtype=np.uint8)
    out.reshape(width, x.size)[...] = planes
    return out


def unshuffle(data: bytes | memoryview, dtype: np.dtype, count: int, offset: int = 0) -> np.ndarray:
    """Inverse of ``shuffle``: ``count`` elements of ``dtype`` from ``data[offset:]``."""
    width = dtype.itemsize
    planes = np.frombuffer(data, dtype=np.uint8, count=count * width, offset=offset)
    if width == 1:
        return planes.view(dtype)
    return planes.reshape(width, count).T.copy().view(dtype).reshape(count)


def encode_lossless(x: np.ndarray) -> np.ndarray:
    """Payload for LOSSLESS."""
    return shuffle(x)


def decode_lossless(header: TensorHeader, payload: bytes) -> np.ndarray:
    """The flat array from a LOSSLESS payload of ``size * itemsize`` bytes."""
    out = unshuffle(payload, header.dtype, header.size)
    if header.dtype == np.dtype("?") and (out.view(np.uint8) > 1).any():
        raise CodecError("bool tensor holds a byte other than 0 or 1")
    return out


def encode_float16(x: np.ndarray) -> np.ndarray:
    """Payload for FLOAT16; refuses finite values that half precision cannot hold."""
    with np.errstate(over="ignore"):
        half = x.astype(_F16)
    if not np.isfinite(half).all():
        overflow = np.isinf(half) & np.isfinite(x)
        if overflow.any():
            worst = float(np.abs(x[overflow]).max())
            raise LocalProtocolError(f"FLOAT16 cannot hold {worst:g} (largest half is 65504);"
                                     " use LOSSLESS or INT8")
    return shuffle(half)


def decode_float16(header: TensorHeader, payload: bytes) -> np.ndarray:
    """The flat array (in the source dtype) from a FLOAT16 payload of ``2 * size`` bytes."""
    half = unshuffle(payload, _F16, header.size)
    return half if header.dtype == _F16 else half.astype(header.dtype)
