"""A small numpy classifier and its local training: the model the bench, tests and example use.

One hidden layer (ReLU) and a softmax output, trained by minibatch SGD on cross-entropy. The
FL job runs the user's own training code; this is the reference one, small enough to train in
the Python runtime's sandbox in well under a second per client on 8x8 digits, and plain numpy
so its arithmetic is the same there and here. ``local_train`` takes the FedProx ``mu`` (0 for
FedAvg) and a seeded generator, and returns the new parameters and the mean training loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from daemon.fl.aggregate import prox_gradient
from daemon.fl.params import Params


def init_params(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> Params:
    """He-initialised weights, zero biases (float32)."""
    return {
        "b1": np.zeros(n_hidden, dtype=np.float32),
        "b2": np.zeros(n_out, dtype=np.float32),
        "w1": (rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_hidden))).astype(np.float32),
        "w2": (rng.normal(0, np.sqrt(2.0 / n_hidden), (n_hidden, n_out))).astype(np.float32),
    }


def forward(params: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations and class probabilities."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    logits = h @ params["w2"] + params["b2"]
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return h, e / e.sum(axis=1, keepdims=True)


def loss_and_accuracy(params: Mapping[str, np.ndarray], x: np.ndarray,
                      y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``(x, y)``."""
    _, p = forward(params, x)
    loss = float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())
    return loss, float((p.argmax(axis=1) == y).mean())


def gradients(params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> Params:
    """Gradient of the mean cross-entropy on one batch."""
    h, p = forward(params, x)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    dh = (d @ params["w2"].T) * (h > 0)
    return {"b1": dh.sum(axis=0), "b2": d.sum(axis=0), "w1": x.T @ dh, "w2": h.T @ d}


def local_train(params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray, *,
                epochs: int, lr: float, batch: int, rng: np.random.Generator,
                mu: float = 0.0) -> tuple[Params, float]:
    """``epochs`` passes of minibatch SGD from ``params``; FedProx when ``mu > 0``."""
    start = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    w = {k: v.copy() for k, v in start.items()}
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            g = gradients(w, x[idx], y[idx])
            if mu > 0:
                prox = prox_gradient(w, start, mu)
                g = {k: g[k] + prox[k] for k in g}
            for k in w:
                w[k] = (w[k] - np.float32(lr) * g[k]).astype(np.float32)
        losses.append(loss_and_accuracy(w, x, y)[0])
    return w, float(np.mean(losses)) if losses else 0.0
