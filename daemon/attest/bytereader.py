"""A bounds-checked cursor over untrusted bytes, shared by every binary-format parser here.

TPM structures are big-endian, AMD and Intel reports and TCG event logs little-endian; all of
them are read through ``ByteReader`` so that a short or lying input ends in one
``MalformedMessage`` naming the structure and offset, never an ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

from protocol.errors import MalformedMessage


class ByteReader:
    __slots__ = ("data", "pos", "what", "big_endian")

    def __init__(self, data: bytes, what: str, *, big_endian: bool) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedMessage(f"{what}: expected bytes, got {type(data).__name__}")
        self.data = bytes(data)
        self.pos = 0
        self.what = what
        self.big_endian = big_endian

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def fail(self, message: str) -> MalformedMessage:
        return MalformedMessage(f"{self.what}: {message} (at byte {self.pos})")

    def take(self, n: int, field: str = "field") -> bytes:
        if n < 0 or n > self.remaining:
            raise self.fail(f"truncated: {field} needs {n} bytes, {self.remaining} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, field: str = "field") -> int:
        return int.from_bytes(self.take(size, field), "big" if self.big_endian else "little")

    def u8(self, field: str = "field") -> int:
        return self.uint(1, field)

    def u16(self, field: str = "field") -> int:
        return self.uint(2, field)

    def u32(self, field: str = "field") -> int:
        return self.uint(4, field)

    def u64(self, field: str = "field") -> int:
        return self.uint(8, field)

    def sized(self, size_bytes: int, field: str, max_len: int) -> bytes:
        """A length-prefixed byte string (TPM2B_*: ``size_bytes`` = 2), at most ``max_len``."""
        n = self.uint(size_bytes, f"{field} size")
        if n > max_len:
            raise self.fail(f"{field} claims {n} bytes, more than the {max_len} allowed")
        return self.take(n, field)

    def end(self) -> None:
        """Reject trailing bytes: a structure that does not end where it says is not trusted."""
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected trailing bytes")
