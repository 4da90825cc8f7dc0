"""Link estimates: what a node believes about its links to peers (soft state, pure core).

Modules:

- ``estimate`` -- ``LinkTable``: per-peer throughput (log-space mean and variance, fed by real
                  transfers) and round trip (fed by probes), ``predict`` for the next transfer
                  with an uncertainty; read by the FL codec choice.
"""

from daemon.links.estimate import LinkEstimate, LinkTable, Prediction

__all__ = ["LinkEstimate", "LinkTable", "Prediction"]
