"""P(node stays up for the next H | up for u, time of week, its history), from its summary.

The forecast for a node blends two survival models, both conditioned on its current uptime:

- the node's own model: Weibull in session age times its time-of-week profile
  (``survival``), from the gossiped summary;
- the population prior (``prior``), for what a few weeks of one host cannot tell.

They are mixed as a Bayesian would. The node's model gets prior weight
``w0 = n / (n + prior_events)`` for ``n`` departures (capped at ``N_TRUST``); the prior keeps
``1 - w0``, shared among its components ``j`` in proportion to the approximate likelihood of
the node's evidence under ``j``:

- its rate: ``n`` departures in ``x`` hours up, Poisson with mean ``x / mean_j``, so
  ``n log(x / mean_j) - x / mean_j``. This is what a host with one departure, or none, in a
  month says: its own shape fit is noise, but "no departure in 700 hours" rules out
  every desktop-like component;
- its shape: ``-n KL(node || j)``, which takes over as departures accumulate.

So the prior's share goes to components like the node. Surviving to age ``u`` then reweights every model by how likely it
made that survival:

    P = sum_m w_m S_m(u) P_m(H | u) / sum_m w_m S_m(u)

(``S_m(u)`` for the weights is the Weibull alone; the node's profile only enters its own
``P(H | u)`` over the forecast window.) A node with no departure yet is forecast from the
prior alone. Finally ``Calibration`` maps the blend to calibrated probabilities, with
separate maps for nodes whose summary shows a strong weekly rhythm.

``ModelTable`` stacks many summaries into arrays so that one numpy pass forecasts every
candidate of a placement, or every scoring point of the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.sched.calibration import Calibration
from daemon.sched.prior import PopulationPrior
from daemon.sched.summary import AvailabilitySummary
from daemon.sched.survival import MAX_HORIZON_S, conditional_cum_hazard
from daemon.sched.timebase import HOUR, WEEK_BINS, FloatArray, IntArray
from daemon.sched.weibull import kl_divergence, lgamma

N_TRUST = 50
"""A node's own fit never weighs more than this many departures against the prior."""
PRIOR_EVENTS = 3.0
"""The prior is worth this many departures: after three, a node's own habits dominate."""
MAX_CLAIMED_AGE_S = 87_600 * HOUR
"""Ten years (the summary's exposure bound): a bound on the arithmetic, not on the model.
Long sessions are modelled, the Weibull age terms keep telling a 200-day session from a
100-day one (a flat 90-day cap gave every long-lived host one and the same forecast on real
server traces). What a peer may claim is capped where it matters by what observers vouch
for (``vouched_since``)."""
RHYTHM_AMPLITUDE = 2.5
"""Office desktops' profiles span 5-30x between calm and busy hours; chance patterns < 1.6x."""


@dataclass(frozen=True, eq=False)
class ModelTable:
    """Summaries as arrays (row ``i`` = ``summaries[i]``; None = no summary, prior only)."""

    shape: FloatArray
    scale_h: FloatArray
    events: FloatArray
    profiles: FloatArray
    up_since: FloatArray
    """Current session start per row; NaN where the node is down (or said nothing)."""
    rhythmic: np.ndarray
    """Rows whose week profile is strong (p95/p5 > ``RHYTHM_AMPLITUDE``): calibrated apart."""
    exposure_h: FloatArray
    """Hours up behind each row's evidence (0 where it said nothing)."""

    @classmethod
    def from_summaries(cls, summaries: Sequence[AvailabilitySummary | None]) -> "ModelTable":
        n = len(summaries)
        shape = np.ones(n)
        scale = np.ones(n)
        events = np.zeros(n)
        profiles = np.ones((n, WEEK_BINS))
        up = np.full(n, np.nan)
        exposure = np.zeros(n)
        for i, s in enumerate(summaries):
            if s is None:
                continue
            exposure[i] = s.exposure_h
            if s.up_since is not None:
                up[i] = s.up_since
            if s.has_model:
                assert s.shape is not None and s.scale_h is not None
                shape[i], scale[i] = s.shape, s.scale_h
                events[i] = min(s.events, N_TRUST)
                if not s.profile.is_flat:
                    profiles[i] = s.profile.as_array()
        lo, hi = np.percentile(profiles, [5, 95], axis=1) if n else (np.ones(0), np.ones(0))
        return cls(shape, scale, events, profiles, up, hi / lo > RHYTHM_AMPLITUDE, exposure)

    def __len__(self) -> int:
        return int(self.shape.size)


@dataclass(frozen=True)
class Predictor:
    """Forecasts from summaries. Pure: ``now`` always comes from the caller."""

    prior: PopulationPrior = field(default_factory=PopulationPrior.default)
    calibration: Calibration = field(default_factory=Calibration.identity)
    prior_events: float = PRIOR_EVENTS

    def to_wire(self) -> dict[str, Any]:
        """The whole forecasting configuration as plain data. Placement is only checkable if
        primary and backups forecast alike, so the committee pins this per epoch."""
        return {
            "prior": self.prior.to_wire(),
            "calibration": self.calibration.to_wire(),
            "prior_events": self.prior_events,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> "Predictor":
        pe = obj.get("prior_events", PRIOR_EVENTS)
        if not isinstance(pe, (int, float)) or isinstance(pe, bool) or not 0 < pe < 1e6:
            raise ValueError("prior_events must be a positive number")
        return cls(
            prior=PopulationPrior.from_wire(obj.get("prior")),
            calibration=Calibration.from_wire(obj.get("calibration", {})),
            prior_events=float(pe),
        )

    def _log_weights(self, table: ModelTable, rows: IntArray, session_h: FloatArray) -> FloatArray:
        """Prior log weights for ``rows``: column 0 the node's own model, then components.

        Own model: ``n / (n + prior_events)``. Components share the rest in proportion to
        the approximate likelihood of the node's evidence under each (module docstring): the
        Poisson rate term, then ``-n KL(own || j)``. Components unlike the node get no share
        as evidence grows, so a long uptime cannot hand a flaky node's forecast to
        server-like ones, and a month without a departure cannot leave a server's forecast
        to desktop-like ones.

        The rate term counts only up time outside the current session (exposure minus the
        session's claimed age ``session_h``): survival of the current session is weighed
        later, in the forecast itself, with the age the observer vouches for, and must not
        count twice (nor let a boasted session in through the exposure). With a summary
        older than the session this undercounts, which only errs toward the prior.
        """
        n = table.events[rows]
        ck, clam = self.prior.arrays()
        kl = kl_divergence(
            table.shape[rows, None], table.scale_h[rows, None], ck[None, :], clam[None, :],
        )
        kl = np.where(n[:, None] > 0, np.maximum(kl, 0.0), 0.0)
        with np.errstate(divide="ignore"):
            own = np.log(n / (n + self.prior_events))
            rest = np.log(self.prior_events / (n + self.prior_events)) - np.log(ck.size)
        comp_mean_h = clam * np.exp(lgamma(1.0 + 1.0 / ck))
        done_h = np.clip(table.exposure_h[rows] - session_h, 0.0, MAX_CLAIMED_AGE_S / HOUR)
        expected = done_h[:, None] / comp_mean_h[None, :]
        log_expected = np.log(np.maximum(expected, 1e-300))
        comp = np.where(n[:, None] > 0, n[:, None] * log_expected, 0.0) - expected - n[:, None] * kl
        comp = comp - _logsumexp(comp, axis=1)[:, None]  # shares of the prior's weight
        return np.concatenate([own[:, None], rest[:, None] + np.log(ck.size) + comp], axis=1)

    def p_up(
        self, summary: AvailabilitySummary | None, now: float, horizon_s: float,
        *, vouched_since: float | None = None,
    ) -> float:
        """P(the node stays up for ``horizon_s`` seconds from ``now``), calibrated."""
        table = ModelTable.from_summaries([summary])
        vs = None if vouched_since is None else np.array([vouched_since])
        return float(self.p_up_table(table, np.zeros(1, dtype=np.int64), now, horizon_s, vouched_since=vs)[0])

    def p_up_many(
        self, summaries: Sequence[AvailabilitySummary | None], now: float, horizon_s: float | FloatArray,
        *, vouched_since: FloatArray | None = None,
    ) -> FloatArray:
        table = ModelTable.from_summaries(summaries)
        return self.p_up_table(table, np.arange(len(table)), now, horizon_s, vouched_since=vouched_since)

    def p_up_table(
        self,
        table: ModelTable,
        rows: IntArray,
        now: float | FloatArray,
        horizon_s: float | FloatArray,
        *,
        up_since: FloatArray | None = None,
        vouched_since: FloatArray | None = None,
        calibrated: bool = True,
    ) -> FloatArray:
        """Vectorised forecast for ``table`` rows ``rows`` (repeats allowed).

        ``up_since`` overrides the table's session starts (the benchmark replays sessions);
        ``vouched_since`` is the observer's own evidence: the uptime used is the shorter of the
        claimed one and the one the observer can vouch for (NaN = no evidence). A node that
        sent no summary but is vouched for is forecast from the prior from that time.
        """
        rows = np.asarray(rows, dtype=np.int64)
        n = rows.size
        now_a = np.broadcast_to(np.asarray(now, dtype=float), (n,)).astype(float)
        hor = np.broadcast_to(np.asarray(horizon_s, dtype=float), (n,)).astype(float)
        if np.any(hor < 0) or not np.all(np.isfinite(hor)):
            raise ValueError("forecast horizons must be finite and non-negative")
        hor = np.minimum(hor, MAX_HORIZON_S)
        start = table.up_since[rows] if up_since is None else np.asarray(up_since, dtype=float)
        start = np.minimum(start, now_a)  # no session starts in the future
        claimed_age_h = np.nan_to_num((now_a - start) / HOUR)  # its part of the claimed exposure
        if vouched_since is not None:
            vs = np.asarray(vouched_since, dtype=float)
            start = np.fmax(start, vs)  # the later start wins; NaN on either side is ignored
        start = np.maximum(start, now_a - MAX_CLAIMED_AGE_S)
        down = np.isnan(start)
        start = np.where(down, now_a, start)
        age_h = (now_a - start) / HOUR
        k, lam = table.shape[rows], table.scale_h[rows]
        lam_cond = conditional_cum_hazard(k, lam, table.profiles[rows], start, now_a, hor)
        # Log weights, per row: the node's own model, then each prior component.
        log_w = self._log_weights(table, rows, claimed_age_h)
        ck, clam = self.prior.arrays()
        age = age_h[:, None]
        own_u = -((age_h / lam) ** k)
        comp_u = -((age / clam) ** ck)
        comp_uh = -(((age + hor[:, None] / HOUR) / clam) ** ck)
        num = np.logaddexp(
            log_w[:, 0] + own_u - lam_cond, _logsumexp(log_w[:, 1:] + comp_uh, axis=1),
        )
        den = np.logaddexp(log_w[:, 0] + own_u, _logsumexp(log_w[:, 1:] + comp_u, axis=1))
        p = np.clip(np.exp(num - den), 0.0, 1.0)
        if calibrated:
            p = self.calibration.apply(p, hor / HOUR, table.rhythmic[rows])
        p = np.where(down, 0.0, p)
        return np.where(hor == 0, np.where(down, 0.0, 1.0), p)


def _logsumexp(x: FloatArray, axis: int) -> FloatArray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.asarray(np.log(np.sum(np.exp(x - top), axis=axis)) + np.squeeze(top, axis=axis))
