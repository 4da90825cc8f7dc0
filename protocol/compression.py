"""Compression of message bodies and blobs: zstd with a hard cap on the decompressed size.

Wire form: one method byte, then the body.

- ``0x00`` (``RAW``): the body is the data itself. Used when zstd would not pay for itself.
- ``0x01`` (``ZSTD``): the body is exactly one zstd frame that declares its content size.

Why this shape:

- *Bombs fail before allocating.* A zstd frame may claim any content size and may expand
  ~40,000:1 (RLE blocks). We read the frame header first and reject a frame whose declared size
  is over the caller's ``max_size``, or that does not declare one, before any output buffer
  exists. The frame is then decoded into a buffer of exactly the declared size; a frame that
  lies (decodes to more or fewer bytes than it declared) is rejected by the decoder, so the
  biggest allocation a hostile frame can cause is ``max_size`` (plus the window, below).
- *Bounded window.* The decoder's window is capped at 8 MiB (``MAX_WINDOW_SIZE``): enough for
  every level we emit (1..19 use windows of at most 8 MiB), and it stops a tiny frame from
  asking for a 2 GiB window.
- *One frame, nothing after it.* Trailing bytes after the frame are rejected, so a given body
  has one reading.
- *Cheap "does not compress" test.* Compressing already-compressed or random data costs CPU on
  both ends for nothing. ``compress`` first compresses a sample of at most ``SAMPLE_SIZE`` bytes
  taken from evenly spaced places (so a byte-shuffled array's every byte plane is seen) at
  level 1; if that sample shrinks by less than ``MIN_RATIO`` the data is sent raw.
  ``sample_check=False`` compresses everything and keeps zstd whenever it is smaller: the
  tensor codec uses that, because its int8 payloads gain ~6% and that gain is what buys 4x.

Errors: every bad input to ``decompress`` raises ``DecompressionError`` (a
``RemoteProtocolError``); misuse on the sending side (a bad level) raises ``LocalProtocolError``.
"""

from __future__ import annotations

from typing import Union

import zstandard

from protocol.errors import DecompressionError, LocalProtocolError

Buffer = Union[bytes, bytearray, memoryview]
"""Input bytes: anything else with the buffer protocol (numpy arrays) goes in as memoryview."""

RAW = 0x00
ZSTD = 0x01

MIN_LEVEL = 1
MAX_LEVEL = 19
DEFAULT_LEVEL = 3

MAX_WINDOW_SIZE = 1 << 23
"""Largest zstd window we accept when decoding (8 MiB: the window of level 19)."""

MIN_RATIO = 1.05
"""Below this ratio on the sample, ``compress`` sends the data raw."""

SAMPLE_SIZE = 8192
SAMPLE_PIECES = 8
SMALL_INPUT = 64
"""Inputs this short are sent raw: a zstd frame header alone costs ~10 bytes."""


def compress(data: Buffer, level: int = DEFAULT_LEVEL, *, sample_check: bool = True) -> bytes:
    """Compress ``data`` to the wire form above (method byte + body).

    With ``sample_check`` (the default) a sample decides cheaply whether to try zstd at all;
    without it the whole input is compressed and zstd is kept whenever it is smaller.
    """
    method, body = compress_parts(data, level, sample_check=sample_check)
    return bytes((method,)) + body


def compress_parts(data: Buffer, level: int = DEFAULT_LEVEL, *,
                   sample_check: bool = True) -> tuple[int, bytes | memoryview]:
    """``compress`` as (method byte, body), for callers that frame it themselves.

    The raw body is a view of ``data``, not a copy: the tensor codec joins header, method and
    body once, instead of copying a 16 MiB payload twice.
    """
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise LocalProtocolError(f"zstd level must be in {MIN_LEVEL}..{MAX_LEVEL}, got {level}")
    view = memoryview(data).cast("B")
    if len(view) < SMALL_INPUT or (sample_check and not looks_compressible(view)):
        return RAW, view
    body = zstandard.ZstdCompressor(level=level, write_content_size=True).compress(view)
    limit = len(view) / MIN_RATIO if sample_check else len(view)
    if len(body) >= limit:
        return RAW, view
    return ZSTD, body


def decompress(data: Buffer, max_size: int) -> bytes:
    """Undo ``compress``; raise ``DecompressionError`` if the result would exceed ``max_size``.

    Checks the method byte and the zstd frame header before allocating anything; at most
    ``max_size`` bytes of output are ever allocated, whatever the input says.
    """
    if max_size < 0:
        raise LocalProtocolError(f"max_size must be >= 0, got {max_size}")
    view = memoryview(data).cast("B")
    if len(view) == 0:
        raise DecompressionError("compressed data is empty: expected a method byte")
    method = view[0]
    body = view[1:]
    if method == RAW:
        if len(body) > max_size:
            raise DecompressionError(f"raw body of {len(body)} bytes is over the cap of {max_size}")
        return bytes(body)
    if method != ZSTD:
        raise DecompressionError(f"unknown compression method byte 0x{method:02x}")
    size = declared_size(body)
    if size > max_size:
        raise DecompressionError(
            f"zstd frame declares {size} bytes, over the cap of {max_size} (decompression bomb?)")
    if size == 0:
        # ``compress`` sends short inputs raw, and python-zstandard would return b"" for such a
        # frame without looking at the rest of it, so an empty zstd frame has no use but hiding
        # bytes.
        raise DecompressionError("zstd frame declares 0 bytes: empty data is sent raw")
    try:
        out = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE).decompress(
            body, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"corrupt zstd frame: {exc}") from None
    if len(out) != size:  # the library checks this too; a lie must never pass silently
        raise DecompressionError(f"zstd frame declared {size} bytes but decoded to {len(out)}")
    return out


def declared_size(frame: Buffer) -> int:
    """The content size a zstd frame declares; ``DecompressionError`` if it declares none."""
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"not a zstd frame: {exc}") from None
    size = params.content_size
    if size == zstandard.CONTENTSIZE_UNKNOWN or size == zstandard.CONTENTSIZE_ERROR:
        raise DecompressionError("zstd frame does not declare its content size")
    if params.window_size > MAX_WINDOW_SIZE:
        raise DecompressionError(
            f"zstd frame wants a {params.window_size}-byte window, over {MAX_WINDOW_SIZE}")
    return int(size)


def looks_compressible(data: Buffer) -> bool:
    """Whether a level-1 compression of an evenly spread sample shrinks by ``MIN_RATIO``.

    Costs one level-1 compression of at most ``SAMPLE_SIZE`` bytes (tens of microseconds).
    """
    view = memoryview(data).cast("B")
    if len(view) <= SAMPLE_SIZE:
        sample = bytes(view)
    else:
        piece = SAMPLE_SIZE // SAMPLE_PIECES
        stride = (len(view) - piece) // (SAMPLE_PIECES - 1)
        sample = b"".join(view[i * stride:i * stride + piece] for i in range(SAMPLE_PIECES))
    packed = zstandard.ZstdCompressor(level=1).compress(sample)
    return len(sample) >= MIN_RATIO * len(packed)

