"""Units and the week clock shared by the availability code.

All public times are **seconds since the Unix epoch, UTC** (floats), passed in by the caller:
nothing in ``daemon.sched`` reads a clock. Durations in public APIs are seconds too; model
parameters that are easier to read in hours say so in their name (``scale_h``).

Time of week is counted in **UTC** hours, Monday 00:00 UTC = bin 0. Each host's profile is
fitted per host in UTC, so a host's local time zone is already inside its own profile and no
peer has to trust a self-reported UTC offset (see ``profile`` for why).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
WEEK_BINS = 168
"""Hourly bins in a week: the resolution of the time-of-week profile."""

_EPOCH_HOUR_OF_WEEK = 72
"""1970-01-01 00:00 UTC was a Thursday: 72 hours after Monday 00:00."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def hour_index(t: float) -> int:
    """Whole hours since the epoch of the hour containing ``t``."""
    return int(np.floor(t / HOUR))


def hour_of_week(hour_idx: int | IntArray) -> int | IntArray:
    """Week bin (0 = Monday 00:00-01:00 UTC) of an absolute hour index."""
    return (hour_idx + _EPOCH_HOUR_OF_WEEK) % WEEK_BINS
