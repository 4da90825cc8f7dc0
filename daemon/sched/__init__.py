"""Scheduling decisions: forecast which volunteers stay online, place tasks on them, say why.

Pure (sans-I/O): every function takes ``now`` (seconds since the Unix epoch, UTC) from its
caller; nothing here reads a clock or a global random generator.

Modules, in the order data flows through them:

- ``timebase``    -- units (seconds; model scales in hours) and the UTC week clock.
- ``history``     -- ``AvailabilityHistory``: the sessions a node records about itself
  (``started`` / ``alive`` / ``stopped``), bounded, crash-aware.
- ``weibull``     -- the Weibull session model, its censored MLE (Newton on the shape), KL.
- ``profile``     -- ``WeekProfile``: 168 UTC-hour hazard multipliers, empirical-Bayes fit.
- ``survival``    -- ``fit_host_model``: Weibull age hazard x week profile, fitted together.
- ``summary``     -- ``AvailabilitySummary``: the ~240-byte gossiped form, ``to_wire`` /
  ``from_wire`` (validates and clamps untrusted input), ``summarize(history, now)``.
- ``prior``       -- ``PopulationPrior``: Weibull mixture for nodes we know little about.
- ``calibration`` -- ``Calibration``: isotonic maps per horizon, so forecasts are probabilities.
- ``predictor``   -- ``Predictor.p_up(summary, now, horizon_s)``: the calibrated forecast.
- ``placement``   -- ``place(PlacementInputs) -> Placement``, ``check_placement``.
- ``explain``     -- ``Explanation``: per chosen and best rejected peer, factors and reason.
"""

from daemon.sched.calibration import Calibration, IsotonicMap, fit_isotonic
from daemon.sched.explain import REASON_CODES, Explanation, Factors, PeerVerdict
from daemon.sched.history import AvailabilityHistory
from daemon.sched.placement import (
    Candidate,
    Placement,
    PlacementInputs,
    TaskNeeds,
    check_placement,
    place,
)
from daemon.sched.predictor import ModelTable, Predictor
from daemon.sched.prior import PopulationPrior
from daemon.sched.profile import WeekProfile
from daemon.sched.summary import AvailabilitySummary, summarize
from daemon.sched.survival import HostModel, fit_host_model
from daemon.sched.weibull import Weibull, WeibullFit, fit_weibull

__all__ = [
    "REASON_CODES",
    "AvailabilityHistory",
    "AvailabilitySummary",
    "Calibration",
    "Candidate",
    "Explanation",
    "Factors",
    "HostModel",
    "IsotonicMap",
    "ModelTable",
    "PeerVerdict",
    "Placement",
    "PlacementInputs",
    "PopulationPrior",
    "Predictor",
    "TaskNeeds",
    "WeekProfile",
    "Weibull",
    "WeibullFit",
    "check_placement",
    "fit_host_model",
    "fit_isotonic",
    "fit_weibull",
    "place",
    "summarize",
]
