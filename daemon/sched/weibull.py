"""The Weibull session-length model and its maximum-likelihood fit with right-censoring.

Why Weibull: the Failure Trace Archive (Kondo, Javadi, Iosup, Epema, CCGrid 2010) found that
Weibull fits the up-times of desktop grids and P2P hosts best, with shape ``k < 1``: the longer
a host has been up, the less likely it is to leave in the next hour. That is exactly the
signal a placement needs ("it has been up for u hours"), and an exponential model throws it away.

The fit works on *exposure pieces* so that one routine serves two models:

- plain Weibull: one piece ``[0, d]`` per session, multiplier 1;
- Weibull age hazard times a time-of-week multiplier (``survival``): every session cut at UTC
  hour boundaries, each piece weighted by its bin's multiplier ``m``.

With hazard ``h(a) = m(t) * k/lam * (a/lam)^(k-1)`` the log-likelihood of ``r`` observed
departures at ages ``t_i`` and pieces ``[a_p, b_p]`` is, up to terms without ``k`` or ``lam``,

    r log k - r k log lam + (k - 1) sum log t_i - lam^-k * E(k),   E(k) = sum m_p (b_p^k - a_p^k)

Censored sessions (the one still running at the end of the window, or cut by the history's
bound) contribute exposure but no departure, which is what "handled properly" means here.
For fixed ``k`` the best ``lam`` is closed-form, ``lam^k = E(k) / r``; the profile in
``u = log k`` is maximised by safeguarded Newton (bisection when a step leaves the bracket).
A weak log-normal prior on ``k`` keeps hosts with one or two departures from wild shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from daemon.sched.timebase import FloatArray

SHAPE_MIN = 0.1
SHAPE_MAX = 10.0
SHAPE_PRIOR_MEAN = math.log(0.7)
"""Prior centre for the shape: between the FTA desktop (0.45-0.6) and P2P (0.85) fits."""
SHAPE_PRIOR_SD = 0.4
"""Wide enough that 20 departures override it; narrow enough that 1 departure cannot. (At
1.0, one departure of an always-on server pushed its shape to 1.5, a wear-out law no host
class has, and its forecasts for young sessions fell from 0.98 to 0.86.)"""
MIN_EVENT_AGE_H = 1.0 / 3600.0
"""Departures earlier than one second are treated as at one second (log 0 guard)."""


@dataclass(frozen=True, slots=True)
class Weibull:
    """A Weibull distribution of session length: ``S(a) = exp(-(a / scale_h) ** shape)``."""

    shape: float
    scale_h: float

    def __post_init__(self) -> None:
        if not (self.shape > 0 and math.isfinite(self.shape)):
            raise ValueError(f"Weibull shape must be positive and finite, got {self.shape}")
        if not (self.scale_h > 0 and math.isfinite(self.scale_h)):
            raise ValueError(f"Weibull scale must be positive and finite, got {self.scale_h}")

    def cum_hazard(self, age_h: float | FloatArray) -> float | FloatArray:
        return (np.asarray(age_h, dtype=float) / self.scale_h) ** self.shape

    def survival(self, age_h: float | FloatArray) -> float | FloatArray:
        return np.exp(-self.cum_hazard(age_h))

    def conditional_survival(self, age_h: float, horizon_h: float) -> float:
        """P(session lasts ``horizon_h`` more hours | it has lasted ``age_h``)."""
        return float(np.exp(self.cum_hazard(age_h) - self.cum_hazard(age_h + horizon_h)))

    @property
    def mean_h(self) -> float:
        return self.scale_h * math.gamma(1.0 + 1.0 / self.shape)


@dataclass(frozen=True, slots=True)
class WeibullFit:
    """A fitted Weibull plus the evidence behind it (departures seen, exposure in hours)."""

    dist: Weibull
    events: int
    exposure_h: float


def fit_weibull(durations_h: FloatArray, observed: npt.NDArray[np.bool_]) -> WeibullFit | None:
    """Censored MLE of a Weibull from session lengths; ``observed[i]`` False = still running.

    Returns None when no session has ended: with zero departures there is no likelihood
    maximum for the scale (it runs to infinity) and the caller must lean on a prior.
    """
    d = np.asarray(durations_h, dtype=float)
    obs = np.asarray(observed, dtype=bool)
    if d.shape != obs.shape or d.ndim != 1:
        raise ValueError("durations and observed flags must be 1-D arrays of equal length")
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError("session durations must be finite and non-negative")
    if not obs.any():
        return None
    return fit_pieces(
        starts_h=np.zeros_like(d),
        ends_h=d,
        weights=np.ones_like(d),
        event_ages_h=d[obs],
    )


def fit_pieces(
    starts_h: FloatArray, ends_h: FloatArray, weights: FloatArray, event_ages_h: FloatArray,
    *, max_shape: float = SHAPE_MAX,
) -> WeibullFit | None:
    """Fit shape and scale given exposure pieces ``[starts_h, ends_h]`` (session ages, hours)
    with hazard multipliers ``weights``, and the ages at which departures happened."""
    r = int(event_ages_h.size)
    if r == 0:
        return None
    ev = np.maximum(event_ages_h, MIN_EVENT_AGE_H)
    # Work in units of a reference age so that b^k stays far from overflow for any k in range.
    ref = float(np.exp(np.mean(np.log(ev))))
    a = starts_h / ref
    b = ends_h / ref
    w = weights
    log_sum = float(np.sum(np.log(ev / ref)))
    la = np.log(np.where(a > 0, a, 1.0))
    lb = np.log(np.where(b > 0, b, 1.0))
    a_pos = a > 0
    b_pos = b > 0

    def moments(k: float) -> tuple[float, float, float]:
        ak = np.where(a_pos, np.exp(k * la), 0.0)
        bk = np.where(b_pos, np.exp(k * lb), 0.0)
        e0 = float(np.dot(w, bk - ak))
        e1 = float(np.dot(w, bk * lb - ak * la))
        e2 = float(np.dot(w, bk * lb * lb - ak * la * la))
        return e0, e1, e2

    def derivs(u: float) -> tuple[float, float]:
        k = math.exp(u)
        e0, e1, e2 = moments(k)
        g_k = r / k + log_sum - r * e1 / e0
        h_k = -r / (k * k) - r * (e2 / e0 - (e1 / e0) ** 2)
        du = k * g_k - (u - SHAPE_PRIOR_MEAN) / SHAPE_PRIOR_SD**2
        d2u = k * k * h_k + k * g_k - 1.0 / SHAPE_PRIOR_SD**2
        return du, d2u

    lo, hi = math.log(SHAPE_MIN), math.log(max_shape)
    g_lo, _ = derivs(lo)
    g_hi, _ = derivs(hi)
    if g_lo <= 0:
        u = lo
    elif g_hi >= 0:
        u = hi
    else:
        u = min(max(SHAPE_PRIOR_MEAN, lo), hi)
        for _ in range(60):
            g, h = derivs(u)
            if g > 0:
                lo = u
            else:
                hi = u
            if abs(g) < 1e-9 or hi - lo < 1e-10:
                break
            step = -g / h if h < 0 else math.inf
            nu = u + step
            u = nu if lo < nu < hi else 0.5 * (lo + hi)
    k = math.exp(u)
    e0, _, _ = moments(k)
    scale = ref * (e0 / r) ** (1.0 / k)
    exposure = float(np.sum(np.maximum(ends_h - starts_h, 0.0)))
    return WeibullFit(Weibull(k, scale), r, exposure)


_EULER_GAMMA = 0.5772156649015329


def lgamma(x: FloatArray) -> FloatArray:
    """log Gamma(x) for positive arrays (numpy has none and scipy is not a dependency).

    Shift ``x`` up past 8 with the recurrence, then Stirling's series; error below 1e-12.
    """
    x = np.asarray(x, dtype=float)
    shift = np.zeros_like(x)
    z = x.copy()
    for _ in range(8):
        small = z < 8.0
        shift = shift + np.where(small, np.log(np.where(small, z, 1.0)), 0.0)
        z = np.where(small, z + 1.0, z)
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 / 1680)))
    return (z - 0.5) * np.log(z) - z + 0.5 * math.log(2 * math.pi) + series - shift


def kl_divergence(k1: FloatArray, lam1: FloatArray, k2: FloatArray, lam2: FloatArray) -> FloatArray:
    """KL(Weibull(k1, lam1) || Weibull(k2, lam2)), closed form (Bauckhage, 2013), broadcasting.

    Used as the expected log-likelihood ratio per observed session: a host with ``n``
    departures fitted as ``(k1, lam1)`` makes another model about ``exp(-n KL)`` as likely.
    """
    k1, lam1, k2, lam2 = (np.asarray(v, dtype=float) for v in (k1, lam1, k2, lam2))
    with np.errstate(over="ignore"):
        tail = np.exp(k2 * np.log(lam1 / lam2) + lgamma(k2 / k1 + 1.0))
    return (
        np.log(k1) - k1 * np.log(lam1) - np.log(k2) + k2 * np.log(lam2)
        + (k1 - k2) * (np.log(lam1) - _EULER_GAMMA / k1) + tail - 1.0
    )
