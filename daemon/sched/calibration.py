"""Turning forecasts into calibrated probabilities: isotonic maps, one per horizon.

"Calibrated" means: of all the times we said 0.8, the host stayed up 80% of the time. The
survival model is close but not exact (a few weeks of sessions per host, a shrinkage prior,
hosts that are not exactly Weibull), so a monotone map fitted on the population's recent
outcomes corrects what is left. Monotone means it never reorders peers for one horizon, so
it changes what the explanation says, not which peer a one-replica placement picks.

The map is fitted by pool-adjacent-violators (isotonic regression) on (forecast, outcome)
pairs and stored as at most ``MAX_KNOTS`` knots with linear interpolation between block
means (so it stays strictly increasing), flat beyond the end knots. Separate maps for a few
horizons; for another horizon the two neighbouring maps are blended linearly in log-horizon.

Where the pairs come from is the caller's business: the benchmark cross-fits on the last
week of the fit window; a daemon can use the outcomes of its own forecasts, and the
committee (hard state) can fit one from the ledger's task outcomes and pin it per epoch,
so that every replica checks placements with the same map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daemon.sched.timebase import FloatArray

MAX_KNOTS = 48


@dataclass(frozen=True, slots=True)
class IsotonicMap:
    """A non-decreasing piecewise-linear map of [0, 1] given by knots ``(xs[i], ys[i])``."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or not self.xs:
            raise ValueError("an isotonic map needs matching, non-empty knot lists")
        if any(b < a for a, b in zip(self.xs, self.xs[1:])) or any(b < a for a, b in zip(self.ys, self.ys[1:])):
            raise ValueError("isotonic knots must be non-decreasing")

    def __call__(self, p: FloatArray) -> FloatArray:
        return np.interp(p, self.xs, self.ys)


def fit_isotonic(p: FloatArray, y: FloatArray, *, max_knots: int = MAX_KNOTS) -> IsotonicMap:
    """Pool-adjacent-violators on forecasts ``p`` and 0/1 outcomes ``y``."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.shape != y.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("need equal-length, non-empty forecasts and outcomes")
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    # Blocks: (sum of p, sum of y, count); merge while the last two are out of order.
    sp: list[float] = []
    sy: list[float] = []
    cnt: list[float] = []
    for pi, yi in zip(ps.tolist(), ys.tolist()):
        sp.append(pi)
        sy.append(yi)
        cnt.append(1.0)
        while len(cnt) > 1 and sy[-2] / cnt[-2] >= sy[-1] / cnt[-1]:
            last_p, last_y, last_n = sp.pop(), sy.pop(), cnt.pop()
            sp[-1] += last_p
            sy[-1] += last_y
            cnt[-1] += last_n
    w = np.array(cnt)
    bx = np.array(sp) / w
    by = np.array(sy) / w
    if bx.size > max_knots:
        # Merge neighbouring blocks into max_knots groups of about equal weight.
        edges = np.searchsorted(np.cumsum(w), np.linspace(0, w.sum(), max_knots + 1)[1:-1])
        groups = np.split(np.arange(bx.size), np.unique(edges))
        gw = np.array([w[g].sum() for g in groups if g.size])
        bx = np.array([np.dot(w[g], bx[g]) for g in groups if g.size]) / gw
        by = np.array([np.dot(w[g], by[g]) for g in groups if g.size]) / gw
    return IsotonicMap(tuple(float(v) for v in bx), tuple(float(v) for v in np.maximum.accumulate(by)))


MIN_GROUP_PAIRS = 500
"""A group gets its own maps only with this many outcomes per horizon; else it shares."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Isotonic maps for increasing horizons (hours). No maps = identity (uncalibrated).

    Two groups of hosts are calibrated apart: ``maps`` for most, ``rhythm_maps`` for hosts
    whose summary shows a strong weekly rhythm (``ModelTable.rhythmic``). Their models err in
    different ways (office desktops are too mild in the middle, P2P peers are fine), and one
    population map bent to fix the first would spoil the second. Empty ``rhythm_maps``: one
    map for everybody.
    """

    horizons_h: tuple[float, ...] = ()
    maps: tuple[IsotonicMap, ...] = ()
    rhythm_maps: tuple[IsotonicMap, ...] = ()

    def __post_init__(self) -> None:
        if len(self.horizons_h) != len(self.maps):
            raise ValueError("one isotonic map per horizon")
        if self.rhythm_maps and len(self.rhythm_maps) != len(self.maps):
            raise ValueError("rhythm maps, if any, cover the same horizons")
        if any(b <= a for a, b in zip(self.horizons_h, self.horizons_h[1:])) or any(h <= 0 for h in self.horizons_h):
            raise ValueError("calibration horizons must be positive and increasing")

    @classmethod
    def identity(cls) -> "Calibration":
        return cls()

    @classmethod
    def fit(
        cls,
        horizons_h: Sequence[float],
        pairs: Sequence[tuple[FloatArray, FloatArray]],
        rhythmic: Sequence[np.ndarray] | None = None,
    ) -> "Calibration":
        """One isotonic map per horizon from ``(forecasts, outcomes)`` at that horizon;
        with ``rhythmic`` flags per pair, a second set for the rhythmic hosts."""
        hs = tuple(float(h) for h in horizons_h)
        if rhythmic is None:
            return cls(hs, tuple(fit_isotonic(p, y) for p, y in pairs))
        plain: list[IsotonicMap] = []
        rhythm: list[IsotonicMap] = []
        split = all(
            int(np.sum(g)) >= MIN_GROUP_PAIRS and int(np.sum(~g)) >= MIN_GROUP_PAIRS
            for g in (np.asarray(r, dtype=bool) for r in rhythmic)
        )
        for (p, y), g in zip(pairs, rhythmic):
            g = np.asarray(g, dtype=bool)
            if split:
                plain.append(fit_isotonic(p[~g], y[~g]))
                rhythm.append(fit_isotonic(p[g], y[g]))
            else:
                plain.append(fit_isotonic(p, y))
        return cls(hs, tuple(plain), tuple(rhythm))

    def apply(self, p: FloatArray, horizon_h: FloatArray, rhythmic: np.ndarray | None = None) -> FloatArray:
        p = np.asarray(p, dtype=float)
        if not self.maps:
            return p
        out = self._apply(self.maps, p, horizon_h)
        if self.rhythm_maps and rhythmic is not None:
            g = np.broadcast_to(np.asarray(rhythmic, dtype=bool), p.shape)
            if g.any():
                h = np.broadcast_to(np.asarray(horizon_h, dtype=float), p.shape)
                out = out.copy()
                out[g] = self._apply(self.rhythm_maps, p[g], h[g])
        return out

    def _apply(self, maps: tuple[IsotonicMap, ...], p: FloatArray, horizon_h: FloatArray) -> FloatArray:
        h = np.broadcast_to(np.asarray(horizon_h, dtype=float), p.shape)
        if len(maps) == 1:
            return maps[0](p)
        logs = np.log(np.array(self.horizons_h))
        lh = np.clip(np.log(np.maximum(h, 1e-9)), logs[0], logs[-1])
        i = np.clip(np.searchsorted(logs, lh, side="right") - 1, 0, len(logs) - 2)
        frac = (lh - logs[i]) / (logs[i + 1] - logs[i])
        out = np.empty_like(p)
        for j in np.unique(i):
            sel = i == j
            lo, hi = maps[j](p[sel]), maps[j + 1](p[sel])
            out[sel] = lo + frac[sel] * (hi - lo)
        return out

    def to_wire(self) -> dict[str, list[list[object]]]:
        """Plain lists, so a committee can pin the maps in its epoch configuration."""
        return {
            "plain": [[h, list(m.xs), list(m.ys)] for h, m in zip(self.horizons_h, self.maps)],
            "rhythm": [[h, list(m.xs), list(m.ys)] for h, m in zip(self.horizons_h, self.rhythm_maps)],
        }

    @classmethod
    def from_wire(cls, obj: dict[str, list[list[object]]]) -> "Calibration":
        def maps(rows: list[list[object]]) -> tuple[list[float], list[IsotonicMap]]:
            hs: list[float] = []
            out: list[IsotonicMap] = []
            for h, xs, ys in rows:
                hs.append(float(h))  # type: ignore[arg-type]
                m = IsotonicMap(tuple(map(float, xs)), tuple(map(float, ys)))  # type: ignore[call-overload]
                if not all(math.isfinite(v) for v in m.xs + m.ys):
                    raise ValueError("calibration knots must be finite")
                out.append(m)
            return hs, out

        hs, plain = maps(obj.get("plain", []))
        hs2, rhythm = maps(obj.get("rhythm", []))
        if rhythm and hs2 != hs:
            raise ValueError("rhythm maps must cover the same horizons")
        return cls(tuple(hs), tuple(plain), tuple(rhythm))
