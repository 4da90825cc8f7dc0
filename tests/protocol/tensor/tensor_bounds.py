"""Shared by the tensor tests: read block scales back out of wire bytes, and the error bounds.

The bounds are the ones the codec docstrings promise (``protocol.tensor.quant``,
``protocol.tensor.lossless``), written out independently so a test fails if a codec breaks them.
"""

from __future__ import annotations

import numpy as np

from protocol.compression import decompress
from protocol.tensor.codec import raw_payload_size
from protocol.tensor.quant import num_blocks, scale_table
from protocol.tensor.wire import Codec, TensorHeader, read_header

ULP32 = 2.0**-24


def block_scales(data: bytes) -> tuple[TensorHeader, np.ndarray]:
    """The decoded (signed, for INT4) scale of every block, as float64."""
    header, start = read_header(data)
    raw = decompress(memoryview(data)[start:-4], max_size=raw_payload_size(header))
    nb = num_blocks(header.size, header.block_size)
    codes = np.frombuffer(raw, dtype=np.uint8, count=nb)
    scales = scale_table(header.scale)[codes].astype(np.float64)
    if header.codec is Codec.INT4:
        bits = np.frombuffer(raw, dtype=np.uint8, count=num_blocks(nb, 8), offset=nb)
        negative = np.unpackbits(bits, count=nb, bitorder="little").astype(bool)
        scales = np.where(negative, -scales, scales)
    return header, scales


def per_element(values: np.ndarray, n: int, block: int) -> np.ndarray:
    """Per-block values repeated over each block's elements (first ``n``)."""
    return np.repeat(values, block)[:n]


def output_slack(dtype: np.dtype, magnitude: np.ndarray) -> np.ndarray:
    """Rounding allowed on top of a bound: float32 arithmetic plus the output dtype's rounding."""
    if np.dtype(dtype) == np.float16:
        return (2.0**-11 + 4 * ULP32) * magnitude + 2.0**-25
    return 8 * ULP32 * magnitude + 2.0**-148


def check_quantized(x: np.ndarray, data: bytes, decoded: np.ndarray) -> None:
    """Assert the INT8 / INT4 / SIGN1 promises for ``decoded`` = decode(``data`` = encode(x))."""
    header, scales = block_scales(data)
    n, block = header.size, header.block_size
    source = np.asarray(x, dtype=np.float32).astype(np.float64).reshape(-1)
    got = decoded.astype(np.float64).reshape(-1)
    s = per_element(scales, n, block)
    slack = output_slack(decoded.dtype, np.abs(source) + np.abs(s))
    error = np.abs(got - source)
    padded = np.zeros(num_blocks(n, block) * block)
    padded[:n] = np.abs(source)
    rows = padded.reshape(-1, block)
    if header.codec is Codec.INT8:
        ideal = rows.max(axis=1) / 127
        allowed = np.abs(s) / 2
    elif header.codec is Codec.INT4:
        ideal = rows.max(axis=1) / 8
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(s != 0, source / np.where(s != 0, s, 1), 0)
        allowed = np.where(ratio > 7.5, np.abs(s), np.abs(s) / 2)
    else:
        counts = np.full(rows.shape[0], block)
        if counts.size:
            counts[-1] = n - (counts.size - 1) * block
        ideal = rows.sum(axis=1) / counts
        allowed = np.abs(s) + np.abs(source)  # only the block identity below is tight
        expected = np.where(source < 0, -s, s)
        assert np.all(np.abs(got - expected) <= output_slack(decoded.dtype, np.abs(s))), \
            "SIGN1 must decode to +-scale"
        _check_sign_identity(source, got, scales, n, block)
    assert np.all(error <= allowed + slack), f"worst excess {np.max(error - allowed - slack)}"
    # SIGN1's ideal (a mean) is summed in float32 by the encoder: allow that rounding.
    rel = 1e-5 if header.codec is Codec.SIGN1 else 0.0
    _check_scale_grid(np.abs(scales), ideal * (1 - rel), ideal * (1 + rel), header.scale)


def _check_sign_identity(x: np.ndarray, got: np.ndarray, scales: np.ndarray, n: int,
                         block: int) -> None:
    for b in range(scales.size):
        xs, gs = x[b * block:(b + 1) * block], got[b * block:(b + 1) * block]
        s = float(np.abs(gs[0]))  # the decoded magnitude (float16 output rounds the scale)
        assert np.all(np.abs(gs) == s)
        lhs = np.sum((gs - xs) ** 2)
        rhs = np.sum(xs**2) - 2 * s * np.sum(np.abs(xs)) + xs.size * s * s
        assert abs(lhs - rhs) <= 1e-5 * (np.sum(xs**2) + xs.size * s * s) + 1e-300


def _check_scale_grid(scales: np.ndarray, low: np.ndarray, high: np.ndarray, ref: float) -> None:
    """Each scale covers its block's ideal (in [low, high]) and is within one grid step of it."""
    covered = low <= ref  # ref is lowered only for values within ulps of float32's maximum
    assert np.all(scales[covered] >= low[covered]), "a scale is below its ideal"
    # Within the table's 254 steps of ref, and not subnormal (2**-126), where float32 has fewer
    # bits than the grid needs: there the scale is the next representable value above.
    in_range = (low >= ref * 2.0 ** (-254 / 16)) & (low >= 2.0**-125)
    assert np.all(scales[in_range] <= high[in_range] * 2.0 ** (1 / 16) * (1 + 4 * ULP32))
    assert np.all(scales[high == 0] == 0)
