"""One host's availability over time: sorted, disjoint up intervals, in seconds since the epoch.

Everything outside an up interval is down. The trace is ground truth for the simulator: the
predictor never sees it, only the history a node would have recorded about itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.sched.timebase import FloatArray
from daemon.sched.weibull import Weibull


@dataclass(frozen=True, eq=False)
class HostTrace:
    """Up intervals ``up[i] = (start, end)`` of one host, sorted and disjoint, seconds (UTC).

    Intervals may touch (``end == next start``): that is a departure and an immediate
    restart (the archive's zero-length failures), two sessions, not one. A trace may have no
    up interval at all; every query then answers "down" instead of failing.
    """

    host_id: str
    kind: str
    up: FloatArray
    tz_offset_s: int = 0
    """Local UTC offset of the host (FTA ``node.timezone``). Only the generator uses it."""
    law: Weibull | None = None
    """The up-time law (hours) the generator drew these sessions from: ground truth no node
    can know. None for office desktops (no closed form) and for traces read from the archive."""
    name: str = ""
    """Human name (FTA ``node_name``). Not an identity: archives reuse names across nodes."""
    _starts: FloatArray = field(init=False, repr=False)
    _ends: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        up = np.asarray(self.up, dtype=float).reshape(-1, 2)
        if up.size and (np.any(up[:, 1] < up[:, 0]) or np.any(up[1:, 0] < up[:-1, 1])):
            raise ValueError(f"host {self.host_id}: up intervals must be sorted and disjoint")
        object.__setattr__(self, "up", up)
        object.__setattr__(self, "_starts", up[:, 0].copy())
        object.__setattr__(self, "_ends", up[:, 1].copy())

    @property
    def ever_up(self) -> bool:
        return bool(self._starts.size)

    def _index(self, t: FloatArray) -> np.ndarray:
        """Index of the interval that starts at or before ``t`` (-1 when none)."""
        return np.asarray(np.searchsorted(self._starts, t, side="right") - 1, dtype=np.int64)

    def is_up(self, t: float | FloatArray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if not self.ever_up:
            return np.zeros(t.shape, dtype=bool)
        i = self._index(t)
        return np.asarray((i >= 0) & (t < self._ends[np.maximum(i, 0)]), dtype=bool)

    def session_start(self, t: float | FloatArray) -> FloatArray:
        """Start of the up session containing ``t`` (NaN where the host is down)."""
        t = np.asarray(t, dtype=float)
        if not self.ever_up:
            return np.full(t.shape, np.nan)
        i = np.maximum(self._index(t), 0)
        return np.where(self.is_up(t), self._starts[i], np.nan)

    def remaining_up(self, t: float | FloatArray) -> FloatArray:
        """Seconds until the host goes down (0 where it is down now). The oracle's knowledge."""
        t = np.asarray(t, dtype=float)
        if not self.ever_up:
            return np.zeros(t.shape)
        i = np.maximum(self._index(t), 0)
        return np.where(self.is_up(t), self._ends[i] - t, 0.0)

    def next_up(self, t: float) -> float:
        """Earliest time >= ``t`` at which the host is up (inf if never again)."""
        if bool(self.is_up(t)):
            return t
        j = int(np.searchsorted(self._starts, t, side="left"))
        return float(self._starts[j]) if j < self._starts.size else float("inf")

    def clip(self, t0: float, t1: float) -> "HostTrace":
        """The trace restricted to ``[t0, t1)``; intervals crossing the edges are cut."""
        up = self.up[(self.up[:, 1] > t0) & (self.up[:, 0] < t1)].copy()
        if up.size:
            up[:, 0] = np.maximum(up[:, 0], t0)
            up[:, 1] = np.minimum(up[:, 1], t1)
        return HostTrace(self.host_id, self.kind, up, self.tz_offset_s, self.law, self.name)

    def on_fraction(self, t0: float, t1: float) -> float:
        """Fraction of ``[t0, t1)`` the host was up: BOINC's "on fraction"."""
        c = self.clip(t0, t1).up
        return float(np.sum(c[:, 1] - c[:, 0]) / (t1 - t0)) if t1 > t0 else 0.0
