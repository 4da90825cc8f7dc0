"""Combine the round's client updates into one: FedAvg, coordinate median, trimmed mean.

Every rule takes the certified updates of one round (``local - global`` per client, already
decoded) and returns the update the server adds to the global model. They differ in what one
bad update can do:

==============  ======================================  =================================
rule            result per coordinate                   one Byzantine client can
==============  ======================================  =================================
fedavg          mean weighted by sample count           move it anywhere (no breakdown)
median          coordinate-wise median                  not move it past honest values
trimmed_mean    mean after dropping the ``trim`` share  not move it past honest values
                of highest and lowest values            while under ``trim`` of clients
==============  ======================================  =================================

FedProx is not an aggregation rule: it adds ``mu/2 * ||w - w_global||^2`` to each client's
local objective (``prox_gradient``) so that clients with many local steps on skewed data drift
less, and the server then averages as FedAvg does. Certification already stops a worker from
lying about what its task computed; the robust rules are for honest-but-skewed or poisoned
*data*, which replication cannot see.

Pure and deterministic: same updates in, same bytes out (sums run in float64, in name order,
over clients in the order given; callers sort clients by id).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence

import numpy as np

from daemon.fl.params import FLError, Params, stack


class Rule(enum.Enum):
    FEDAVG = "fedavg"
    FEDPROX = "fedprox"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"

    @classmethod
    def parse(cls, text: str) -> Rule:
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise FLError(f"aggregation {text!r} is unknown; use one of {names}") from None


DEFAULT_TRIM = 0.2


def aggregate(rule: Rule, updates: Sequence[Mapping[str, np.ndarray]],
              weights: Sequence[float] | None = None, *, trim: float = DEFAULT_TRIM) -> Params:
    """The round's combined update under ``rule`` (FEDPROX aggregates as FEDAVG)."""
    if not updates:
        raise FLError("no updates to aggregate")
    if rule in (Rule.FEDAVG, Rule.FEDPROX):
        return fedavg(updates, weights)
    if rule is Rule.MEDIAN:
        return coordinate_median(updates)
    return trimmed_mean(updates, trim)


def fedavg(updates: Sequence[Mapping[str, np.ndarray]],
           weights: Sequence[float] | None = None) -> Params:
    """Mean of the updates weighted by ``weights`` (each client's sample count; equal if None)."""
    w = np.ones(len(updates)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(updates),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise FLError("fedavg weights must be one non-negative number per update, not all zero")
    w = w / w.sum()
    return {name: np.tensordot(w, stack(updates, name).astype(np.float64), axes=1)
            .astype(np.float32) for name in sorted(updates[0])}


def coordinate_median(updates: Sequence[Mapping[str, np.ndarray]]) -> Params:
    """The median of each coordinate over clients (mean of the middle two for even counts)."""
    return {name: np.median(stack(updates, name).astype(np.float64), axis=0).astype(np.float32)
            for name in sorted(updates[0])}


def trimmed_mean(updates: Sequence[Mapping[str, np.ndarray]], trim: float = DEFAULT_TRIM) -> Params:
    """Per coordinate, drop the ``floor(trim * n)`` largest and smallest values, average the rest."""
    if not 0.0 <= trim < 0.5:
        raise FLError(f"trim must be in [0, 0.5), got {trim}")
    n = len(updates)
    cut = math.floor(trim * n)
    out: Params = {}
    for name in sorted(updates[0]):
        values = np.sort(stack(updates, name).astype(np.float64), axis=0)
        out[name] = values[cut:n - cut].mean(axis=0).astype(np.float32)
    return out


def prox_gradient(local: Mapping[str, np.ndarray], global_: Mapping[str, np.ndarray],
                  mu: float) -> Params:
    """FedProx's extra gradient ``mu * (w - w_global)``, added to the local loss's gradient."""
    if mu < 0 or not math.isfinite(mu):
        raise FLError(f"FedProx mu must be a finite number >= 0, got {mu}")
    return {name: (np.float32(mu) * (local[name] - global_[name])).astype(np.float32)
            for name in sorted(local)}
