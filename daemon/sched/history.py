"""A node's record of its own up sessions: compact, bounded, and honest about crashes.

Theory of operation. The daemon shell calls, with its own clock's ``now``:

- ``started(now)`` when the daemon comes up. If the previous session is still open, the
  daemon died without saying so (crash, power cut, kill -9); that session is closed at its
  last heartbeat, which is the best lower bound of when it really ended.
- ``alive(now)`` every so often (a minute is plenty) and persists the result, so a crash
  loses at most one heartbeat interval of up time.
- ``stopped(now)`` on a clean shutdown.

Every method returns a new history (the type is frozen), so the shell can persist exactly
what it computed. The history keeps at most ``max_sessions`` completed sessions and none
that ended more than ``max_age_s`` ago: a few weeks of a host's habits is what forecasts
need, and old habits (a laptop that used to be a desktop) should fade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from daemon.sched.survival import HostModel, fit_host_model
from daemon.sched.timebase import HOUR, WEEK

MAX_SESSIONS = 512
MAX_AGE_S = 8 * WEEK


@dataclass(frozen=True, slots=True)
class AvailabilityHistory:
    """Completed sessions ``(start, end)`` oldest first, plus the open one, in epoch seconds."""

    sessions: tuple[tuple[float, float], ...] = ()
    current_start: float | None = None
    last_alive: float | None = None
    max_sessions: int = MAX_SESSIONS
    max_age_s: float = MAX_AGE_S

    def __post_init__(self) -> None:
        prev_end = -math.inf
        for s, e in self.sessions:
            if not (math.isfinite(s) and math.isfinite(e) and prev_end <= s <= e):
                raise ValueError("sessions must be finite, ordered and disjoint")
            prev_end = e
        if self.current_start is not None and self.current_start < prev_end:
            raise ValueError("the open session cannot start before the last closed one ended")

    # -- events from the shell ----------------------------------------------------------------

    def started(self, now: float) -> "AvailabilityHistory":
        h = self
        if h.current_start is not None:
            h = h._close(h.last_alive if h.last_alive is not None else h.current_start, now)
        start = max(now, h.sessions[-1][1]) if h.sessions else now
        return replace(h, current_start=start, last_alive=start)

    def alive(self, now: float) -> "AvailabilityHistory":
        if self.current_start is None:
            return self.started(now)
        return replace(self, last_alive=max(now, self.last_alive or now))

    def stopped(self, now: float) -> "AvailabilityHistory":
        if self.current_start is None:
            return self
        return self._close(max(now, self.last_alive or now), now)

    def _close(self, end: float, now: float) -> "AvailabilityHistory":
        assert self.current_start is not None
        sessions = self.sessions + ((self.current_start, max(end, self.current_start)),)
        cutoff = now - self.max_age_s
        sessions = tuple(s for s in sessions if s[1] >= cutoff)[-self.max_sessions:]
        return replace(self, sessions=sessions, current_start=None, last_alive=None)

    # -- what it tells --------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self.current_start is not None

    def on_fraction(self, now: float) -> float:
        """Fraction of time up since the oldest remembered session began (BOINC's on-fraction)."""
        first = self.sessions[0][0] if self.sessions else self.current_start
        if first is None:
            return 0.0
        total = now - first
        return min(1.0, self.up_hours(now) * HOUR / total) if total > 0 else 1.0

    def up_hours(self, now: float) -> float:
        """Total up time remembered, the open session counted up to ``now``: with no departure
        yet it is the only evidence there is, and long up time without one is strong."""
        up = sum(e - s for s, e in self.sessions)
        if self.current_start is not None:
            up += max(now - self.current_start, 0.0)
        return up / HOUR

    def fit(self, now: float, *, with_profile: bool = True) -> HostModel | None:
        """The host's own survival model; the open session counts as censored at ``now``."""
        spans = list(self.sessions)
        observed = [True] * len(spans)
        if self.current_start is not None and now > self.current_start:
            spans.append((self.current_start, now))
            observed.append(False)
        if not spans:
            return None
        arr = np.asarray(spans, dtype=float)
        return fit_host_model(arr[:, 0], arr[:, 1], np.asarray(observed), with_profile=with_profile)

    # -- durable form (local disk, trusted) ------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {
            "sessions": [list(s) for s in self.sessions],
            "current_start": self.current_start,
            "last_alive": self.last_alive,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "AvailabilityHistory":
        sessions = tuple((float(s), float(e)) for s, e in record.get("sessions", ()))
        cur = record.get("current_start")
        last = record.get("last_alive")
        return cls(
            sessions=sessions[-MAX_SESSIONS:],
            current_start=None if cur is None else float(cur),
            last_alive=None if last is None else float(last),
        )
