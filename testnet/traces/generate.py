"""Seeded synthetic availability traces from published Failure Trace Archive fits.

Host classes (all parameters in hours, Weibull ``(shape, scale)``):

- ``microsoft99`` - Microsoft corporate desktops 1999: up (0.55, 35.3), down (0.60, 9.34);
- ``condor``      - Notre Dame Condor pool: up (0.45, 4.16), down (0.51, 0.74);
- ``overnet``     - Overnet P2P peers: up (0.85, 2.04), down (0.44, 2.98).

Those three are the fitted parameters reported by Kondo, Javadi, Iosup and Epema, "The
Failure Trace Archive", CCGrid 2010. Two classes the archive does not fit as Weibull complete
a volunteer population:

- ``office``  - diurnal office desktops: switched on around 08:45 local time and off around
  17:30 on weekdays (normal jitter), sometimes left on overnight, rarely on at weekends, with
  an occasional crash; hosts spread over a few time zones;
- ``server``  - always-on machines: up Weibull (1.0, 720 h), down (0.7, 0.5 h).

Every host gets its own scales: the class scale times ``exp(N(0, scale_spread))``, drawn
independently for up and down, so hosts of one class differ as they do in the archive. The
up-time law each host was drawn from is kept on its trace (``HostTrace.law``): the churn
simulation's "known law" policy forecasts with it, to show what a perfect model could do.
Each host's process starts ``burn_in_s`` before ``start`` so the window begins in a
stationary state, not with every host freshly up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from daemon.sched.timebase import DAY, HOUR, WEEK, FloatArray
from daemon.sched.weibull import Weibull
from testnet.traces.trace import HostTrace


@dataclass(frozen=True, slots=True)
class AlternatingClass:
    """Up and down periods drawn alternately from two Weibulls (hours)."""

    name: str
    up: Weibull
    down: Weibull


FTA_CLASSES: Mapping[str, AlternatingClass] = {
    "microsoft99": AlternatingClass("microsoft99", Weibull(0.55, 35.3), Weibull(0.60, 9.34)),
    "condor": AlternatingClass("condor", Weibull(0.45, 4.16), Weibull(0.51, 0.74)),
    "overnet": AlternatingClass("overnet", Weibull(0.85, 2.04), Weibull(0.44, 2.98)),
}
SERVER = AlternatingClass("server", Weibull(1.0, 720.0), Weibull(0.7, 0.5))

DEFAULT_MIX: Mapping[str, float] = {
    "microsoft99": 0.25, "condor": 0.20, "overnet": 0.20, "office": 0.20, "server": 0.15,
}
"""The volunteer population of the benchmark: mostly desktops, a fifth P2P-like, some servers."""

OFFICE_TZ_HOURS: Sequence[int] = (-8, -5, 0, 1, 2, 5, 8, 9)
EPOCH_MONDAY = 1_704_067_200.0
"""2024-01-01 00:00 UTC, a Monday: the default start of generated traces."""


def _alternating(
    cls: AlternatingClass, rng: np.random.Generator, t0: float, t1: float, spread: float,
) -> tuple[FloatArray, Weibull]:
    """The host's up intervals, and the up-time law they were drawn from (hours)."""
    up_scale = cls.up.scale_h * math.exp(rng.normal(0.0, spread)) * HOUR
    down_scale = cls.down.scale_h * math.exp(rng.normal(0.0, spread)) * HOUR
    on = up_scale * cls.up.mean_h / cls.up.scale_h
    off = down_scale * cls.down.mean_h / cls.down.scale_h
    t = t0
    is_up = rng.random() < on / (on + off)
    out: list[tuple[float, float]] = []
    # Draw in batches: a few hundred periods at a time is far cheaper than one call each.
    while t < t1:
        ups = up_scale * rng.weibull(cls.up.shape, 256)
        downs = down_scale * rng.weibull(cls.down.shape, 256)
        for u, d in zip(ups, downs):
            if is_up:
                out.append((t, t + u))
                t += u + d
            else:
                t += d
                is_up = True
                continue
            if t >= t1:
                break
    return np.asarray(out, dtype=float).reshape(-1, 2), Weibull(cls.up.shape, up_scale / HOUR)


def _office(rng: np.random.Generator, t0: float, t1: float, tz_s: int) -> FloatArray:
    """Weekday sessions in local time, as a diurnal desktop is used."""
    out: list[tuple[float, float]] = []
    first_day = math.floor((t0 + tz_s) / DAY)
    last_day = math.ceil((t1 + tz_s) / DAY)
    start_jitter = math.exp(rng.normal(0.0, 0.3))  # some people are consistently early
    pending: float | None = None  # start of a session left on overnight
    for day in range(first_day, last_day + 1):
        weekday = (day + 3) % 7  # day 0 (1970-01-01) was a Thursday; 0 = Monday
        local0 = day * DAY - tz_s
        if weekday < 5:
            if rng.random() < 0.06 and pending is None:
                continue  # holiday or sick day
            on = local0 + (8.75 + rng.normal(0.0, 0.75 * start_jitter)) * HOUR
            off = local0 + (17.5 + rng.normal(0.0, 1.0)) * HOUR
        else:
            if rng.random() > 0.08 and pending is None:
                continue
            on = local0 + rng.uniform(9.0, 15.0) * HOUR
            off = on + rng.weibull(1.5) * 3.0 * HOUR
        start = pending if pending is not None else on
        if rng.random() < 0.10 and weekday < 4:
            pending = start  # left on overnight: the session runs into tomorrow
            continue
        pending = None
        end = max(off, start + 10 * 60.0)
        # A crash or update reboot now and then splits the session.
        while rng.random() < 0.04:
            cut = rng.uniform(start, end)
            back = cut + rng.uniform(120.0, 900.0)
            if back >= end:
                break
            out.append((start, cut))
            start = back
        out.append((start, end))
    arr = np.asarray(out, dtype=float).reshape(-1, 2)
    return arr


def generate_traces(
    n_hosts: int,
    *,
    seed: int,
    start: float = EPOCH_MONDAY,
    duration_s: float = 8 * WEEK,
    mix: Mapping[str, float] = DEFAULT_MIX,
    scale_spread: float = 0.5,
    burn_in_s: float = 2 * WEEK,
) -> list[HostTrace]:
    """``n_hosts`` traces covering ``[start - burn_in_s, start + duration_s)``, from ``seed``.

    The burn-in stays in the trace: a node's history knows when its current session really
    began, so cutting sessions at ``start`` would invent departures and arrivals.

    Classes are assigned in proportion to ``mix`` (largest remainders, so the counts are
    exact and independent of the seed); the order of hosts is shuffled by the seed.
    """
    unknown = set(mix) - set(FTA_CLASSES) - {"office", "server"}
    if unknown:
        raise ValueError(f"unknown host classes {sorted(unknown)}")
    if n_hosts < 0 or duration_s <= 0:
        raise ValueError("need n_hosts >= 0 and a positive duration")
    total = sum(mix.values())
    raw = {name: n_hosts * w / total for name, w in mix.items()}
    counts = {name: int(v) for name, v in raw.items()}
    for name in sorted(raw, key=lambda n: (counts[n] - raw[n], n))[: n_hosts - sum(counts.values())]:
        counts[name] += 1
    kinds = [name for name in mix for _ in range(counts[name])]
    rng = np.random.default_rng(seed)
    rng.shuffle(kinds)
    t0, t1 = start - burn_in_s, start + duration_s
    traces = []
    for i, kind in enumerate(kinds):
        host_rng = np.random.default_rng([seed, i])
        tz = 0
        law = None
        if kind == "office":
            tz = int(OFFICE_TZ_HOURS[int(host_rng.integers(len(OFFICE_TZ_HOURS)))] * HOUR)
            up = _office(host_rng, t0, t1, tz)
        else:
            cls = SERVER if kind == "server" else FTA_CLASSES[kind]
            up, law = _alternating(cls, host_rng, t0, t1, scale_spread)
        trace = HostTrace(f"h{i:04d}", kind, up, tz, law)
        traces.append(trace.clip(t0, t1))
    return traces
