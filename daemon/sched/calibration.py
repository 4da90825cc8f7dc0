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

Real traces taught three guards (``fit_isotonic`` and ``Calibration.fit``):

- Ties. Many pairs can share one forecast (hosts with the same summary and age); tied
  forecasts are pooled before PAV, so a tie is never split across blocks (splitting left knot
  positions a rounding error apart in the wrong order, and the map refused to build).
- Thin blocks. A block needs ``MIN_POINTS_PER_KNOT`` pairs, and its value is shrunk toward
  the raw forecast by ``SHRINK_POINTS`` pseudo-pairs: five pairs that all failed cannot send
  a raw 0.92 to 0.0.
- Worse than a constant. Isotonic regression always beats the base rate on the pairs it was
  fitted on, not on the next week. ``Calibration.fit`` therefore cross-validates (folds of
  consecutive pairs, which the benchmark orders by host) a few candidates: the isotonic map
  and the raw forecast, each alone or blended toward the base rate, ``b + w (m(p) - b)``.
  The one with the lowest held-out Brier score is kept. Blends stay strictly increasing, so
  the ranking of hosts survives even when the forecast is mostly base rate.

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


MIN_POINTS_PER_KNOT = 50
"""A knot stands for at least this many outcomes (fewer pairs: fewer knots)."""
SHRINK_POINTS = 10.0
"""Each block's observed rate is shrunk toward its mean raw forecast by this many pairs."""
BLEND_WEIGHTS = (1.0, 0.8, 0.6, 0.4, 0.25, 0.12, 0.05)
"""Candidate weights of a map against the base rate; the smallest keeps the ranking."""
CV_FOLDS = 5
MIN_CV_PAIRS = 200
"""Below this many pairs, no cross-validation: the shrunk isotonic map is used as is."""


def _pav(x: FloatArray, y: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Weighted pool-adjacent-violators on points sorted by strictly increasing ``x``.

    Returns block (mean x, mean y, weight) with strictly increasing mean y.
    """
    sx: list[float] = []
    sy: list[float] = []
    sw: list[float] = []
    for xi, yi, wi in zip((x * w).tolist(), (y * w).tolist(), w.tolist()):
        sx.append(xi)
        sy.append(yi)
        sw.append(wi)
        while len(sw) > 1 and sy[-2] * sw[-1] >= sy[-1] * sw[-2]:
            last_x, last_y, last_w = sx.pop(), sy.pop(), sw.pop()
            sx[-1] += last_x
            sy[-1] += last_y
            sw[-1] += last_w
    bw = np.array(sw)
    return np.array(sx) / bw, np.array(sy) / bw, bw


def _groups(w: FloatArray, n_groups: int) -> list[np.ndarray]:
    """Consecutive index groups of about equal total weight."""
    edges = np.searchsorted(np.cumsum(w), np.linspace(0, w.sum(), n_groups + 1)[1:-1])
    return [g for g in np.split(np.arange(w.size), np.unique(edges)) if g.size]


def fit_isotonic(
    p: FloatArray, y: FloatArray, *, max_knots: int = MAX_KNOTS,
    min_points: int = MIN_POINTS_PER_KNOT, shrink: float = SHRINK_POINTS,
) -> IsotonicMap:
    """Pool-adjacent-violators on forecasts ``p`` and 0/1 outcomes ``y``, with tied forecasts
    pooled, at least ``min_points`` pairs per knot and blocks shrunk toward the raw forecast."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.shape != y.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("need equal-length, non-empty forecasts and outcomes")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise ValueError("forecasts and outcomes must be finite")
    ux, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    uy = np.bincount(inverse, weights=y, minlength=ux.size) / counts
    bx, by, bw = _pav(ux, uy, counts.astype(float))
    n_knots = max(1, min(max_knots, int(p.size // max(min_points, 1)), bx.size))
    if bx.size > n_knots:
        groups = _groups(bw, n_knots)
        gw = np.array([bw[g].sum() for g in groups])
        bx = np.array([np.dot(bw[g], bx[g]) for g in groups]) / gw
        by = np.array([np.dot(bw[g], by[g]) for g in groups]) / gw
        bw = gw
    by = (by * bw + shrink * bx) / (bw + shrink)
    # Shrinking can reorder neighbours; one more PAV pass over the knots restores the order.
    bx, by, _ = _pav(bx, by, bw)
    xs = np.maximum.accumulate(np.clip(bx, 0.0, 1.0))
    ys = np.maximum.accumulate(np.clip(by, 0.0, 1.0))
    return IsotonicMap(tuple(float(v) for v in xs), tuple(float(v) for v in ys))


IDENTITY = IsotonicMap((0.0, 1.0), (0.0, 1.0))


def blend(m: IsotonicMap, base: float, w: float) -> IsotonicMap:
    """``base + w (m(p) - base)``: the map pulled toward a constant, still increasing."""
    return IsotonicMap(m.xs, tuple(float(base + w * (v - base)) for v in m.ys))


def fit_guarded(p: FloatArray, y: FloatArray, *, folds: int = CV_FOLDS) -> IsotonicMap:
    """The candidate map (isotonic or raw, blended toward the base rate) with the lowest
    cross-validated Brier score; see the module docstring."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.size < MIN_CV_PAIRS:
        return fit_isotonic(p, y)
    fold = np.arange(p.size) * folds // p.size
    losses = np.zeros((2, len(BLEND_WEIGHTS)))
    for k in range(folds):
        train, test = fold != k, fold == k
        base = float(y[train].mean())
        iso = fit_isotonic(p[train], y[train])
        for i, raw in enumerate((iso(p[test]), p[test])):
            for j, w in enumerate(BLEND_WEIGHTS):
                losses[i, j] += float(np.sum((base + w * (raw - base) - y[test]) ** 2))
    best = np.unravel_index(int(np.argmin(losses)), losses.shape)
    i, j = int(best[0]), int(best[1])
    m = fit_isotonic(p, y) if i == 0 else IDENTITY
    return blend(m, float(y.mean()), BLEND_WEIGHTS[j])


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
            return cls(hs, tuple(fit_guarded(p, y) for p, y in pairs))
        plain: list[IsotonicMap] = []
        rhythm: list[IsotonicMap] = []
        split = all(
            int(np.sum(g)) >= MIN_GROUP_PAIRS and int(np.sum(~g)) >= MIN_GROUP_PAIRS
            for g in (np.asarray(r, dtype=bool) for r in rhythmic)
        )
        for (p, y), g in zip(pairs, rhythmic):
            g = np.asarray(g, dtype=bool)
            if split:
                plain.append(fit_guarded(p[~g], y[~g]))
                rhythm.append(fit_guarded(p[g], y[g]))
            else:
                plain.append(fit_guarded(p, y))
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
