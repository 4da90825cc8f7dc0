"""The population prior: how long a session lasts on a host we know nothing about.

A mixture of Weibulls, one component per (sampled) known host, equally weighted. For a new
node the forecast is the mixture conditioned on the node's current uptime,

    P(up H more | up u) = sum_j w_j S_j(u + H) / sum_j w_j S_j(u),

which is what "a random host from this population that has already been up u hours" means:
surviving to ``u`` shifts weight toward the long-lived components, so even the prior learns
from uptime (Bayes' rule, not a tuned curve).

``default()`` uses the three Failure Trace Archive fits (Microsoft99, Notre Dame Condor,
Overnet) until a node has seen enough peers; ``from_summaries`` builds the empirical prior
from gossiped summaries, choosing components deterministically (sorted quantiles of the
fitted scale) so nodes that saw the same summaries build the same prior.

Hosts that never left. A summary without a departure has no fit, but it is evidence all the
same: on a server cluster most hosts have none in a few weeks, and a prior built from the
hosts that did fail alone describes the flaky few and forecasts every unknown host as one of
them (on the LANL trace it forecast three times the failures that came). Each such host with
at least ``MIN_EXPOSURE_H`` hours up contributes a component with the prior's shape and the
mean of "one departure right after what was seen" (rule of one: mean = hours up), a lower
bound on how long-lived it is; it enters the quantile picks like any fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from daemon.sched.summary import AvailabilitySummary
from daemon.sched.timebase import FloatArray
from daemon.sched.weibull import SHAPE_PRIOR_MEAN, Weibull

MAX_COMPONENTS = 32
MIN_EXPOSURE_H = 24.0
"""A host with no departure joins the prior once it has been up this long: a day up says
little against the desktop-like components, a week says a lot."""
MIN_EVENTS_FOR_PRIOR = 1
"""A summary joins the prior once it has a fit. Requiring more kept every always-on host (one
departure a month) out, and the prior then had no component for them to lean on."""


@dataclass(frozen=True, slots=True)
class PopulationPrior:
    """Equally weighted Weibull components (shape, scale in hours)."""

    components: tuple[Weibull, ...]

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a population prior needs at least one component")
        if len(self.components) > MAX_COMPONENTS:
            raise ValueError(f"at most {MAX_COMPONENTS} prior components")

    @classmethod
    def default(cls) -> "PopulationPrior":
        """The FTA fits of Kondo et al. (CCGrid 2010): desktops, a Condor pool, P2P peers."""
        return cls((Weibull(0.55, 35.3), Weibull(0.45, 4.16), Weibull(0.85, 2.04)))

    @classmethod
    def from_summaries(
        cls, summaries: Iterable[AvailabilitySummary], *, max_components: int = MAX_COMPONENTS,
    ) -> "PopulationPrior":
        """The empirical prior of the hosts we have heard from (the default if too few)."""
        shape0 = math.exp(SHAPE_PRIOR_MEAN)
        fits = []
        for s in summaries:
            if s.has_model and s.events >= MIN_EVENTS_FOR_PRIOR and s.shape is not None and s.scale_h is not None:
                fits.append((s.scale_h, s.shape))
            elif s.events == 0 and s.exposure_h >= MIN_EXPOSURE_H:
                fits.append((s.exposure_h / math.gamma(1.0 + 1.0 / shape0), shape0))
        fits.sort()
        if len(fits) < 3:
            return cls.default()
        n = min(max_components, MAX_COMPONENTS, len(fits))
        picks = np.unique(np.round(np.linspace(0, len(fits) - 1, n)).astype(int))
        return cls(tuple(Weibull(fits[i][1], fits[i][0]) for i in picks))

    def to_wire(self) -> list[list[float]]:
        return [[c.shape, c.scale_h] for c in self.components]

    @classmethod
    def from_wire(cls, obj: object) -> "PopulationPrior":
        """Raises ValueError on anything but 1-32 finite, positive (shape, scale) pairs."""
        if not isinstance(obj, list) or not 1 <= len(obj) <= MAX_COMPONENTS:
            raise ValueError(f"a prior is a list of 1..{MAX_COMPONENTS} [shape, scale_h] pairs")
        comps = []
        for pair in obj:
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
                raise ValueError("a prior component is [shape, scale_h]")
            comps.append(Weibull(float(pair[0]), float(pair[1])))
        return cls(tuple(comps))

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        return (
            np.array([c.shape for c in self.components]),
            np.array([c.scale_h for c in self.components]),
        )

    def log_survival(self, age_h: FloatArray) -> FloatArray:
        """log of the mixture's S(age), for an array of ages (hours)."""
        k, lam = self.arrays()
        age = np.asarray(age_h, dtype=float)[..., None]
        logs = -((age / lam) ** k) - math.log(len(self.components))
        top = np.max(logs, axis=-1)
        return np.asarray(top + np.log(np.sum(np.exp(logs - top[..., None]), axis=-1)))

    def conditional_survival(self, age_h: float, horizon_h: float) -> float:
        """P(session lasts ``horizon_h`` more hours | it has lasted ``age_h``)."""
        lo = self.log_survival(np.array([age_h, age_h + horizon_h]))
        return float(math.exp(lo[1] - lo[0]))
