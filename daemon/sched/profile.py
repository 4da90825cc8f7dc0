"""The time-of-week profile: how a host's departure hazard varies over the week.

An office desktop that has been up six hours at 15:00 on a Tuesday will probably be switched
off within three hours; the same six hours at 03:00 on a Sunday say something else. The
profile is a multiplier ``m[b]`` on the Weibull age hazard for each of the 168 UTC hours of the
week (proportional hazards): ``h(t) = m[bin(t)] * h_weibull(age(t))``. It is normalised so
that its exposure-weighted mean over the host's own up time is 1, so ``m = 1`` everywhere is
"no weekly pattern" and a flat profile reduces the model to a plain Weibull.

Why UTC and not local time: the profile is fitted per host from that host's own sessions, so
its time zone is already inside it (an office in UTC+9 simply peaks at 08:30 UTC). Local time
would need a self-reported UTC offset that peers must trust, and would buy only a shift at
daylight-saving changes, which the next refit absorbs. One fewer field to lie about.

Wire form: 168 bytes, one per bin, ``round((log2 m + 4) * 254 / 8)``, i.e. multipliers from
1/16 to 16 in steps of 2.2%, with 127 meaning exactly 1 (byte 255 reads as 254). Any 168
bytes decode to a valid profile, so bytes cannot be "bad", only wrong, and wrong is bounded
by the clamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.sched.timebase import HOUR, WEEK_BINS, FloatArray, IntArray, hour_of_week

LOG2_RANGE = 4.0
"""Multipliers are clamped to [2^-4, 2^4]."""
_STEPS = 254
KERNEL_SD_H = 1.0
"""How far a departure's evidence spreads to neighbouring hours: people leave at 17:00 give
or take an hour, so four weeks of departures at 17:10 say as much about 16:30 and 18:00."""
_LUT = np.exp2(np.minimum(np.arange(256), _STEPS) * (2 * LOG2_RANGE / _STEPS) - LOG2_RANGE)
_FLAT = bytes([_STEPS // 2]) * WEEK_BINS


@dataclass(frozen=True, slots=True)
class WeekProfile:
    """Hazard multipliers for the 168 UTC hours of the week (Monday 00:00 UTC = bin 0).

    Held in its quantised wire form, so a node's own profile and every peer's decoded copy
    are the same value, and "flat" is an exact test.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != WEEK_BINS:
            raise ValueError(f"a week profile is {WEEK_BINS} bytes")

    @classmethod
    def flat(cls) -> "WeekProfile":
        return cls(_FLAT)

    @classmethod
    def from_array(cls, m: FloatArray) -> "WeekProfile":
        """Clamp to [1/16, 16] and quantise (steps of 2.2%)."""
        m = np.asarray(m, dtype=float)
        if m.shape != (WEEK_BINS,):
            raise ValueError(f"a week profile has {WEEK_BINS} bins, got shape {m.shape}")
        return cls(_quantise(m))

    def to_bytes(self) -> bytes:
        return self.raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> "WeekProfile":
        """Any 168 bytes are a valid profile; 255 means the same as 254 and is normalised."""
        if len(raw) != WEEK_BINS:
            raise ValueError(f"a week profile is {WEEK_BINS} bytes, got {len(raw)}")
        return cls(np.minimum(np.frombuffer(raw, dtype=np.uint8), _STEPS).astype(np.uint8).tobytes())

    def as_array(self) -> FloatArray:
        return np.asarray(_LUT[np.frombuffer(self.raw, dtype=np.uint8)])

    @property
    def multipliers(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.as_array())

    @property
    def is_flat(self) -> bool:
        return self.raw == _FLAT


def _quantise(m: FloatArray) -> bytes:
    lg = np.clip(np.log2(np.maximum(m, 1e-12)), -LOG2_RANGE, LOG2_RANGE)
    q = np.rint((lg + LOG2_RANGE) * (_STEPS / (2 * LOG2_RANGE)))
    return q.astype(np.uint8).tobytes()


@dataclass(frozen=True, slots=True)
class HourPieces:
    """Sessions cut at UTC hour boundaries. Ages are hours since each piece's session start."""

    session: IntArray
    age_start_h: FloatArray
    age_end_h: FloatArray
    bin: IntArray


def split_hours(starts_s: FloatArray, ends_s: FloatArray) -> HourPieces:
    """Cut each ``[starts_s[i], ends_s[i])`` at every UTC hour boundary it crosses."""
    starts_s = np.asarray(starts_s, dtype=float)
    ends_s = np.asarray(ends_s, dtype=float)
    h0 = np.floor(starts_s / HOUR).astype(np.int64)
    h1 = np.floor(ends_s / HOUR).astype(np.int64)
    counts = h1 - h0 + 1
    session = np.repeat(np.arange(starts_s.size, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    j = np.arange(session.size, dtype=np.int64) - np.repeat(first, counts)
    hour = h0[session] + j
    t_a = np.maximum(hour * HOUR, starts_s[session])
    t_b = np.minimum((hour + 1) * HOUR, ends_s[session])
    base = starts_s[session]
    return HourPieces(
        session=session,
        age_start_h=(t_a - base) / HOUR,
        age_end_h=np.maximum(t_b - base, t_a - base) / HOUR,
        bin=np.asarray(hour_of_week(hour), dtype=np.int64),
    )


_KERNEL = np.exp(-0.5 * np.arange(-3, 4) ** 2 / KERNEL_SD_H**2)
_KERNEL /= _KERNEL.sum()


def _kernel(x: FloatArray) -> FloatArray:
    """Circular Gaussian smoothing over neighbouring hours (wraps around the day or week)."""
    out = np.zeros_like(x, dtype=float)
    for off, w in zip(range(-3, 4), _KERNEL):
        out += w * np.roll(x, off)
    return out


def _overdispersion(events: FloatArray, expected: FloatArray) -> float:
    """Method-of-moments variance of the rate multipliers behind Poisson counts.

    If counts ``d_i ~ Poisson(e_i * m_i)`` with ``m_i`` of mean 1 and variance ``tau2``, then
    ``E[(d_i - e_i)^2 - e_i] = e_i^2 * tau2``. Zero means the counts are no more spread than
    chance: the host has no pattern at this resolution.
    """
    denom = float(np.sum(expected**2))
    if denom <= 0:
        return 0.0
    return max(0.0, float(np.sum((events - expected) ** 2 - expected)) / denom)


def smooth_rates(events: FloatArray, exposure: FloatArray) -> FloatArray:
    """Hazard multipliers per week bin from departures and Weibull exposure per bin.

    Four weeks give each hour-of-week bin only four looks, so the estimate is empirical
    Bayes in two levels, gamma-Poisson at each:

    1. hour of day (seven days pooled): multiplier ``(d + a) / (e + a)`` where ``e`` is the
       departures expected in that hour without a pattern and ``a = 1 / tau2`` with ``tau2``
       the between-hour variance estimated from the counts themselves. A host whose
       departures are spread like chance gets ``tau2 = 0``: a flat profile, no noise fitted.
       An office desktop that leaves at 17:00 gets a small ``a``: its data speak.
    2. hour of week, shrunk the same way toward its hour-of-day multiplier.

    Finally neighbouring hours are averaged lightly (a departure at 17:55 is evidence about
    18:05 too) and the profile is normalised to exposure-weighted mean 1.
    """
    total_d = float(events.sum())
    total_x = float(exposure.sum())
    if total_d <= 0 or total_x <= 0:
        return np.ones(WEEK_BINS)
    expected = exposure * (total_d / total_x)
    d_day = events.reshape(7, 24).sum(axis=0)
    e_day = expected.reshape(7, 24).sum(axis=0)
    tau2 = _overdispersion(d_day, e_day)
    if tau2 <= 0:
        return np.ones(WEEK_BINS)
    m_day = (_kernel(d_day) + 1.0 / tau2) / (_kernel(e_day) + 1.0 / tau2)
    base = np.tile(m_day, 7)
    e_wk = expected * base
    tau2_wk = _overdispersion(events, e_wk)
    if tau2_wk > 0:
        a = 1.0 / tau2_wk
        m = base * (_kernel(events) + a) / (_kernel(e_wk) + a)
    else:
        m = base
    m = m * (total_x / float(np.dot(m, exposure)))
    return np.clip(m, 2.0**-LOG2_RANGE, 2.0**LOG2_RANGE)
