"""The availability summary a node gossips in its capability record, and its wire form.

Peers forecast a node from this alone, never from its raw sessions: the fitted Weibull
(shape, scale), the evidence behind it (departures, up hours), the on-fraction, the 168-bin
time-of-week profile, and when the current session began. About 240 bytes as msgpack.

What a node can lie about. All of it: this is self-reported soft state. Decoding therefore

- rejects what is not a summary at all (wrong types, NaN, negative times, wrong sizes) with
  ``MalformedMessage`` (``UnsupportedVersion`` for a version we do not speak), and
- clamps what is merely implausible into the range real hosts produce (shape 0.1-10, scale
  one minute to one year, at most a million departures, 10 years of up time).

The predictor adds the clamps that need context: ``up_since`` no later than ``now`` and no
earlier than the observer's own evidence allows, and never more than ``N_TRUST`` departures
of weight, so the population prior always keeps a say. A liar can still claim to be a
great host; what stops it is reputation (hard state, kept by the committee), which drops
when the tasks it took are not finished, and placement multiplies by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from daemon.sched.history import AvailabilityHistory
from daemon.sched.profile import WeekProfile
from daemon.sched.timebase import WEEK_BINS
from protocol.errors import MalformedMessage, UnsupportedVersion

WIRE_VERSION = 1
MAX_WIRE_KEYS = 16
SHAPE_RANGE = (0.1, 10.0)
SCALE_H_RANGE = (1.0 / 60.0, 8760.0)
MAX_EVENTS = 1_000_000
MAX_EXPOSURE_H = 87_600.0
MAX_TIME_S = 32_503_680_000.0
"""Year 3000: any later timestamp is garbage, not a clock skew."""


@dataclass(frozen=True, slots=True)
class AvailabilitySummary:
    """A node's availability as it tells it (see the module docstring for what is trusted)."""

    shape: float | None
    """Weibull shape of session length; None until the node has seen a departure."""
    scale_h: float | None
    events: int
    exposure_h: float
    on_fraction: float
    up_since: float | None
    """Start of the current session, epoch seconds; None if the node says it is down."""
    profile: WeekProfile

    @property
    def has_model(self) -> bool:
        return self.shape is not None and self.scale_h is not None and self.events > 0

    # -- wire ------------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-ready dict with short keys. Flat profiles are omitted (saves 170 bytes)."""
        out: dict[str, Any] = {
            "v": WIRE_VERSION, "n": self.events, "x": self.exposure_h, "f": self.on_fraction,
        }
        if self.shape is not None and self.scale_h is not None:
            out["k"] = self.shape
            out["s"] = self.scale_h
        if self.up_since is not None:
            out["u"] = self.up_since
        if not self.profile.is_flat:
            out["p"] = self.profile.to_bytes()
        return out

    @classmethod
    def from_wire(cls, obj: object) -> "AvailabilitySummary":
        """Decode an untrusted summary; raises only ``RemoteProtocolError`` subclasses."""
        if not isinstance(obj, dict):
            raise MalformedMessage("availability summary must be a map")
        if len(obj) > MAX_WIRE_KEYS:
            raise MalformedMessage(f"availability summary has {len(obj)} keys (max {MAX_WIRE_KEYS})")
        version = obj.get("v")
        if not _is_int(version):
            raise MalformedMessage("availability summary lacks an integer version 'v'")
        if version != WIRE_VERSION:
            raise UnsupportedVersion(f"availability summary version {version} (we speak {WIRE_VERSION})")
        events = obj.get("n")
        if not isinstance(events, int) or isinstance(events, bool) or events < 0:
            raise MalformedMessage("availability summary 'n' must be a non-negative integer")
        exposure = _num(obj, "x", required=True)
        on_fraction = _num(obj, "f", required=True)
        shape = _num(obj, "k", required=False)
        scale = _num(obj, "s", required=False)
        up_since = _num(obj, "u", required=False)
        assert exposure is not None and on_fraction is not None
        if (shape is None) != (scale is None):
            raise MalformedMessage("availability summary needs both 'k' and 's' or neither")
        if shape is not None and (shape <= 0 or scale is None or scale <= 0):
            raise MalformedMessage("Weibull shape and scale must be positive")
        if exposure < 0 or not 0.0 <= on_fraction <= 1.0:
            raise MalformedMessage("exposure must be >= 0 and on-fraction within [0, 1]")
        if up_since is not None and not 0.0 <= up_since <= MAX_TIME_S:
            raise MalformedMessage("'u' must be an epoch time in seconds")
        raw_profile = obj.get("p", b"")
        if not isinstance(raw_profile, bytes) or len(raw_profile) not in (0, WEEK_BINS):
            raise MalformedMessage(f"'p' must be {WEEK_BINS} bytes (or absent)")
        profile = WeekProfile.from_bytes(raw_profile) if raw_profile else WeekProfile.flat()
        if shape is not None and scale is not None:
            shape = min(max(shape, SHAPE_RANGE[0]), SHAPE_RANGE[1])
            scale = min(max(scale, SCALE_H_RANGE[0]), SCALE_H_RANGE[1])
        return cls(
            shape=shape,
            scale_h=scale,
            events=min(int(events), MAX_EVENTS),
            exposure_h=min(exposure, MAX_EXPOSURE_H),
            on_fraction=on_fraction,
            up_since=up_since,
            profile=profile,
        )


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _num(obj: dict[Any, Any], key: str, *, required: bool) -> float | None:
    x = obj.get(key)
    if x is None:
        if required:
            raise MalformedMessage(f"availability summary lacks '{key}'")
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise MalformedMessage(f"availability summary '{key}' must be a number")
    xf = float(x)
    if not math.isfinite(xf):
        raise MalformedMessage(f"availability summary '{key}' must be finite")
    return xf


def summarize(history: AvailabilityHistory, now: float) -> AvailabilitySummary:
    """What this node gossips about itself at ``now``: fit its history, then round-trip the
    wire form so the local copy equals what every peer decodes (same clamps, same bytes)."""
    model = history.fit(now)
    raw = AvailabilitySummary(
        shape=model.weibull.shape if model else None,
        scale_h=model.weibull.scale_h if model else None,
        events=model.events if model else 0,
        exposure_h=model.exposure_h if model else history.up_hours(now),
        on_fraction=history.on_fraction(now),
        up_since=history.current_start,
        profile=model.profile if model else WeekProfile.flat(),
    )
    return AvailabilitySummary.from_wire(raw.to_wire())
