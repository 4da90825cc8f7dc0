"""Link estimates: what a node believes about its links to peers (soft state, pure core).

Modules:

- ``estimate`` -- ``LinkTable``: per-peer throughput (log-space mean and variance, fed by real
                  transfers) and round trip (fed by probes), ``predict`` for the next transfer
                  with an uncertainty; ``PredictionLog``: how well it predicted each transfer
                  it then learned from. Fed by the blob service's chunk transfers.
- ``summary``  -- ``LinkSummary``: the bounded, published form (at most 8 peers, 1 KiB) a node
                  writes under its key of the soft state; ``predict`` reads the link between
                  any two nodes from either end's summary.
"""

from daemon.links.estimate import LinkEstimate, LinkTable, Prediction, PredictionLog
from daemon.links.summary import LinkEntry, LinkSummary, PredictedLink, predict, summarize

__all__ = ["LinkEntry", "LinkEstimate", "LinkSummary", "LinkTable", "PredictedLink",
           "Prediction", "PredictionLog", "predict", "summarize"]
