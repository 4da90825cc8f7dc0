"""An FL job's script: a small numpy classifier (64 inputs, 32 hidden units, 10 classes).

NovaCron calls ``train`` in the volunteers' sandbox, once per selected shard and round, and
``evaluate`` in the submitter's node's sandbox after each round. Both get the model as a dict of
numpy arrays; ``train`` must return arrays of the same names and shapes.
"""

import numpy as np

LR = 0.1
BATCH = 16


def _forward(p, x):
    h = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    z = h @ p["w2"] + p["b2"]
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return h, e / e.sum(axis=1, keepdims=True)


def _load(path):
    with np.load(path) as d:
        return d["x"].astype(np.float32), d["y"].astype(np.int64)


def train(params, shard_path, epochs, rng, mu=0.0):
    """Local SGD on one shard; returns (params, samples, mean training loss).

    ``mu`` > 0 (aggregation = "fedprox") adds FedProx's pull towards the round's model."""
    x, y = _load(shard_path)
    p = {k: v.copy() for k, v in params.items()}
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y), BATCH):
            idx = order[i:i + BATCH]
            h, prob = _forward(p, x[idx])
            d = prob.copy()
            d[np.arange(len(idx)), y[idx]] -= 1.0
            d /= len(idx)
            dh = (d @ p["w2"].T) * (h > 0)
            grads = {"w2": h.T @ d, "b2": d.sum(0), "w1": x[idx].T @ dh, "b1": dh.sum(0)}
            if mu > 0:
                grads = {k: g + mu * (p[k] - params[k]) for k, g in grads.items()}
            for k in p:
                p[k] = (p[k] - np.float32(LR) * grads[k]).astype(np.float32)
    return p, len(y), evaluate(p, shard_path)["loss"]


def evaluate(params, path):
    """Loss and accuracy on a data file."""
    x, y = _load(path)
    _, prob = _forward(params, x)
    loss = float(-np.log(np.maximum(prob[np.arange(len(y)), y], 1e-12)).mean())
    return {"loss": loss, "accuracy": float((prob.argmax(1) == y).mean())}
