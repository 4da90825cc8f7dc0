"""Per-sender replay protection: a sliding window over sequence numbers (as IPsec and WireGuard do).

A sender numbers its envelopes 1, 2, 3, ... within a *context* (an epoch, or a stream/session
id it picks at start-up). The receiver keeps, per (sender, context), the highest number seen
and a bitmap of the ``window`` numbers below it. Reordering within the window is fine; a number
seen before, or older than the window, is a replay.

Memory is bounded: at most ``max_streams`` (sender, context) pairs are tracked, least recently
used first out. A message from an evicted stream whose timestamp is still within the envelope
skew limit could be accepted twice; the receiver's skew check bounds that exposure in time, and
consumers that must be exactly-once (PBFT requests) de-duplicate on their own ids as well.
"""

from __future__ import annotations

from collections import OrderedDict

from protocol.errors import ReplayedMessage

DEFAULT_WINDOW = 1024
DEFAULT_MAX_STREAMS = 65536


class ReplayWindow:
    """Tracks seen sequence numbers per (sender, context). Pure; not thread-safe."""

    __slots__ = ("window", "max_streams", "_streams")

    def __init__(self, window: int = DEFAULT_WINDOW, max_streams: int = DEFAULT_MAX_STREAMS):
        if window < 1 or max_streams < 1:
            raise ValueError("window and max_streams must be positive")
        self.window = window
        self.max_streams = max_streams
        # (sender, context) -> [highest, bitmap]; bit i set means (highest - i) was seen.
        self._streams: OrderedDict[tuple[bytes, int], list[int]] = OrderedDict()

    def check(self, sender: bytes, context: int, seq: int) -> None:
        """Raise ``ReplayedMessage`` if ``seq`` was seen or is too old. Does not record."""
        state = self._streams.get((sender, context))
        if state is None:
            return
        highest, bitmap = state
        if seq > highest:
            return
        age = highest - seq
        if age >= self.window:
            raise ReplayedMessage(
                f"sequence {seq} is older than the replay window (newest seen {highest}, "
                f"window {self.window})"
            )
        if bitmap >> age & 1:
            raise ReplayedMessage(f"sequence {seq} in context {context} was already received")

    def record(self, sender: bytes, context: int, seq: int) -> None:
        """Mark ``seq`` seen. Call only after the message's signature verified."""
        key = (sender, context)
        state = self._streams.get(key)
        if state is None:
            self._streams[key] = [seq, 1]
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
            return
        self._streams.move_to_end(key)
        highest, bitmap = state
        if seq > highest:
            shift = seq - highest
            bitmap = ((bitmap << shift) | 1) if shift < self.window else 1
            state[0] = seq
            state[1] = bitmap & ((1 << self.window) - 1)
        else:
            state[1] = bitmap | (1 << (highest - seq))

    def check_and_record(self, sender: bytes, context: int, seq: int) -> None:
        self.check(sender, context, seq)
        self.record(sender, context, seq)

    def __len__(self) -> int:
        return len(self._streams)
