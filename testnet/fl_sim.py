"""A seeded simulation of federated training over volunteers' links: the bench's and tests' model.

What is real here: the training (``daemon.fl.mlp`` on scikit-learn's bundled 8x8 digits), the
codecs and error feedback (``protocol.tensor``), the level choice, selection and aggregation
(``daemon.fl``), the availability forecast (``daemon.sched.weibull`` fitted on each client's
past sessions) and the link estimates (``daemon.links``), all fed the bytes actually encoded.
What is simulated: the links and the volunteers' comings and goings.

- Links follow the ``planet`` profile of the WAN testnet (``testnet.wan.profiles``, the one
  definition the namespace testnet's launcher shapes its links by): round trips 50-300 ms;
  uplinks log-uniform 0.5-20 Mbit/s (a weak mobile link to home broadband), downlinks 2-8x
  that; each transfer's throughput varies by a log-normal factor (sd 0.3), so estimates are
  never exact.
- Data is split non-IID: sorted by label and cut into ``2 * clients`` shards, two per client, so
  most clients see two digits.
- Each client's sessions follow its own Weibull law (host classes: laptop, desktop, server);
  it has 20 past sessions on record, from which the forecast is fitted. With ``churn`` a share
  of clients (20% by default) leave during every round, drawn with probability proportional to
  their true chance of leaving within a round (a round is an hour of volunteer time); a client
  that leaves loses its update and comes back with a new session next round.

Everything random flows from one seed; ``run`` returns per-round rows a benchmark prints.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.fl import (ADAPTIVE_LEVELS, FLOAT32, INT8, Budgets, Rule, aggregate, choose_level, clip,
                       decode_update, encode_update, epsilon, noisy_mean, select_phi,
                       select_random, similarity, staying_power, utilities)
from daemon.fl.mlp import init_params, local_train, loss_and_accuracy
from daemon.fl.params import Params, add, sub
from daemon.links import LinkTable
from daemon.sched.weibull import Weibull, fit_weibull
from protocol.tensor import ErrorFeedback
from testnet.wan import profiles as wan_profiles
from testnet.wan.links import draw_down_ratio, draw_uplink

MODES = ("float32", "int8", "adaptive")
HOST_CLASSES = ((0.7, 0.5), (0.8, 3.0), (0.9, 24.0))
"""(Weibull shape, scale in hours): laptop, desktop, server."""
ROUND_H = 1.0
SELECT_HORIZON_H = 2.0
DP_DELTA = 1e-5
PROBE_BYTES = 16 * 1024
"""A light probe's upload when a client's link has never been measured."""


@dataclass(frozen=True, slots=True)
class Link:
    rtt_s: float
    up_bps: float
    down_bps: float

    def seconds(self, nbytes: int, bps: float, rng: np.random.Generator) -> float:
        return self.rtt_s + nbytes / (bps * float(np.exp(rng.normal(0.0, 0.3))))


def profile_links(rng: np.random.Generator, n: int, profile: str = "planet") -> list[Link]:
    """Each client's link to the server, drawn from the WAN testnet's ``profile``: its uplink
    and downlink ratio as the launcher draws a node's line, its round trip from the
    profile's advertised range (the simulation has no per-node access delays)."""
    p = wan_profiles.get(profile)
    lo_ms, hi_ms = p.round_trip_ms
    links = []
    for _ in range(n):
        up = draw_uplink(p, rng, unit=1e6 / 8)  # bytes/s
        rtt = float(rng.uniform(lo_ms / 1000, hi_ms / 1000))
        links.append(Link(rtt, up, up * draw_down_ratio(p, rng)))
    return links


def digits_split(n_clients: int, rng: np.random.Generator) -> tuple[
        list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Non-IID client shards and a held-out test set (20%) of scikit-learn's digits."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the FL simulation needs scikit-learn for its digits data:"
                         " pip install scikit-learn (scripts/setup.sh does)") from None
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    train = train[np.argsort(y[train], kind="stable")]
    shards = np.array_split(train, 2 * n_clients)
    pick = rng.permutation(2 * n_clients)
    clients = []
    for c in range(n_clients):
        idx = np.concatenate([shards[pick[2 * c]], shards[pick[2 * c + 1]]])
        clients.append((x[idx], y[idx]))
    return clients, (x[test], y[test])


@dataclass
class Life:
    """One client's true session law, its current age, and the forecast fitted on its past."""

    true: Weibull
    fitted: Weibull
    age_h: float

    def p_leave(self, horizon_h: float) -> float:
        return 1.0 - self.true.conditional_survival(self.age_h, horizon_h)

    def predicted_remaining_h(self) -> float:
        """Mean residual life under the fitted law (numerically, on a 0-200 h grid)."""
        grid = np.linspace(0.0, 200.0, 2001)
        s = np.exp(self.fitted.cum_hazard(self.age_h) - self.fitted.cum_hazard(self.age_h + grid))
        return float(np.trapezoid(s, grid))


def lives(rng: np.random.Generator, n: int) -> list[Life]:
    out = []
    for _ in range(n):
        shape, scale = HOST_CLASSES[int(rng.integers(len(HOST_CLASSES)))]
        true = Weibull(shape, scale)
        past = scale * rng.weibull(shape, 20)
        fit = fit_weibull(past, np.ones(20, dtype=bool))
        fitted = fit.dist if fit is not None else true
        out.append(Life(true, fitted, float(scale * rng.weibull(shape) * rng.uniform())))
    return out


@dataclass
class Config:
    mode: str = "adaptive"
    selection: str = "random"
    churn: float = 0.0
    rounds: int = 40
    clients: int = 20
    per_round: int = 10
    epochs: int = 2
    lr: float = 0.1
    batch: int = 16
    hidden: int = 128
    rule: Rule = Rule.FEDAVG
    budgets: Budgets = field(default_factory=lambda: Budgets(time_s=0.1, error=0.5))
    policy: Any = None
    """A learned level policy (``testnet.fl_policy.DDQN``) instead of the argmax."""
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    seed: int = 1


def run(cfg: Config) -> dict[str, Any]:
    """One training run; the world (data, links, lives) depends on the seed only, not the mode."""
    world = np.random.default_rng(cfg.seed)
    clients, (x_test, y_test) = digits_split(cfg.clients, world)
    links = profile_links(world, cfg.clients)
    life = lives(world, cfg.clients)
    model = init_params(64, cfg.hidden, 10, world)
    pick = random.Random(cfg.seed)
    churn_rng = random.Random(cfg.seed + 1)
    net = np.random.default_rng(cfg.seed + 2)
    dp_rng = np.random.default_rng(cfg.seed + 3)
    table = LinkTable()
    feedback = [ErrorFeedback() for _ in range(cfg.clients)]
    last: list[Params | None] = [None] * cfg.clients
    last_global: Params | None = None
    model_bytes = len(encode_update(model, FLOAT32))
    now = 0.0
    rows: list[dict[str, Any]] = []
    pred_errors: list[float] = []
    rewards: list[float] = []
    for rnd in range(cfg.rounds):
        if cfg.selection == "phi":
            alpha = [similarity(last[c], last_global) for c in range(cfg.clients)]
            beta = [staying_power(lf.predicted_remaining_h(), SELECT_HORIZON_H) for lf in life]
            chosen = select_phi(pick, utilities(alpha, beta), cfg.per_round)
        else:
            chosen = select_random(pick, cfg.clients, cfg.per_round)
        leaving = _departures(churn_rng, life, cfg.churn) if cfg.churn else set()
        updates, weights, times, uploads, codecs = [], [], [], [], {}
        up_bytes = probe_bytes = 0
        losses = []
        for c in chosen:
            x, y = clients[c]
            local, loss = local_train(model, x, y, epochs=cfg.epochs, lr=cfg.lr, batch=cfg.batch,
                                      rng=np.random.default_rng([cfg.seed, rnd, c]))
            if c in leaving:
                continue  # left mid-round: the update never arrives
            delta = sub(local, model)
            link = links[c]
            if cfg.mode == "adaptive" and not table.predict(c, 0, now).measured:
                table.rtt(c, link.rtt_s * float(np.exp(net.normal(0, 0.05))), now)
                table.transfer(c, PROBE_BYTES, link.seconds(PROBE_BYTES, link.up_bps, net), now)
                probe_bytes += PROBE_BYTES
            if cfg.mode == "float32":
                spec = FLOAT32
            elif cfg.mode == "int8":
                spec = INT8
            elif cfg.policy is not None:
                p = table.predict(c, model_bytes, now)
                state = cfg.policy.features(p.bandwidth, p.rtt, p.log_sd, model_bytes)
                action = cfg.policy.act(state)
                spec = ADAPTIVE_LEVELS[action]
            else:
                spec = choose_level(delta, bandwidth=table.bandwidth(c, now),
                                    rtt=table.rtt_of(c), budgets=cfg.budgets,
                                    feedback=feedback[c]).spec
            before = None if spec == FLOAT32 else _corrected_norm(feedback[c], delta)
            data = encode_update(delta, spec, None if spec == FLOAT32 else feedback[c])
            predicted = table.predict(c, len(data), now)
            link = links[c]
            table.rtt(c, link.rtt_s * float(np.exp(net.normal(0, 0.05))), now)
            down = link.seconds(model_bytes, link.down_bps, net)
            compute = cfg.epochs * len(y) * 2e-4
            up = link.seconds(len(data), link.up_bps, net)
            if predicted.measured:
                pred_errors.append(abs(math.log(up / predicted.seconds)))
            table.transfer(c, len(data), up, now)
            if before:
                error = float(np.sqrt(sum(float(np.sum(feedback[c].residual(n) ** 2))
                                          for n in delta))) / before
            else:
                error = 0.0
            reward = (-cfg.budgets.w_time * up / cfg.budgets.time_s
                      - cfg.budgets.w_error * error / cfg.budgets.error)
            rewards.append(reward)
            if cfg.policy is not None and cfg.mode == "adaptive":
                cfg.policy.observe(state, action, reward)
            times.append(down + compute + up)
            uploads.append(up)
            up_bytes += len(data)
            label = spec.describe()
            codecs[label] = codecs.get(label, 0) + 1
            decoded = decode_update(data, model)
            updates.append(decoded)
            weights.append(float(len(y)))
            losses.append(loss)
            last[c] = decoded
        if updates and cfg.dp_clip > 0:
            step = noisy_mean([clip(u, cfg.dp_clip) for u in updates], max_norm=cfg.dp_clip,
                              noise_multiplier=cfg.dp_noise, rng=dp_rng)
            model = add(model, step)
            last_global = step
        elif updates:
            step = aggregate(cfg.rule, updates, weights)
            model = add(model, step)
            last_global = step
        test_loss, acc = loss_and_accuracy(model, x_test, y_test)
        round_s = max(times) if times else 0.0
        now += ROUND_H * 3600.0
        for lf_i, lf in enumerate(life):
            lf.age_h = 0.0 if lf_i in leaving else lf.age_h + ROUND_H
        rows.append({"round": rnd + 1, "accuracy": round(acc, 4), "test_loss": round(test_loss, 4),
                     "train_loss": round(float(np.mean(losses)), 4) if losses else None,
                     "up_bytes": up_bytes, "probe_bytes": probe_bytes, "round_s": round(round_s, 4),
                     "upload_s": round(max(uploads), 4) if uploads else 0.0,
                     "selected": len(chosen), "lost": len(chosen) - len(updates),
                     "codecs": codecs})
    eps = (epsilon(rounds=cfg.rounds, noise_multiplier=cfg.dp_noise, delta=DP_DELTA)
           if cfg.dp_clip > 0 else None)
    return {"rows": rows, "prediction_log_errors": pred_errors, "model_bytes": model_bytes,
            "epsilon": eps, "rewards": rewards}


def _corrected_norm(feedback: ErrorFeedback, delta: Params) -> float:
    total = 0.0
    for name, array in delta.items():
        r = feedback.residual(name)
        x = array if r is None or r.shape != array.shape else array + r
        total += float(np.sum(np.asarray(x, dtype=np.float64) ** 2))
    return math.sqrt(total)


def _departures(rng: random.Random, life: list[Life], share: float) -> set[int]:
    """``share`` of the clients, drawn by their true chance of leaving within a round."""
    k = round(share * len(life))
    keys = []
    for i, lf in enumerate(life):
        w = max(lf.p_leave(ROUND_H), 1e-9)
        keys.append((math.log(max(rng.random(), 1e-300)) / w, i))
    keys.sort(reverse=True)
    return {i for _, i in keys[:k]}
