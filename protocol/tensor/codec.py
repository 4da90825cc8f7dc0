"""Encode a numpy array to the tensor wire form and back: the facade over the codec modules.

``encode_tensor(array, spec) -> bytes`` and ``decode_tensor(data, max_elements=, max_bytes=)``.
A ``CodecSpec`` names the codec and its knobs (block size, top-k density, zstd level of the
payload); ``CodecSpec.resolved()`` fills in the defaults, which are chosen to meet the targets
of ``scripts/bench_protocol.py`` on normal and Laplace data:

==========  =====  ===========================================================================
codec       block  what decode(encode(x)) equals
==========  =====  ===========================================================================
LOSSLESS    -      x, bit for bit (any dtype in ``wire.DTYPE_CODES``)
FLOAT16     -      x rounded to half precision (``lossless`` module docstring has the bound)
INT8        128    per element within half a block step (``quant`` module docstring)
INT4        16     per element within half a block step, one step at the clipped edge
SIGN1       128    block mean magnitude times the sign
TOPK        -      the ``ceil(density * n)`` largest magnitudes exactly, zero elsewhere
==========  =====  ===========================================================================

Lossy codecs take float16/32/64 arrays with finite values (FLOAT16 also passes inf and NaN)
and decode to the source dtype and shape; anything else raises ``LocalProtocolError`` on the
sending side. Decoding untrusted bytes raises only ``RemoteProtocolError`` subclasses: the header
is checked against the caps first, then the payload's length against what the header implies,
then the CRC, then the payload is decompressed to exactly the size the header implies (never
more), then the codec checks its payload. Peak memory is a small
multiple of the decoded array (at most ~3x ``max_bytes`` for float64 output).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protocol.compression import compress_parts, decompress
from protocol.errors import CodecError, LocalProtocolError, MessageTooLarge
from protocol.tensor import lossless, quant, sparse
from protocol.tensor.wire import (BLOCK_CODECS, CRC_SIZE, DEFAULT_MAX_BYTES,
                                  DEFAULT_MAX_ELEMENTS, FLOAT_DTYPES, LOSSY_CODECS, MAX_BLOCK,
                                  MAX_NDIM, MIN_BLOCK, Codec, TensorHeader, check_crc,
                                  pack_header, read_header, seal, wire_dtype)

DEFAULT_BLOCK: dict[Codec, int] = {Codec.INT8: 128, Codec.INT4: 16, Codec.SIGN1: 128}
DEFAULT_DENSITY = 0.01
DEFAULT_LEVEL = 1
"""zstd level of tensor payloads: level 1 keeps encoding at memory-copy-like speed."""

_ZSTD_SLACK = 64
"""A zstd frame is at most ``size + size / 128 + 64`` bytes (ZSTD_compressBound, generously)."""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec and its parameters; zero means "the codec's default"."""

    codec: Codec = Codec.LOSSLESS
    block_size: int = 0
    density: float = 0.0
    level: int = DEFAULT_LEVEL

    def resolved(self) -> CodecSpec:
        """This spec with defaults filled in and checked (``LocalProtocolError`` if invalid)."""
        spec = self
        if self.codec in BLOCK_CODECS:
            block = self.block_size or DEFAULT_BLOCK[self.codec]
            if block < MIN_BLOCK or block > MAX_BLOCK or block & (block - 1):
                raise LocalProtocolError(f"{self.codec.name} block size must be a power of two"
                                         f" in {MIN_BLOCK}..{MAX_BLOCK}, got {block}")
            spec = replace(spec, block_size=block)
        elif self.block_size:
            raise LocalProtocolError(f"{self.codec.name} takes no block size")
        if self.codec is Codec.TOPK:
            spec = replace(spec, density=self.density or DEFAULT_DENSITY)
            sparse.keep_count(1, spec.density)  # validates the density
        elif self.density:
            raise LocalProtocolError(f"{self.codec.name} takes no density")
        return spec

    def describe(self) -> str:
        """Short human label, e.g. ``int8/128`` or ``topk/0.01``."""
        spec = self.resolved()
        name = spec.codec.name.lower()
        if spec.codec in BLOCK_CODECS:
            return f"{name}/{spec.block_size}"
        if spec.codec is Codec.TOPK:
            return f"{name}/{spec.density:g}"
        return name


def encode_tensor(array: np.ndarray, spec: CodecSpec | Codec = Codec.LOSSLESS) -> bytes:
    """Encode ``array`` with ``spec``; raises ``LocalProtocolError`` for arrays it cannot take."""
    if isinstance(spec, Codec):
        spec = CodecSpec(spec)
    spec = spec.resolved()
    x = np.asarray(array)
    dtype = wire_dtype(x.dtype)
    if dtype is None:
        raise LocalProtocolError(f"tensor dtype {x.dtype} is not supported on the wire")
    if spec.codec in LOSSY_CODECS and dtype not in FLOAT_DTYPES:
        raise LocalProtocolError(f"{spec.codec.name} needs a float array, got {x.dtype};"
                                 " use LOSSLESS")
    if x.ndim > MAX_NDIM:
        raise LocalProtocolError(f"tensor has {x.ndim} dimensions; at most {MAX_NDIM}")
    flat = np.ascontiguousarray(x, dtype=dtype).reshape(-1)
    scale, k = 0.0, 0
    if spec.codec is Codec.LOSSLESS:
        payload = lossless.encode_lossless(flat)
    elif spec.codec is Codec.FLOAT16:
        payload = lossless.encode_float16(flat)
    elif spec.codec is Codec.TOPK:
        payload, k = sparse.encode(flat, spec.density)
    else:
        payload, scale = quant.encode(spec.codec, flat, spec.block_size)
    header = TensorHeader(spec.codec, dtype, tuple(int(d) for d in x.shape),
                          spec.block_size, scale, k)
    method, body = compress_parts(payload.data, spec.level, sample_check=False)
    return seal([pack_header(header), bytes((method,)), body])


def decode_tensor(data: bytes | bytearray | memoryview, *,
                  max_elements: int = DEFAULT_MAX_ELEMENTS,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode untrusted bytes to an array; raises only ``RemoteProtocolError`` subclasses."""
    return decode_tensor_with_header(data, max_elements=max_elements, max_bytes=max_bytes)[1]


def decode_tensor_with_header(data: bytes | bytearray | memoryview, *,
                              max_elements: int = DEFAULT_MAX_ELEMENTS,
                              max_bytes: int = DEFAULT_MAX_BYTES,
                              ) -> tuple[TensorHeader, np.ndarray]:
    """Like ``decode_tensor``, also returning the header (codec, block size, scale, k)."""
    header, start = read_header(data, max_elements=max_elements, max_bytes=max_bytes)
    expected = raw_payload_size(header)
    carried = len(memoryview(data).cast("B")) - start - CRC_SIZE
    if carried > expected + expected // 128 + _ZSTD_SLACK:  # before hashing it all
        raise MessageTooLarge(f"tensor payload of {carried} bytes is too long for"
                              f" {expected} raw bytes")
    payload = check_crc(data)[start:]
    raw = decompress(payload, max_size=expected)
    if len(raw) != expected:
        raise CodecError(f"{header.codec.name} payload has {len(raw)} bytes; the header implies"
                         f" {expected}")
    if header.codec is Codec.LOSSLESS:
        flat = lossless.decode_lossless(header, raw)
    elif header.codec is Codec.FLOAT16:
        flat = lossless.decode_float16(header, raw)
    elif header.codec is Codec.TOPK:
        flat = sparse.decode(header, raw)
    else:
        flat = quant.decode(header, raw)
    return header, flat.reshape(header.shape)


def raw_payload_size(header: TensorHeader) -> int:
    """Bytes of the uncompressed payload the header implies."""
    n = header.size
    if header.codec is Codec.LOSSLESS:
        return n * header.dtype.itemsize
    if header.codec is Codec.FLOAT16:
        return 2 * n
    if header.codec is Codec.TOPK:
        return sparse.payload_size(header.k, header.dtype.itemsize)
    return quant.payload_size(header.codec, n, header.block_size)

