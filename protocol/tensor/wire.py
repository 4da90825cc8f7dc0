"""The tensor wire form: a fixed little-endian header, the shape, the payload, a CRC-32 trailer.

Layout (all integers little-endian)::

    offset size field
    0      2    magic        b"NT"
    2      1    version      1
    3      1    codec        ``Codec``
    4      1    dtype        ``DTYPE_CODES`` (the source array's dtype, restored on decode)
    5      1    ndim         0..MAX_NDIM
    6      2    reserved     0
    8      4    block_size   u32: power of two in 8..65536 for block codecs, else 0
    12     4    scale        f32: reference scale of block codecs (finite, >= 0), else +0.0
    16     4    k            u32: kept elements of TOPK, else 0
    20     8*nd shape        u64 per dimension
    ..     ..   payload      ``protocol.compression`` form (method byte + raw or zstd body)
    -4     4    crc32        zlib.crc32 of every byte before it

Why a fixed binary header and not a msgpack map: every field has one fixed width and one valid
value set, so the form is canonical by construction, its size is bounded (20 + 8 * ndim), and
it can be checked field by field before anything is allocated.

Why CRC-32: the checksum catches accidental damage and codec mismatches (a peer on a buggy
build), not forgery: a tensor travels inside a signed envelope, and the signature is what
stops an adversary. ``zlib.crc32`` is in the standard library and runs at several GB/s here,
~5x faster than blake2b-64; the stronger hash would buy nothing the signature does not.

``read_header`` validates everything the header alone can tell: magic, version, known codec and
dtype, reserved bytes, shape product against the caller's ``max_elements`` and ``max_bytes``,
codec/dtype compatibility, block size, scale and k ranges. The codec modules check the payload.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from protocol.errors import CodecError, MalformedMessage, MessageTooLarge, UnsupportedVersion

MAGIC = b"NT"
VERSION = 1
MAX_NDIM = 32
MIN_BLOCK = 8
MAX_BLOCK = 1 << 16
MAX_TOPK_ELEMENTS = (1 << 32) - 1
"""Top-k indices travel as u32 gaps, so a top-k tensor has fewer than 2**32 elements."""

DEFAULT_MAX_ELEMENTS = 1 << 26
DEFAULT_MAX_BYTES = 1 << 28
"""Decode caps when the caller gives none: 64 Mi elements, 256 MiB of decoded array."""

_FIXED = struct.Struct("<2sBBBBHIfI")
HEADER_SIZE = _FIXED.size
CRC_SIZE = 4


class Codec(IntEnum):
    """How the values are represented. The numbers are wire values: never reuse one."""

    LOSSLESS = 0
    FLOAT16 = 1
    INT8 = 2
    INT4 = 3
    SIGN1 = 4
    TOPK = 5


BLOCK_CODECS = frozenset({Codec.INT8, Codec.INT4, Codec.SIGN1})
LOSSY_CODECS = frozenset(set(Codec) - {Codec.LOSSLESS})

QUANT_LEVELS: dict[Codec, int] = {Codec.INT8: 127, Codec.INT4: 8, Codec.SIGN1: 1}
"""Largest |q| of a block codec: a decoded value is at most QUANT_LEVELS * scale in size."""

DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype("<f2"), 2: np.dtype("<f4"), 3: np.dtype("<f8"),
    4: np.dtype("i1"), 5: np.dtype("<i2"), 6: np.dtype("<i4"), 7: np.dtype("<i8"),
    8: np.dtype("u1"), 9: np.dtype("<u2"), 10: np.dtype("<u4"), 11: np.dtype("<u8"),
    12: np.dtype("?"),
}
_CODE_OF: dict[np.dtype, int] = {dt: code for code, dt in DTYPE_CODES.items()}
FLOAT_DTYPES = frozenset({np.dtype("<f2"), np.dtype("<f4"), np.dtype("<f8")})


@dataclass(frozen=True, slots=True)
class TensorHeader:
    """Everything about an encoded tensor except its values."""

    codec: Codec
    dtype: np.dtype
    shape: tuple[int, ...]
    block_size: int = 0
    scale: float = 0.0
    k: int = 0

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def wire_dtype(dtype: np.dtype) -> np.dtype | None:
    """The little-endian form of ``dtype`` if the wire carries it, else ``None``."""
    dt = np.dtype(dtype).newbyteorder("<")
    return dt if dt in _CODE_OF else None


def pack_header(header: TensorHeader) -> bytes:
    """The header and shape bytes (without payload and checksum)."""
    fixed = _FIXED.pack(MAGIC, VERSION, int(header.codec), _CODE_OF[header.dtype],
                        len(header.shape), 0, header.block_size, header.scale, header.k)
    return fixed + struct.pack(f"<{len(header.shape)}Q", *header.shape)


def seal(parts: list[bytes | bytearray | memoryview]) -> bytes:
    """Join header, shape and payload and append the CRC-32 trailer (one copy of the payload)."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return b"".join([*parts, struct.pack("<I", crc)])


def read_header(data: bytes | bytearray | memoryview, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[TensorHeader, int]:
    """Parse and check the header; return it and the offset where the payload starts.

    Does not look at the payload or the checksum (``check_crc`` does); allocates nothing that
    depends on the claimed sizes.
    """
    view = memoryview(data).cast("B")
    if len(view) < HEADER_SIZE + 1 + CRC_SIZE:
        raise MalformedMessage(f"tensor of {len(view)} bytes is shorter than its header")
    magic, version, codec_id, dtype_id, ndim, reserved, block, scale, k = _FIXED.unpack_from(view)
    if magic != MAGIC:
        raise MalformedMessage(f"not a NovaCron tensor (magic {bytes(magic)!r})")
    if version != VERSION:
        raise UnsupportedVersion(f"tensor wire version {version}; this node speaks {VERSION}")
    try:
        codec = Codec(codec_id)
    except ValueError:
        raise CodecError(f"unknown tensor codec id {codec_id}") from None
    dtype = DTYPE_CODES.get(dtype_id)
    if dtype is None:
        raise CodecError(f"unknown tensor dtype code {dtype_id}")
    if reserved != 0:
        raise MalformedMessage("tensor header reserved bytes are not zero")
    if ndim > MAX_NDIM:
        raise MalformedMessage(f"tensor has {ndim} dimensions; at most {MAX_NDIM} are allowed")
    end = HEADER_SIZE + 8 * ndim
    if len(view) < end + 1 + CRC_SIZE:
        raise MalformedMessage(f"tensor of {len(view)} bytes is shorter than its {ndim}-d shape")
    shape = struct.unpack_from(f"<{ndim}Q", view, HEADER_SIZE)
    elements = 1
    for dim in shape:  # stop early: a product of huge dims must not become a huge int
        elements *= dim
        if elements > max_elements:
            raise MessageTooLarge(f"tensor shape {shape[:8]} is over the cap of {max_elements}"
                                  " elements")
    if elements * dtype.itemsize > max_bytes:
        raise MessageTooLarge(
            f"tensor of {elements} x {dtype} is over the cap of {max_bytes} bytes")
    header = TensorHeader(codec, dtype, tuple(shape), block, scale, k)
    _check_params(header, elements)
    return header, end


def check_crc(data: bytes | bytearray | memoryview) -> memoryview:
    """Verify the trailer; return the bytes it covers."""
    view = memoryview(data).cast("B")
    body = view[:-CRC_SIZE]
    (expected,) = struct.unpack_from("<I", view, len(view) - CRC_SIZE)
    if zlib.crc32(body) != expected:
        raise CodecError("tensor checksum mismatch: the bytes were damaged in transit")
    return body


@functools.cache
def max_scale(codec: Codec, dtype: np.dtype) -> float:
    """Largest float32 scale ``s`` with ``float32(QUANT_LEVELS * s)`` finite in ``dtype``.

    Decoding computes ``q * s`` in float32, so a bigger reference scale could decode to inf;
    the header check rejects it and the encoder clamps to it.
    """
    top = np.float32(min(float(np.finfo(dtype).max), float(np.finfo(np.float32).max)))
    levels = np.float32(QUANT_LEVELS[codec])
    scale = np.float32(top / levels)
    with np.errstate(over="ignore"):
        while not scale * levels <= top:
            scale = np.nextafter(scale, np.float32(0))
    return float(scale)


def _check_params(header: TensorHeader, elements: int) -> None:
    codec = header.codec
    if codec in LOSSY_CODECS and header.dtype not in FLOAT_DTYPES:
        raise CodecError(f"{codec.name} applies to float arrays, not {header.dtype}")
    if codec in BLOCK_CODECS:
        block = header.block_size
        if block < MIN_BLOCK or block > MAX_BLOCK or block & (block - 1):
            raise CodecError(f"{codec.name} block size {block} is not a power of two in "
                             f"{MIN_BLOCK}..{MAX_BLOCK}")
        limit = max_scale(codec, header.dtype)
        if not (math.isfinite(header.scale) and 0.0 <= header.scale <= limit):
            raise CodecError(
                f"{codec.name} reference scale {header.scale!r} is not in [0, {limit}]")
    else:
        if header.block_size != 0:
            raise CodecError(f"{codec.name} has no block size, got {header.block_size}")
        if struct.pack("<f", header.scale) != bytes(4):
            raise CodecError(f"{codec.name} has no scale, got {header.scale!r}")
    if codec is Codec.TOPK:
        if elements > MAX_TOPK_ELEMENTS:
            raise CodecError(f"TOPK tensor of {elements} elements is over {MAX_TOPK_ELEMENTS}")
        if header.k > elements or (elements > 0 and header.k == 0):
            raise CodecError(f"TOPK keeps {header.k} of {elements} elements")
    elif header.k != 0:
        raise CodecError(f"{codec.name} has no k, got {header.k}")
