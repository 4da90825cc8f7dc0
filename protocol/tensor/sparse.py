"""TOPK: keep the ``k`` largest-magnitude elements exactly, send the rest as zero.

``k = ceil(density * n)`` (at least 1 for a non-empty tensor). The kept values travel in the
source dtype, so they decode bit-exact; the error is exactly the dropped part:
``||x' - x|| = ||x[dropped]||``, and every dropped ``|x|`` is ``<=`` every kept ``|x|``.
Ties at the threshold keep the lowest indices, so encoding is deterministic.

Payload: ``u32[k]`` index gaps (the first index, then differences of the sorted indices), then
``values[k]``, each byte-shuffled: gaps of a sparse top-k are small numbers whose high bytes
are zero, which zstd then squeezes away. A decoder insists on strictly increasing indices
below ``n`` and finite values, before it allocates the ``n``-element output.
"""

from __future__ import annotations

import math

import numpy as np

from protocol.errors import CodecError, LocalProtocolError
from protocol.tensor.lossless import shuffle, unshuffle
from protocol.tensor.wire import MAX_TOPK_ELEMENTS, TensorHeader

_GAP = np.dtype("<u4")


def keep_count(n: int, density: float) -> int:
    """Elements TOPK keeps out of ``n`` at ``density`` (0 < density <= 1)."""
    if not 0.0 < density <= 1.0:
        raise LocalProtocolError(f"TOPK density must be in (0, 1], got {density}")
    return 0 if n == 0 else min(n, max(1, math.ceil(density * n)))


def payload_size(k: int, itemsize: int) -> int:
    """Exact raw payload bytes for ``k`` kept elements."""
    return k * (_GAP.itemsize + itemsize)


def encode(x: np.ndarray, density: float) -> tuple[np.ndarray, int]:
    """Payload (uint8) and ``k`` for the flat float array ``x``."""
    n = x.size
    if n > MAX_TOPK_ELEMENTS:
        raise LocalProtocolError(f"TOPK handles fewer than 2**32 elements, got {n}")
    k = keep_count(n, density)
    if not np.isfinite(x).all():
        raise LocalProtocolError("TOPK needs finite values; send NaN/inf with LOSSLESS")
    magnitude = np.abs(x)
    if k == n:
        index = np.arange(n, dtype=np.int64)
    else:
        threshold = np.partition(magnitude, n - k)[n - k]
        index = np.flatnonzero(magnitude > threshold)
        if index.size < k:
            ties = np.flatnonzero(magnitude == threshold)[: k - index.size]
            index = np.union1d(index, ties)
    gaps = np.diff(index, prepend=0).astype(_GAP)
    payload = np.empty(payload_size(k, x.dtype.itemsize), dtype=np.uint8)
    shuffle(gaps, out=payload[:gaps.nbytes])
    shuffle(x[index], out=payload[gaps.nbytes:])
    return payload, k


def decode(header: TensorHeader, payload: bytes) -> np.ndarray:
    """The flat array from a TOPK payload of exactly ``payload_size`` bytes."""
    n, k = header.size, header.k
    gaps = unshuffle(payload, _GAP, k)
    values = unshuffle(payload, header.dtype, k, offset=k * _GAP.itemsize)
    if k > 1 and not gaps[1:].all():
        raise CodecError("TOPK indices repeat: they must be strictly increasing")
    index = np.cumsum(gaps, dtype=np.uint64)
    if k and index[-1] >= n:
        raise CodecError(f"TOPK index {int(index[-1])} is out of range for {n} elements")
    if not np.isfinite(values).all():
        raise CodecError("TOPK values must be finite")
    out = np.zeros(n, dtype=header.dtype)
    out[index] = values
    return out
