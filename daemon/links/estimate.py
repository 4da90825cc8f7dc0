"""Link estimates (PBA): throughput and round trip to each peer, with an uncertainty.

Theory of operation
-------------------
Every transfer the node makes anyway (a blob fetched, an output sent, a model update) is a
measurement: ``transfer(peer, nbytes, seconds, now)``. Light probes (pings) give the round
trip: ``rtt(peer, seconds, now)``. A transfer of ``n`` bytes that took ``t`` seconds over a
link with round trip ``r`` says the throughput was about ``n / (t - r)`` (the first round trip
is the request; small transfers say little about throughput, so those under ``MIN_BYTES``
are ignored). Without a round-trip sample the whole time counts as transfer time, and the
prediction adds no round trip either: the learned "throughput" then includes the per-request
cost, which is what the next request of a similar size pays.

Throughput is kept in log space (links differ by orders of magnitude and the error of a
prediction is a ratio): an exponentially weighted mean ``mu`` and variance ``var`` of
``log(bytes/s)``, weight ``ALPHA`` per new sample. The uncertainty grows with the estimate's
age (``DRIFT`` per hour of variance), since links change; an entry not refreshed for
``FORGET_AFTER`` is dropped. This is soft state: wrong or stale only costs a worse choice.

``predict(peer, nbytes, now)`` gives the expected seconds for a transfer and a log-space
standard deviation, or the population prior (the median of known links, with a wide spread)
for a peer never measured. Placement's link cost and the FL codec choice read
``bandwidth(peer, now)`` (a conservative figure: ``exp(mu - sd)``) and ``rtt_of(peer)``.

Per-request cost. A ping's round trip is not all a request pays: the peer's work on it (a
signature, a store read) and both ends' scheduling add to every transfer whatever its size, and
on a busy machine they dwarf the bytes. Log-throughput learned from transfers of one size folds
that cost into "throughput", which then over-scales with size: a 5 KB update that took 0.4 s on
a loaded LAN reads as 12 kB/s, and a quarter of the bytes would look four times faster. So
each entry also keeps its last ``FIT_SAMPLES`` transfers of any size (small ones too) and
``fit`` solves ``seconds = latency + bytes / throughput`` by least squares once their sizes
differ enough (the largest at least ``FIT_SPREAD`` times the smallest). The published summary
(``daemon.links.summary``) uses the fit where there is one: it is what a choice between
sizes of one message needs.

Pure: time and samples come in as arguments. ``scripts/bench_fl.py`` reports how well it
predicts the next transfer on simulated links (median and 90th percentile ratio error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Hashable

ALPHA = 0.3
"""Weight of a new throughput sample (about the last three transfers dominate)."""
DRIFT = 0.05
"""Variance of log-throughput added per hour without a sample."""
PRIOR_SD = 1.5
"""Log-space spread for a never-measured peer (a factor of ~4.5 either way)."""
DEFAULT_BANDWIDTH = 1_000_000.0
"""Bytes/s assumed when nothing at all is known (1 MB/s: a modest home uplink)."""
DEFAULT_RTT = 0.1
MIN_BYTES = 4 * 1024
"""Transfers smaller than this are dominated by the round trip; they do not update throughput."""
FORGET_AFTER = 6 * 3600.0
MAX_PEERS = 1024
FIT_SAMPLES = 16
"""Recent transfers per peer kept for the latency + bytes/throughput fit."""
FIT_MIN = 4
FIT_SPREAD = 2.0
MAX_FIT_BANDWIDTH = 1e10
"""A fitted slope of zero (size makes no difference) is read as this many bytes/s."""
PROBE_STALE_S = 600.0
"""A link not measured for this long is worth a probe again (``wants_samples``)."""


@dataclass
class LinkEstimate:
    """What the node believes about one link."""

    log_bw: float = math.log(DEFAULT_BANDWIDTH)
    var: float = PRIOR_SD ** 2
    rtt: float | None = None
    samples: int = 0
    updated: float = 0.0
    recent: list[tuple[int, float]] = field(default_factory=list)
    """The last ``FIT_SAMPLES`` transfers ``(bytes, seconds)``, of any size."""

    def sd(self, now: float) -> float:
        hours = max(0.0, now - self.updated) / 3600.0
        return math.sqrt(self.var + DRIFT * hours)


@dataclass(frozen=True, slots=True)
class Prediction:
    seconds: float
    bandwidth: float
    rtt: float
    log_sd: float
    measured: bool


class PredictionLog:
    """How well the table predicted the transfers it was then fed: ``|log(actual/predicted)|``.

    Bounded (the last ``keep`` measured predictions), so a daemon can report it forever.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.errors: list[float] = []
        self.unmeasured = 0

    def record(self, predicted: Prediction, actual_s: float) -> None:
        if not predicted.measured:
            self.unmeasured += 1
            return
        if actual_s > 0 and predicted.seconds > 0:
            self.errors.append(abs(math.log(actual_s / predicted.seconds)))
            if len(self.errors) > self.keep:
                del self.errors[0]

    def summary(self) -> dict[str, float | int]:
        """Median and 90th-percentile ratio error (0.1 = within 10%) of measured predictions."""
        if not self.errors:
            return {"predicted": 0, "unmeasured": self.unmeasured}
        ordered = sorted(self.errors)
        p50 = ordered[len(ordered) // 2]
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return {"predicted": len(ordered), "unmeasured": self.unmeasured,
                "median_ratio_error": round(math.exp(p50) - 1, 4),
                "p90_ratio_error": round(math.exp(p90) - 1, 4)}


class LinkTable:
    """Per-peer link estimates, fed by transfers and probes."""

    def __init__(self) -> None:
        self._links: dict[Hashable, LinkEstimate] = {}
        self.log = PredictionLog()

    def observe(self, peer: Hashable, nbytes: int, seconds: float, now: float) -> Prediction:
        """Predict a transfer that just took ``seconds``, log how good that was, then learn."""
        predicted = self.predict(peer, nbytes, now)
        if nbytes >= MIN_BYTES:
            self.log.record(predicted, seconds)
        self.transfer(peer, nbytes, seconds, now)
        return predicted

    def rtt(self, peer: Hashable, seconds: float, now: float) -> None:
        """A round-trip sample (ping or the first byte of a transfer)."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        est = self._entry(peer, now)
        est.rtt = seconds if est.rtt is None else 0.875 * est.rtt + 0.125 * seconds

    def transfer(self, peer: Hashable, nbytes: int, seconds: float, now: float) -> None:
        """A completed transfer of ``nbytes`` that took ``seconds`` from request to last byte."""
        if not (seconds > 0 and math.isfinite(seconds)) or nbytes < 0:
            return
        est = self._entry(peer, now)
        est.recent.append((nbytes, seconds))
        del est.recent[:-FIT_SAMPLES]
        if nbytes < MIN_BYTES:
            return  # dominated by the per-request cost: only the fit learns from it
        rtt = est.rtt if est.rtt is not None else 0.0
        busy = max(seconds - rtt, seconds * 0.1)
        sample = math.log(nbytes / busy)
        if est.samples == 0:
            est.log_bw, est.var = sample, (PRIOR_SD / 2) ** 2
        else:
            est.var = est.sd(now) ** 2
            delta = sample - est.log_bw
            est.log_bw += ALPHA * delta
            est.var = (1 - ALPHA) * (est.var + ALPHA * delta * delta)
        est.samples += 1
        est.updated = now

    def predict(self, peer: Hashable, nbytes: int, now: float) -> Prediction:
        """Expected seconds to move ``nbytes`` to/from ``peer``, with a log-space spread."""
        est = self._links.get(peer)
        if est is None or est.samples == 0 or now - est.updated > FORGET_AFTER:
            log_bw, sd, measured = self._prior(), PRIOR_SD, False
        else:
            log_bw, sd, measured = est.log_bw, est.sd(now), True
        if est is not None and est.rtt is not None:
            rtt = est.rtt
        else:  # throughput learned without a round trip already has it folded in
            rtt = 0.0 if measured else DEFAULT_RTT
        bandwidth = math.exp(log_bw)
        return Prediction(rtt + nbytes / bandwidth, bandwidth, rtt, sd, measured)

    def bandwidth(self, peer: Hashable, now: float) -> float:
        """A conservative throughput (one standard deviation below the mean), bytes/s."""
        p = self.predict(peer, 0, now)
        return math.exp(math.log(p.bandwidth) - p.log_sd)

    def fit(self, peer: Hashable) -> tuple[float, float] | None:
        """``(latency s, throughput B/s)`` fitted to the recent transfers' sizes and times, or
        None while they are too few or too alike in size to tell the two apart."""
        est = self._links.get(peer)
        return fit_latency(est.recent) if est is not None else None

    def wants_samples(self, peer: Hashable, now: float) -> bool:
        """Whether a light probe of ``peer`` would teach us something: never measured, not yet
        fitted apart into latency and throughput (and fewer than ``FIT_SAMPLES`` transfers
        tried), or not measured for ``PROBE_STALE_S``. A well-measured link is never probed,
        so probes stop by themselves."""
        est = self._links.get(peer)
        if est is None or not est.recent or now - est.updated > PROBE_STALE_S:
            return True
        return fit_latency(est.recent) is None and len(est.recent) < FIT_SAMPLES

    def rtt_of(self, peer: Hashable) -> float:
        est = self._links.get(peer)
        return est.rtt if est is not None and est.rtt is not None else DEFAULT_RTT

    def expire(self, now: float) -> list[Hashable]:
        """Drop entries not refreshed for ``FORGET_AFTER``; returns the peers dropped."""
        gone = [p for p, e in self._links.items() if now - e.updated > FORGET_AFTER]
        for p in gone:
            del self._links[p]
        return gone

    def peers(self) -> list[Hashable]:
        return list(self._links)

    def items(self) -> list[tuple[Hashable, LinkEstimate]]:
        """Every entry (what ``links.summary`` publishes the best-measured of)."""
        return list(self._links.items())

    def status(self, now: float) -> dict[str, object]:
        """Peers measured, and how well the next transfer was predicted (for ``status``)."""
        measured = [e for e in self._links.values() if e.samples]
        return {"peers": len(self._links), "measured": len(measured),
                "prediction": self.log.summary()}

    def _entry(self, peer: Hashable, now: float) -> LinkEstimate:
        est = self._links.get(peer)
        if est is None:
            if len(self._links) >= MAX_PEERS:
                stalest = min(self._links, key=lambda p: self._links[p].updated)
                del self._links[stalest]
            est = self._links[peer] = LinkEstimate(log_bw=self._prior(), updated=now)
        return est

    def _prior(self) -> float:
        known = [e.log_bw for e in self._links.values() if e.samples]
        return median(known) if known else math.log(DEFAULT_BANDWIDTH)


def fit_latency(recent: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares ``seconds = latency + bytes / throughput`` (see the module's docstring)."""
    if len(recent) < FIT_MIN:
        return None
    sizes = [float(n) for n, _ in recent]
    if max(sizes) < FIT_SPREAD * max(min(sizes), 1.0):
        return None
    k = len(recent)
    mean_n = sum(sizes) / k
    mean_t = sum(t for _, t in recent) / k
    var = sum((n - mean_n) ** 2 for n in sizes)
    cov = sum((n - mean_n) * (t - mean_t) for n, (_, t) in zip(sizes, recent))
    slope = max(cov / var, 1 / MAX_FIT_BANDWIDTH)
    latency = min(max(mean_t - slope * mean_n, 0.0), mean_t)
    return latency, 1 / slope
