"""The one clock the daemon's services read, injected so tests run them in virtual time.

``now()`` is monotonic seconds (timers, leases, replica ticks); ``wall()`` is seconds since the
epoch (what envelopes and ledger clock reports carry). A service takes a ``Clock`` and never
reads ``time`` itself:

- ``SystemClock``: the real clocks (the daemon).
- ``TrioClock``: trio's clock, which ``trio.testing.MockClock`` makes virtual; the wall clock
  moves with it from a fixed start, so a test that jumps an hour sees an hour pass on both.
  Build it inside ``trio.run`` (it reads trio's clock at once).
"""

from __future__ import annotations

import time
from typing import Protocol

import trio


class Clock(Protocol):
    def now(self) -> float: ...

    def wall(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class TrioClock:
    def __init__(self, wall_start: float = 1_750_000_000.0) -> None:
        self._start = trio.current_time()
        self._wall_start = wall_start

    def now(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return self._wall_start + trio.current_time() - self._start
