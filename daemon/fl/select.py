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

In real jobs (``selection = "phi"`` in the FL job file) a client is a data shard, trained by
whichever volunteers placement picks, so its ``beta`` is that of the volunteers that would run
it: the holders of its error-feedback residual, or its last round's workers (placement tends to
pick them again, and they are the ones whose link its level was planned on), as the mean of
their staying shares (``staying_shares``: the availability forecast of ``daemon.sched`` over
the published capability records); a client never trained, or whose volunteers are all gone,
gets the mean over the live volunteers (where a new task lands). Its ``alpha`` is the
similarity of its last certified update with the aggregate step of that round (kept as one
number per client, so a resumed run has it too; 1 for a client not yet seen).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from daemon.fl.params import FLError, cosine
from protocol.errors import RemoteProtocolError

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


def client_beta(workers: Sequence[str], staying: Mapping[str, float]) -> float:
    """beta for one real-job client: the mean staying share of the volunteers that would run it
    (``workers``: its residual's holders or last workers) that are live, else of every live
    volunteer, else 1 (nothing forecast: no preference)."""
    known = [staying[w] for w in workers if w in staying]
    pool = known or list(staying.values())
    return float(sum(pool) / len(pool)) if pool else 1.0


def phi_rows(clients: Sequence[str], alpha: Mapping[str, float],
             workers: Mapping[str, Sequence[str]],
             staying: Mapping[str, float]) -> list[tuple[float, float, float]]:
    """(alpha, beta, phi) per client of a real job, in ``clients``' order."""
    a = [float(alpha.get(c, 1.0)) for c in clients]
    b = [client_beta(workers.get(c, ()), staying) for c in clients]
    return list(zip(a, b, utilities(a, b)))


def choose(selection: str, rng: random.Random, phi: Sequence[float], k: int) -> list[int]:
    """A round's clients by the job's ``selection``; both draw ``len(phi)`` or fewer numbers
    from ``rng`` and are replayed by the same seed."""
    if selection == "phi":
        return select_phi(rng, phi, k)
    if selection == "random":
        return select_random(rng, len(phi), k)
    raise FLError(f"selection must be random or phi, got {selection!r}")


STAYING_STEPS = 8
"""Points of the forecast averaged into a staying share (E[min(T, h)] / h, right Riemann)."""


def staying_shares(candidates: Sequence[Any], now_s: float, horizon_s: float,
                   predictor: Any = None) -> dict[str, float]:
    """Each live volunteer's predicted time before leaving, as a share of ``horizon_s``
    (``staying_power`` of it): the mean of P(still up at t) over ``STAYING_STEPS`` points of
    the horizon, from the availability summary its capability record publishes (the forecast
    placement uses: ``daemon.sched.Predictor``, conditioned on its session's age, no later
    than this node has seen it up). ``candidates``: ``CandidateWire`` records."""
    from daemon.sched import Predictor
    from daemon.sched.summary import AvailabilitySummary

    if horizon_s <= 0:
        raise FLError("the selection horizon must be > 0 seconds")
    predictor = predictor or Predictor()
    summaries, vouched, nodes = [], [], []
    for c in candidates:
        try:
            summary = (AvailabilitySummary.from_wire(c.availability)
                       if c.availability is not None else None)
        except (RemoteProtocolError, ValueError, TypeError, KeyError):
            summary = None  # a malformed record: the prior, as placement would
        summaries.append(summary)
        vouched.append(float(c.vouched_since_s) if c.vouched_since_s else np.nan)
        nodes.append(c.node_id)
    if not nodes:
        return {}
    total = np.zeros(len(nodes))
    for step in range(1, STAYING_STEPS + 1):
        total += predictor.p_up_many(summaries, now_s, horizon_s * step / STAYING_STEPS,
                                     vouched_since=np.array(vouched))
    return {n: round(float(v) / STAYING_STEPS, 6) for n, v in zip(nodes, total)}
