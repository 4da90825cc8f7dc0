"""Which clients train this round: by utility φ = similarity × predicted time before leaving.

Volunteers leave. An update from a client that leaves mid-round is lost, and its slot could
have gone to one that stays. The utility of client ``i`` (after Zhang et al., φ = α × β)::

    alpha_i = (1 + cos(last update of i, last global update)) / 2    in [0, 1]; 1 if unseen
    beta_i  = min(predicted seconds before i leaves, horizon) / horizon  in [0, 1]
    phi_i   = alpha_i * beta_i

``beta`` comes from the availability forecast (``daemon.sched``: the host's fitted session
law, conditioned on its current session's age), ``horizon`` is about one round. Clients are
then drawn without replacement with probability proportional to ``phi`` (Efraimidis-Spirakis
keys ``u ** (1 / phi)``), not simply the top ``k``: the top ``k`` would pick the same
long-lived clients every round and, on non-IID data, train only on their classes. Unseen
clients get ``alpha = 1`` so every client is tried once.

``select_random`` is the baseline: ``k`` clients uniformly. Both take a seeded
``random.Random`` and return sorted client indices, so a seed replays a run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import numpy as np

from daemon.fl.params import FLError, cosine

PHI_FLOOR = 1e-6
"""Every client keeps a tiny chance, so a wrong forecast is not forever."""


def similarity(last_update: Mapping[str, np.ndarray] | None,
               global_update: Mapping[str, np.ndarray] | None) -> float:
    """alpha: how well a client's last update agreed with the round's combined one."""
    if last_update is None or global_update is None:
        return 1.0
    return (1.0 + cosine(last_update, global_update)) / 2.0


def staying_power(remaining_s: float, horizon_s: float) -> float:
    """beta: the predicted time before leaving, as a share of ``horizon_s`` (capped at 1)."""
    if horizon_s <= 0:
        raise FLError("the selection horizon must be > 0 seconds")
    if not remaining_s > 0:
        return 0.0
    return min(remaining_s, horizon_s) / horizon_s


def utilities(alpha: Sequence[float], beta: Sequence[float]) -> list[float]:
    """phi per client."""
    if len(alpha) != len(beta):
        raise FLError("one similarity and one staying power per client")
    return [max(PHI_FLOOR, a * b) for a, b in zip(alpha, beta)]


def select_phi(rng: random.Random, phi: Sequence[float], k: int) -> list[int]:
    """``k`` clients drawn without replacement with probability proportional to ``phi``."""
    _check_k(k, len(phi))
    keys = []
    for i, weight in enumerate(phi):
        u = rng.random()
        w = max(float(weight), PHI_FLOOR)
        keys.append((math.log(u) / w if u > 0 else -math.inf, i))
    keys.sort(reverse=True)
    return sorted(i for _, i in keys[:k])


def select_random(rng: random.Random, n: int, k: int) -> list[int]:
    """``k`` of ``n`` clients, uniformly."""
    _check_k(k, n)
    return sorted(rng.sample(range(n), k))


def _check_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise FLError(f"clients per round must be between 1 and the {n} clients, got {k}")
