"""Federated learning across volunteers: the pure core (no I/O, no clock, seeded randomness).

Modules:

- ``params``    -- ``Params`` (a model as named float32 arrays), checks, vector helpers.
- ``aggregate`` -- FedAvg, coordinate median, trimmed mean; FedProx's proximal gradient.
- ``uplink``    -- updates on the wire: level chosen per client and round by the reward
                   R = -0.5 T/T_budget - 0.5 QE/QE_budget, error feedback, canonical bytes.
- ``select``    -- client selection by φ = similarity × predicted time before leaving, or random.
- ``privacy``   -- DP-FedAvg: clipping, Gaussian noise, a Rényi-DP accountant for ε.
- ``mlp``       -- the reference numpy classifier and its local SGD (FedProx-aware).
- ``rounds``    -- one round of a run planned (shards, links, task inputs, per-client state)
                   and closed (decode, aggregate, history row); the node's driver runs it
                   (``daemon.flrun``).
"""

from daemon.fl.aggregate import Rule, aggregate, coordinate_median, fedavg, trimmed_mean
from daemon.fl.params import FLError, Params, check_params
from daemon.fl.privacy import clip, epsilon, noisy_mean
from daemon.fl.select import select_phi, select_random, similarity, staying_power, utilities
from daemon.fl.uplink import (ADAPTIVE_LEVELS, FLOAT32, INT8, Budgets, choose_level,
                              decode_update, encode_update)

__all__ = [
    "ADAPTIVE_LEVELS", "Budgets", "FLError", "FLOAT32", "INT8", "Params", "Rule", "aggregate",
    "check_params", "choose_level", "clip", "coordinate_median", "decode_update",
    "encode_update", "epsilon", "fedavg", "noisy_mean", "select_phi", "select_random",
    "similarity", "staying_power", "trimmed_mean", "utilities",
]
