"""Decodings of an owner-keyed soft-state map's values, each decoded once per value.

Readers of the ``links`` and ``load`` maps look at many entries per placement (``candidates()``
reads every node's load); decoding msgpack again on every read costs more than the rest of
the read. A decoding is kept with the exact bytes it came from and reused while the stored
value is those bytes; a value its writer got wrong decodes to None, once. The cache holds at
most a few entries per key the map has, so departed writers cost nothing for long.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from crdt import LWWMap
from crdt.values import unpack_value
from protocol.errors import RemoteProtocolError

T = TypeVar("T")


class DecodedValues(Generic[T]):
    def __init__(self, decode: Callable[[Any, str], T | None]) -> None:
        self.decode = decode
        """The unpacked value and its key -> the reader's type, or None if malformed."""
        self._decoded: dict[str, tuple[bytes, T | None]] = {}

    def get(self, entries: LWWMap, key: str) -> T | None:
        """``key``'s value decoded (None: absent, or malformed as its writer signed it)."""
        raw = entries.get_raw(key)
        if raw is None:
            return None
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        try:
            decoded = self.decode(unpack_value(raw), key)
        except (RemoteProtocolError, ValueError, TypeError):
            decoded = None
        if len(self._decoded) > 4 * len(entries.keys()) + 64:
            self._decoded.clear()  # departed writers' entries: bounded by the map's size
        self._decoded[key] = (raw, decoded)
        return decoded
