"""A host's survival model: Weibull in session age times a time-of-week multiplier.

``fit_host_model`` fits it to the sessions a node recorded about itself; ``conditional_cum_hazard``
evaluates it for many (host, session start, now, horizon) queries at once, which is what both
placement (all candidates for one task) and the benchmark (every scoring point) need.

Fitting alternates two closed-ish steps until the profile settles (a handful of rounds):
(1) the Weibull given the profile multipliers (``weibull.fit_pieces``: Newton on the shape,
censoring included); (2) the profile given the Weibull (departures per UTC week-hour over the
Weibull exposure in that hour, shrunk by ``profile.smooth_rates``). Each step cannot lower the
penalised likelihood, so the alternation converges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.sched.profile import WeekProfile, smooth_rates, split_hours
from daemon.sched.timebase import HOUR, WEEK_BINS, FloatArray, hour_of_week
from daemon.sched.weibull import SHAPE_MAX, Weibull, fit_pieces

FIT_ROUNDS = 6
PATTERN_MAX_SHAPE = 1.0
"""With a weekly pattern, the profile carries the rhythm and age may only calm the hazard."""
MAX_HORIZON_S = 30 * 24 * HOUR
"""Forecasts further out than 30 days are refused: no volunteer history supports them."""


@dataclass(frozen=True, slots=True)
class HostModel:
    """What a node knows about its own availability: the fitted model and its evidence."""

    weibull: Weibull
    profile: WeekProfile
    events: int
    """Departures observed (sessions that ended inside the history)."""
    exposure_h: float
    """Total up time observed, hours."""


def fit_host_model(
    starts_s: FloatArray,
    ends_s: FloatArray,
    observed: np.ndarray,
    *,
    with_profile: bool = True,
    rounds: int = FIT_ROUNDS,
) -> HostModel | None:
    """Fit sessions ``[starts_s, ends_s)``; ``observed[i]`` False marks a censored session.

    Returns None with no departure at all (no scale can be estimated; use the prior).
    """
    starts_s = np.asarray(starts_s, dtype=float)
    ends_s = np.asarray(ends_s, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    if not (starts_s.shape == ends_s.shape == observed.shape) or starts_s.ndim != 1:
        raise ValueError("session arrays must be 1-D and of equal length")
    if np.any(ends_s < starts_s):
        raise ValueError("a session cannot end before it starts")
    if not observed.any():
        return None
    pieces = split_hours(starts_s, ends_s)
    a, b = pieces.age_start_h, pieces.age_end_h
    event_ages = (ends_s - starts_s)[observed] / HOUR
    end_hour = np.maximum(np.ceil(ends_s / HOUR) - 1, np.floor(starts_s / HOUR)).astype(np.int64)
    event_bins = np.asarray(hour_of_week(end_hour[observed]), dtype=np.int64)
    events_per_bin = np.asarray(np.bincount(event_bins, minlength=WEEK_BINS), dtype=float)
    m = np.ones(WEEK_BINS)
    fit = fit_pieces(a, b, m[pieces.bin], event_ages)
    assert fit is not None  # observed.any() guarantees a departure
    if with_profile:
        for _ in range(rounds):
            k, lam = fit.dist.shape, fit.dist.scale_h
            inc = (b / lam) ** k - (a / lam) ** k
            exposure = np.asarray(np.bincount(pieces.bin, weights=inc, minlength=WEEK_BINS), dtype=float)
            m = smooth_rates(events_per_bin, exposure)
            # Quantise now so the fitted Weibull matches the profile peers will decode.
            m = WeekProfile.from_array(m).as_array()
            cap = PATTERN_MAX_SHAPE if np.any(m != 1.0) else SHAPE_MAX
            new = fit_pieces(a, b, m[pieces.bin], event_ages, max_shape=cap)
            assert new is not None
            done = abs(new.dist.shape - fit.dist.shape) < 1e-3 * fit.dist.shape
            fit = new
            if done:
                break
    profile = WeekProfile.from_array(m) if with_profile else WeekProfile.flat()
    return HostModel(fit.dist, profile, fit.events, float(np.sum(b - a)))


def conditional_cum_hazard(
    shape: FloatArray,
    scale_h: FloatArray,
    profiles: FloatArray,
    session_start_s: FloatArray,
    now_s: FloatArray,
    horizon_s: FloatArray,
) -> FloatArray:
    """Cumulative hazard over ``[now, now + horizon)`` for a session that began at ``start``.

    All arguments are arrays of one length ``n`` except ``profiles``, shape ``(n, 168)``.
    ``exp(-result)`` is P(the session lasts ``horizon`` more | it lasted until ``now``).
    """
    horizon_s = np.minimum(np.asarray(horizon_s, dtype=float), MAX_HORIZON_S)
    now_s = np.asarray(now_s, dtype=float)
    n = now_s.size
    if n == 0:
        return np.zeros(0)
    n_pieces = int(np.ceil(float(np.max(horizon_s)) / HOUR)) + 1
    h0 = np.floor(now_s / HOUR).astype(np.int64)
    hours = h0[:, None] + np.arange(n_pieces, dtype=np.int64)[None, :]
    end = (now_s + horizon_s)[:, None]
    t_a = np.maximum(hours * HOUR, now_s[:, None])
    t_b = np.minimum((hours + 1) * HOUR, end)
    t_b = np.maximum(t_b, t_a)
    start = np.asarray(session_start_s, dtype=float)[:, None]
    k = np.asarray(shape, dtype=float)[:, None]
    lam = np.asarray(scale_h, dtype=float)[:, None]
    a = np.maximum(t_a - start, 0.0) / HOUR
    b = np.maximum(t_b - start, 0.0) / HOUR
    inc = (b / lam) ** k - (a / lam) ** k
    bins = np.asarray(hour_of_week(hours), dtype=np.int64)
    m = np.take_along_axis(profiles, bins, axis=1) if profiles.shape[0] == n else profiles[0][bins]
    return np.asarray(np.sum(m * inc, axis=1), dtype=float)
