"""A learned level policy (double DQN, as the seed paper trains) to measure against the argmax.

The state is what a node knows about the link before sending: the estimated throughput
(log10 MB/s), round trip (s), the estimate's log-space spread, and the update's size (log10
float32 KB). Actions are the adaptive levels (float16, int8, int4, sign). The reward is the
issue's ``R = -0.5 T/T_budget - 0.5 QE/QE_budget`` with T the upload's *actual* seconds and
QE the relative error actually sent (including error feedback) - so a learned policy could in
principle beat the argmax by learning where the estimate is biased.

A small numpy network (4 -> 32 -> 4, ReLU), online and target copies (target synced every
``sync`` updates), replay buffer, epsilon-greedy exploration decaying to ``eps_min``, SGD on
the Huber loss. The next state is the next decision's state (the sequence of sends), with
discount ``gamma``; double DQN picks the next action with the online network and values it
with the target one. Seeded; pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

N_FEATURES = 4


@dataclass
class DDQN:
    actions: int = 4
    hidden: int = 32
    lr: float = 0.01
    gamma: float = 0.5
    eps: float = 1.0
    eps_min: float = 0.02
    eps_decay: float = 0.995
    batch: int = 32
    sync: int = 50
    capacity: int = 5000
    seed: int = 0
    learning: bool = True
    _rng: np.random.Generator = field(init=False, repr=False)
    _w: list[np.ndarray] = field(init=False, repr=False)
    _target: list[np.ndarray] = field(init=False, repr=False)
    _buffer: list[tuple[np.ndarray, int, float, np.ndarray]] = field(default_factory=list,
                                                                     repr=False)
    _pending: tuple[np.ndarray, int, float] | None = field(default=None, repr=False)
    _updates: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        r = self._rng
        self._w = [r.normal(0, math.sqrt(2 / N_FEATURES), (N_FEATURES, self.hidden)),
                   np.zeros(self.hidden), r.normal(0, math.sqrt(1 / self.hidden),
                                                   (self.hidden, self.actions)),
                   np.zeros(self.actions)]
        self._target = [w.copy() for w in self._w]

    @staticmethod
    def features(bandwidth: float, rtt: float, log_sd: float, nbytes: int) -> np.ndarray:
        return np.array([math.log10(bandwidth / 1e6), rtt * 10, log_sd,
                         math.log10(max(nbytes, 1) / 1e4)])

    def q(self, s: np.ndarray, weights: list[np.ndarray] | None = None) -> np.ndarray:
        w1, b1, w2, b2 = weights or self._w
        h = np.maximum(s @ w1 + b1, 0)
        out: np.ndarray = h @ w2 + b2
        return out

    def act(self, s: np.ndarray) -> int:
        if self.learning and self._rng.random() < self.eps:
            return int(self._rng.integers(self.actions))
        return int(np.argmax(self.q(s)))

    def observe(self, s: np.ndarray, action: int, reward: float) -> None:
        """Record a send's reward; the previous send's transition completes with ``s``."""
        if not self.learning:
            return
        if self._pending is not None:
            ps, pa, pr = self._pending
            self._buffer.append((ps, pa, pr, s))
            if len(self._buffer) > self.capacity:
                self._buffer.pop(0)
            self._train()
        self._pending = (s, action, reward)
        self.eps = max(self.eps_min, self.eps * self.eps_decay)

    def _train(self) -> None:
        if len(self._buffer) < self.batch:
            return
        idx = self._rng.integers(len(self._buffer), size=self.batch)
        s = np.stack([self._buffer[i][0] for i in idx])
        a = np.array([self._buffer[i][1] for i in idx])
        r = np.array([self._buffer[i][2] for i in idx])
        s2 = np.stack([self._buffer[i][3] for i in idx])
        best = np.argmax(self.q(s2), axis=1)
        target = r + self.gamma * self.q(s2, self._target)[np.arange(self.batch), best]
        w1, b1, w2, b2 = self._w
        h_pre = s @ w1 + b1
        h = np.maximum(h_pre, 0)
        q = h @ w2 + b2
        err = q[np.arange(self.batch), a] - target
        g = np.clip(err, -1, 1) / self.batch
        dq = np.zeros_like(q)
        dq[np.arange(self.batch), a] = g
        dw2, db2 = h.T @ dq, dq.sum(0)
        dh = (dq @ w2.T) * (h_pre > 0)
        dw1, db1 = s.T @ dh, dh.sum(0)
        for w, d in zip(self._w, (dw1, db1, dw2, db2)):
            w -= self.lr * d
        self._updates += 1
        if self._updates % self.sync == 0:
            self._target = [w.copy() for w in self._w]
