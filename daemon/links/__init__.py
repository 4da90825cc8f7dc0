"""Link estimates: what a node believes about its links to peers (soft state, pure core).

Modules:

- ``estimate`` -- ``LinkTable``: per-peer throughput (log-space mean and variance, fed by real
                  transfers) and round trip (fed by probes), ``predict`` for the next transfer
                  with an uncertainty; ``PredictionLog``: how well it predicted each transfer
                  it then learned from. Fed by the blob service's chunk transfers.
"""

from daemon.links.estimate import LinkEstimate, LinkTable, Prediction, PredictionLog

__all__ = ["LinkEstimate", "LinkTable", "Prediction", "PredictionLog"]
