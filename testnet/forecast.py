"""Scoring availability forecasts on traces: fit on one window, score on the next.

The protocol the benchmark and the calibration test share:

1. Each host's node records its sessions; at the end of the fit window it fits and gossips
   its summary (``summaries_at``: the same ``AvailabilityHistory`` -> ``summarize`` path a
   daemon runs, including the wire round trip and its clamps).
2. The population prior is built from those summaries, as a node builds it from gossip.
3. Calibration is cross-fitted inside the fit window: summaries from all but its last week
   forecast that last week, and isotonic maps are fitted on the outcomes (``fit_calibration``).
   Nothing from the scoring window is used.
4. Scoring points: every ``step_s`` (random phase per host) in the scoring window at which the
   host is up, i.e. the moments a scheduler could place work on it. The outcome for horizon H
   is whether the host's current session lasts H more. The summaries stay frozen; only the
   current session start moves, as it would in gossip.

Metrics: Brier score (mean squared error of the probability), AUC (chance a host that stayed
up was ranked above one that left; ties count half), and reliability per probability decile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daemon.sched.calibration import Calibration
from daemon.sched.history import AvailabilityHistory
from daemon.sched.predictor import ModelTable, Predictor
from daemon.sched.prior import PopulationPrior
from daemon.sched.summary import AvailabilitySummary, summarize
from daemon.sched.timebase import DAY, HOUR, WEEK, FloatArray, IntArray
from testnet.traces.trace import HostTrace

CALIBRATION_HORIZONS_H = (0.25, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0)


def history_at(trace: HostTrace, t_from: float, t_to: float) -> AvailabilityHistory:
    """What the host's node has recorded by ``t_to`` about sessions ending after ``t_from``."""
    up = trace.up[(trace.up[:, 1] > t_from) & (trace.up[:, 0] < t_to)]
    done = up[up[:, 1] <= t_to]
    running = up[up[:, 1] > t_to]
    current = float(running[0, 0]) if running.size else None
    return AvailabilityHistory(
        sessions=tuple((float(s), float(e)) for s, e in done),
        current_start=current,
        last_alive=t_to if current is not None else None,
        max_age_s=max(t_to - t_from, WEEK),
    )


def summaries_at(traces: Sequence[HostTrace], t_from: float, t_to: float) -> list[AvailabilitySummary]:
    return [summarize(history_at(tr, t_from, t_to), t_to) for tr in traces]


@dataclass(frozen=True, eq=False)
class ScoringPoints:
    host: IntArray
    t: FloatArray
    session_start: FloatArray
    remaining_s: FloatArray

    def outcome(self, horizon_s: float) -> FloatArray:
        return (self.remaining_s >= horizon_s).astype(float)


def scoring_points(
    traces: Sequence[HostTrace], t0: float, t1: float, *, step_s: float, rng: np.random.Generator,
) -> ScoringPoints:
    parts = []
    for i, tr in enumerate(traces):
        ts = t0 + rng.uniform(0.0, step_s) + np.arange(0.0, t1 - t0, step_s)
        ts = ts[(ts < t1) & tr.is_up(ts)]
        parts.append((np.full(ts.size, i, dtype=np.int64), ts, tr.session_start(ts), tr.remaining_up(ts)))
    cat = [np.concatenate([p[j] for p in parts]) if parts else np.zeros(0) for j in range(4)]
    return ScoringPoints(cat[0].astype(np.int64), cat[1], cat[2], cat[3])


# -- forecasters ----------------------------------------------------------------------------------

def forecast_ours(
    predictor: Predictor, table: ModelTable, pts: ScoringPoints, horizon_s: float, *, calibrated: bool = True,
) -> FloatArray:
    return predictor.p_up_table(
        table, pts.host, pts.t, horizon_s, up_since=pts.session_start, calibrated=calibrated,
    )


def forecast_exponential(summaries: Sequence[AvailabilitySummary], pts: ScoringPoints, horizon_s: float) -> FloatArray:
    """Memoryless baseline: rate = departures / up hours of the host (population rate if none)."""
    ev = np.array([s.events for s in summaries], dtype=float)
    ex = np.array([s.exposure_h for s in summaries], dtype=float)
    pop = ev.sum() / max(ex.sum(), 1e-9)
    rate = np.where(ev > 0, ev / np.maximum(ex, 1e-9), pop)
    return np.asarray(np.exp(-rate[pts.host] * horizon_s / HOUR))


def forecast_on_fraction(summaries: Sequence[AvailabilitySummary], pts: ScoringPoints) -> FloatArray:
    """BOINC-style baseline: the host's long-run on-fraction, whatever the horizon."""
    return np.array([s.on_fraction for s in summaries])[pts.host]


# -- metrics --------------------------------------------------------------------------------------

def brier(p: FloatArray, y: FloatArray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))


def auc(p: FloatArray, y: FloatArray) -> float:
    """Mann-Whitney AUC with average ranks for ties (NaN if only one class is present)."""
    p = np.asarray(p, dtype=float)
    pos = np.asarray(y) > 0.5
    n1 = int(pos.sum())
    n0 = pos.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    _, inverse, counts = np.unique(p[order], return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = np.empty(p.size)
    ranks[order] = avg_rank[inverse]
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    lo: float
    hi: float
    count: int
    mean_forecast: float
    observed: float

    @property
    def gap(self) -> float:
        return abs(self.mean_forecast - self.observed)


def reliability(p: FloatArray, y: FloatArray, *, bins: int = 10) -> list[ReliabilityBin]:
    """Mean forecast against observed frequency in each probability decile (empty bins skipped)."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            out.append(ReliabilityBin(b / bins, (b + 1) / bins, int(sel.sum()), float(p[sel].mean()), float(y[sel].mean())))
    return out


# -- the protocol -----------------------------------------------------------------------------------

def fit_calibration(
    traces: Sequence[HostTrace],
    fit_start: float,
    fit_end: float,
    *,
    rng: np.random.Generator,
    step_s: float = HOUR / 2,
    holdout_s: float = WEEK,
    horizons_h: Sequence[float] = CALIBRATION_HORIZONS_H,
) -> Calibration:
    """Cross-fitted calibration: models from ``[fit_start, fit_end - holdout)`` forecast the
    holdout; one isotonic map per horizon is fitted on those outcomes."""
    inner_end = fit_end - holdout_s
    summaries = summaries_at(traces, fit_start, inner_end)
    raw = Predictor(prior=PopulationPrior.from_summaries(summaries))
    table = ModelTable.from_summaries(summaries)
    pts = scoring_points(traces, inner_end, fit_end, step_s=step_s, rng=rng)
    pairs = []
    groups = []
    for h in horizons_h:
        # Only points whose outcome is known by fit_end: no peeking past the fit window.
        ok = pts.t + h * HOUR <= fit_end
        sub = ScoringPoints(pts.host[ok], pts.t[ok], pts.session_start[ok], pts.remaining_s[ok])
        pairs.append((forecast_ours(raw, table, sub, h * HOUR, calibrated=False), sub.outcome(h * HOUR)))
        groups.append(table.rhythmic[sub.host])
    return Calibration.fit(horizons_h, pairs, groups)


def fitted_predictor(
    traces: Sequence[HostTrace], fit_start: float, fit_end: float, *, rng: np.random.Generator,
    calibrate: bool = True,
) -> tuple[Predictor, list[AvailabilitySummary]]:
    """The predictor and summaries a node would have at ``fit_end``."""
    summaries = summaries_at(traces, fit_start, fit_end)
    cal = fit_calibration(traces, fit_start, fit_end, rng=rng) if calibrate else Calibration.identity()
    return Predictor(prior=PopulationPrior.from_summaries(summaries), calibration=cal), summaries


# -- evaluation on a recorded trace ---------------------------------------------------------------

MIN_FOLD_HOSTS = 20
"""A fold with fewer active hosts is skipped: no population prior, no calibration worth it."""


@dataclass(frozen=True, slots=True)
class Fold:
    """Fit on ``[fit_start, fit_end)`` (calibration's holdout is its last week), score on
    ``[fit_end, score_end)``."""

    fit_start: float
    fit_end: float
    score_end: float


def rolling_folds(
    traces: Sequence[HostTrace], span: tuple[float, float], *, fit_s: float, score_s: float,
    max_folds: int, min_hosts: int = MIN_FOLD_HOSTS,
) -> list[Fold]:
    """Rolling-origin folds over ``span``: back-to-back scoring windows, each after its own
    fit window, keeping those with ``min_hosts`` hosts up at some time in the fold (a
    ten-year archive is mostly a few nodes early on), at most ``max_folds`` of them, evenly
    spread. A trace shorter than one fit and one scoring window gets one fold, 60% fit and
    40% score."""
    t0, t1 = span
    length = t1 - t0
    if length < fit_s + score_s:
        score_s = 0.4 * length
        fit_s = length - score_s
    if fit_s < WEEK + DAY:
        raise ValueError(
            f"the trace spans {length / DAY:.1f} days; scoring needs more than a week to fit "
            "on (calibration holds out a week) and time after it"
        )
    n = max(1, int((length - fit_s) // score_s))
    starts = t0 + np.arange(n) * score_s
    ends = starts + fit_s + score_s
    active = np.zeros(n, dtype=np.int64)
    for tr in traces:
        if tr.up.size:  # a fold [a, b) sees the host if some interval overlaps it
            first = np.searchsorted(tr.up[:, 1], starts, side="right")
            last = np.searchsorted(tr.up[:, 0], ends, side="left")
            active += last > first
    ok = np.flatnonzero(active >= min_hosts)
    if not ok.size:
        raise ValueError(f"no fold has {min_hosts} hosts up in it; the trace is too sparse to score")
    picks = ok[np.unique(np.round(np.linspace(0, ok.size - 1, min(ok.size, max_folds))).astype(int))]
    return [Fold(float(starts[i]), float(starts[i] + fit_s), float(ends[i])) for i in picks]


def evaluate_trace(
    traces: Sequence[HostTrace],
    folds: Sequence[Fold],
    *,
    horizons_h: Sequence[float],
    step_s: float,
    seed: int,
    data_end: float,
) -> dict[str, Any]:
    """Brier, AUC and Brier skill (against the constant base rate) of every forecaster,
    pooled over ``folds``. Outcomes are only scored where the trace shows them: a point
    counts for horizon H only if ``t + H <= data_end``."""
    names = ("ours", "on_fraction", "exponential", "base_rate")
    pooled: dict[float, dict[str, list[FloatArray]]] = {h: {k: [] for k in (*names, "y", "fold")} for h in horizons_h}
    used = 0
    hosts_seen = 0
    for k, fold in enumerate(folds):
        active = [tr for tr in traces if tr.clip(fold.fit_start, fold.score_end).up.size]
        if len(active) < MIN_FOLD_HOSTS:
            continue
        used += 1
        hosts_seen += len(active)
        rng = np.random.default_rng([seed, k])
        predictor, summaries = fitted_predictor(active, fold.fit_start, fold.fit_end, rng=rng)
        table = ModelTable.from_summaries(summaries)
        pts = scoring_points(active, fold.fit_end, fold.score_end, step_s=step_s, rng=rng)
        for h in horizons_h:
            ok = pts.t + h * HOUR <= data_end
            sub = ScoringPoints(pts.host[ok], pts.t[ok], pts.session_start[ok], pts.remaining_s[ok])
            got = pooled[h]
            got["y"].append(sub.outcome(h * HOUR))
            got["fold"].append(np.full(sub.t.size, k))
            got["ours"].append(forecast_ours(predictor, table, sub, h * HOUR))
            got["on_fraction"].append(forecast_on_fraction(summaries, sub))
            got["exponential"].append(forecast_exponential(summaries, sub, h * HOUR))
    out: dict[str, Any] = {"folds_used": used, "mean_hosts_per_fold": round(hosts_seen / max(used, 1), 1)}
    if not used:
        return out
    for h in horizons_h:
        got = {k: np.concatenate(v) for k, v in pooled[h].items() if v}
        y = got["y"]
        base = float(y.mean())
        got["base_rate"] = np.full(y.size, base)
        row: dict[str, Any] = {"points": int(y.size), "observed_rate": round(base, 5)}
        for name in names:
            row[name] = {"brier": round(brier(got[name], y), 6), "auc": round(auc(got[name], y), 4)}
        ref = row["base_rate"]["brier"]
        row["brier_skill_vs_base_rate"] = {
            name: round(1 - row[name]["brier"] / ref, 4) if ref > 0 else None
            for name in ("ours", "on_fraction", "exponential")
        }
        per_fold = [
            round(1 - brier(got["ours"][sel], y[sel]) / brier(np.full(int(sel.sum()), y[sel].mean()), y[sel]), 4)
            for sel in (got["fold"] == f for f in np.unique(got["fold"]))
            if 0 < y[sel].mean() < 1
        ]
        row["ours_skill_per_fold"] = per_fold
        out[f"{h:g}h"] = row
    return out
