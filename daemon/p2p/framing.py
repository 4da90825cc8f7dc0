"""Length-prefixed frames on a byte stream: ``u32 big-endian length || payload``.

Sans-I/O (h11 style): ``FrameDecoder.feed(bytes)`` returns the complete frames it now holds and
buffers the rest; the trio shell in ``daemon.p2p.streams`` moves bytes in and out. A length over
``max_frame`` is rejected as soon as its 4 header bytes arrive, before any of the body is buffered,
so a hostile peer cannot make us allocate more than ``max_frame`` plus one read chunk.

Decoding raises only ``protocol.errors.RemoteProtocolError`` subclasses, whose ``reason`` is what
gets counted against the peer.
"""

from __future__ import annotations

import struct

from daemon.p2p.errors import P2PError
from protocol.errors import MalformedMessage, MessageTooLarge

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size


class FrameTooLarge(MessageTooLarge):
    """A frame header announcing more than ``max_frame`` bytes."""

    reason = "frame_too_large"


class TruncatedFrame(MalformedMessage):
    """The stream ended inside a frame (in its header or its body)."""

    reason = "truncated_frame"


def encode_frame(payload: bytes, max_frame: int) -> bytes:
    """The wire form of one frame. Oversized payloads are our bug, so this raises ``P2PError``."""
    if len(payload) > max_frame:
        raise P2PError(f"frame of {len(payload)} bytes is over the {max_frame}-byte cap")
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Turns stream bytes into frames, in order. One decoder per stream direction."""

    __slots__ = ("max_frame", "_buf", "_need")

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame in progress, once its header is in

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame completed by them. Raises ``FrameTooLarge``."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_SIZE:
                    return frames
                (length,) = HEADER.unpack_from(self._buf)
                if length > self.max_frame:
                    raise FrameTooLarge(
                        f"peer announced a {length}-byte frame; the cap is {self.max_frame}"
                    )
                del self._buf[:HEADER_SIZE]
                self._need = length
            if len(self._buf) < self._need:
                return frames
            frames.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None

    def want(self) -> int:
        """How many more bytes would complete the frame in progress (or the next header)."""
        if self._need is None:
            return HEADER_SIZE - len(self._buf)
        return self._need - len(self._buf)

    def eof(self) -> None:
        """The stream ended. Raises ``TruncatedFrame`` if that was mid-frame."""
        if self._buf or self._need is not None:
            raise TruncatedFrame(
                f"stream ended inside a frame ({len(self._buf)} bytes of it received)"
            )
