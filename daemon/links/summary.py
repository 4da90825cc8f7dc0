"""Link estimates as soft state: the bounded summary each node publishes, and reading it.

Theory of operation
-------------------
A node's ``LinkTable`` is what it measured itself (throughput of every blob chunk it fetched,
round trips of its pings). Kept local, it helps only that node. Published, it lets any node
predict the link between two others: the FL submitter wants the link from the volunteer that
will run a client's task back to itself, which the volunteer measured (it fetched the round's
files from the submitter) and the submitter may never have.

So every node publishes a ``LinkSummary`` under its own key of the soft state (``links``, an
owner-keyed LWW map: signed dots, relayed by anyone, forged by no one): at most ``MAX_PEERS``
measured peers, the ones with the most samples (then the freshest), each with the mean
throughput, its log-space spread, the round trip and the estimate's age at publication. The
wire form is a small msgpack list, at most ``MAX_SUMMARY_BYTES`` (1 KiB; about 650 bytes with
8 peers), so 10,000 nodes' summaries cost at most 10 MB of soft state, and a refresh is one
small delta.

It is republished only when it changed by what a reader would notice (``changed``: a peer
added or dropped, throughput moved by more than ``BW_CHANGE``, the spread by more than
``SD_CHANGE`` beyond the ageing readers apply themselves), at most every ``min_interval``
(30 s, longer in a large network); readers age it themselves (``at_ms`` plus
each entry's age, and the table's ``DRIFT`` of variance per hour), so a quiet link does not
need refreshing to stay honest about its uncertainty.

``predict(summaries, a, b, now_ms)`` reads the link for data from a to b: b's entry for a (b
fetched from a: that very direction), else a's entry for b (the reverse direction, still
evidence of the path, with more doubt); the spread grows with the summary's age. Pure: no
clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.links.estimate import DRIFT, PRIOR_SD, LinkTable, fit_latency
from protocol.canonical import packb
from protocol.errors import MalformedMessage

MAX_PEERS = 8
"""Peers per summary: a node's busiest links (its submitters, its blob sources)."""
MAX_SUMMARY_BYTES = 1024
MAX_PEER_ID = 64
MIN_INTERVAL_S = 30.0
INTERVAL_PER_NODE_S = 0.3
"""A summary is rewritten at most every ``min_interval``: 30 s, or 0.3 s per summary in the
soft state if longer (50 minutes at 10,000 nodes), so a busy network's link summaries cost
each node what 100 nodes' would: every rewrite crosses each of its connections once."""
BW_CHANGE = 0.25
"""Relative throughput change that makes a summary worth republishing."""
SD_CHANGE = 0.25
FORMAT = 1
REVERSE_SD = math.log(4)
"""Extra log-space spread when a link is read from the reverse direction: a home line's
downlink is 1-8 times its uplink (``testnet.wan.profiles``), so the other direction's
throughput says the path's order of magnitude, not this direction's figure."""


@dataclass(frozen=True, slots=True)
class LinkEntry:
    """One published link: the writer's estimate of its link to ``peer``."""

    peer: str
    bandwidth: float
    """Mean throughput, bytes/s (``exp`` of the log-space mean)."""
    log_sd: float
    """Spread of log-throughput when published (age adds ``DRIFT`` per hour to the variance)."""
    rtt_s: float | None
    samples: int
    age_s: float
    """How old the estimate was when published."""
    fitted: bool = False
    """Latency and throughput fitted apart over transfers of different sizes (``rtt_s`` is
    then the per-request latency); else the log-throughput of the table and the ping's rtt."""


@dataclass(frozen=True, slots=True)
class LinkSummary:
    writer: str
    at_ms: int
    entries: tuple[LinkEntry, ...]

    def entry(self, peer: str) -> LinkEntry | None:
        for e in self.entries:
            if e.peer == peer:
                return e
        return None


@dataclass(frozen=True, slots=True)
class PredictedLink:
    """The link between two nodes as read from the published summaries."""

    bandwidth: float
    """Mean throughput, bytes/s."""
    low: float
    """A conservative throughput: one spread below the mean (what a choice should plan on)."""
    rtt_s: float
    log_sd: float
    source: str
    """Whose measurement it is (one of the two ends)."""
    age_s: float
    samples: int
    fitted: bool

    def as_dict(self) -> dict[str, Any]:
        return {"bandwidth": round(self.bandwidth), "low": round(self.low),
                "rtt_ms": round(self.rtt_s * 1000, 1), "log_sd": round(self.log_sd, 3),
                "source": self.source, "age_s": round(self.age_s), "samples": self.samples,
                "fitted": self.fitted}


def summarize(table: LinkTable, writer: str, now: float, now_ms: int,
              limit: int = MAX_PEERS) -> LinkSummary:
    """This node's summary: its ``limit`` best-measured peers (most samples, then freshest).

    ``now`` is the table's clock (monotonic), ``now_ms`` the wall clock the summary is stamped
    with; entries are in peer order so equal tables give equal bytes.
    """
    entries = []
    for peer, est in table.items():
        if not isinstance(peer, str) or len(peer) > MAX_PEER_ID:
            continue
        rtt: float | None
        fit = fit_latency(est.recent)
        if fit is not None:
            latency, bandwidth = fit
            rtt = max(latency, est.rtt or 0.0)
            sd = est.sd(now) if est.samples else PRIOR_SD / 2
            count = max(est.samples, len(est.recent))
        elif est.samples:
            bandwidth, rtt, sd, count = math.exp(est.log_bw), est.rtt, est.sd(now), est.samples
        else:
            continue
        entries.append(LinkEntry(peer, bandwidth, sd, rtt, count, max(0.0, now - est.updated),
                                 fit is not None))
    entries.sort(key=lambda e: (-e.samples, e.age_s, e.peer))
    return LinkSummary(writer, now_ms, tuple(sorted(entries[:limit], key=lambda e: e.peer)))


def to_wire(summary: LinkSummary) -> list[Any]:
    """The published value: ``[FORMAT, at_ms, [[peer, B/s, sd x 1000, rtt us | -1, samples,
    age s, fitted 0 | 1], ...]]``, integers only (canonical, small)."""
    rows = [[e.peer, min(max(1, round(e.bandwidth)), 10**12), min(round(e.log_sd * 1000), 100_000),
             -1 if e.rtt_s is None else min(round(e.rtt_s * 1e6), 10**9),
             min(e.samples, 2**32 - 1), min(round(e.age_s), 10**9), int(e.fitted)]
            for e in summary.entries]
    wire = [FORMAT, summary.at_ms, rows]
    size = len(packb(wire))
    if size > MAX_SUMMARY_BYTES:  # our own bug: MAX_PEERS and MAX_PEER_ID bound it
        raise ValueError(f"link summary of {size} bytes, over {MAX_SUMMARY_BYTES}")
    return wire


def from_wire(value: Any, writer: str) -> LinkSummary:
    """Check a published summary (a peer wrote it: every field bounded and typed)."""
    if type(value) is not list or len(value) != 3 or value[0] != FORMAT:
        raise MalformedMessage(f"link summary of {writer[:12]} is not format {FORMAT}")
    _, at_ms, rows = value
    if not _int(at_ms, 0, 2**63 - 1) or type(rows) is not list or len(rows) > MAX_PEERS:
        raise MalformedMessage(f"link summary of {writer[:12]}: bad time or too many rows")
    if len(packb(value)) > MAX_SUMMARY_BYTES:
        raise MalformedMessage(f"link summary of {writer[:12]} is over {MAX_SUMMARY_BYTES} bytes")
    entries = []
    for row in rows:
        if type(row) is not list or len(row) != 7:
            raise MalformedMessage(f"link summary of {writer[:12]}: a row is not 7 fields")
        peer, bw, sd, rtt, samples, age, fitted = row
        if not (isinstance(peer, str) and 0 < len(peer) <= MAX_PEER_ID and peer != writer
                and _int(bw, 1, 10**12) and _int(sd, 0, 100_000) and _int(rtt, -1, 10**9)
                and _int(samples, 1, 2**32 - 1) and _int(age, 0, 10**9) and _int(fitted, 0, 1)):
            raise MalformedMessage(f"link summary of {writer[:12]}: a row is out of range")
        entries.append(LinkEntry(peer, float(bw), sd / 1000, None if rtt < 0 else rtt / 1e6,
                                 samples, float(age), bool(fitted)))
    if len({e.peer for e in entries}) != len(entries):
        raise MalformedMessage(f"link summary of {writer[:12]} names a peer twice")
    return LinkSummary(writer, at_ms, tuple(entries))


def min_interval(summaries: int) -> float:
    """Seconds between two rewrites of our summary among ``summaries`` nodes' summaries."""
    return max(MIN_INTERVAL_S, INTERVAL_PER_NODE_S * summaries)


def changed(old: LinkSummary | None, new: LinkSummary) -> bool:
    """Whether ``new`` says something a reader of ``old`` would want to know. A reader ages
    ``old``'s spread by ``DRIFT`` itself (``predict``), so a spread that grew only by that
    (a quiet link, no new samples) is not news: an idle node never rewrites its summary."""
    if old is None:
        return bool(new.entries)
    if {e.peer for e in old.entries} != {e.peer for e in new.entries}:
        return True
    for e in new.entries:
        o = old.entry(e.peer)
        assert o is not None
        if abs(math.log(e.bandwidth / o.bandwidth)) > math.log1p(BW_CHANGE):
            return True
        aged = math.sqrt(o.log_sd ** 2 + DRIFT * max(0, new.at_ms - old.at_ms) / 3.6e6)
        if e.fitted != o.fitted or abs(e.log_sd - aged) > SD_CHANGE:
            return True
        if (e.rtt_s is None) != (o.rtt_s is None) or (
                e.rtt_s is not None and o.rtt_s is not None
                and abs(math.log(e.rtt_s / o.rtt_s)) > math.log1p(BW_CHANGE)):
            return True
    return False


def predict(summaries: Mapping[str, LinkSummary], a: str, b: str,
            now_ms: int) -> PredictedLink | None:
    """The link for data from ``a`` to ``b`` (None: neither end measured it).

    A node measures the direction it fetched in, so ``b``'s entry for ``a`` (b fetched from
    a) is that direction itself; ``a``'s entry for ``b`` is the reverse direction (right on a
    symmetric link, optimistic on a home line whose uplink is the slower side: its spread grows
    by ``REVERSE_SD``, so the conservative figure ``low`` allows for that). The direction
    itself is read whenever it was measured, fitted or not: its throughput may hold the
    per-request cost (``daemon.links.estimate``), which errs low, the safe side for a plan; the
    reverse direction of a home line errs high, by up to its down/up ratio, even fitted (a
    volunteer on a 1 Mbit/s uplink read from its 8 Mbit/s downlink's fitted entry was planned
    above a 50 Mbit/s line's). The submitter probes a worker whose link is not yet fitted
    (``daemon.jobs.submitter``), so the direction itself is fitted after a round or two."""
    for rank, (writer, peer) in enumerate(((b, a), (a, b))):
        summary = summaries.get(writer)
        entry = summary.entry(peer) if summary is not None else None
        if summary is None or entry is None:
            continue
        age = entry.age_s + max(0, now_ms - summary.at_ms) / 1000
        doubt = REVERSE_SD ** 2 if rank else 0.0
        sd = math.sqrt(entry.log_sd ** 2 + DRIFT * age / 3600 + doubt)
        low = math.exp(math.log(entry.bandwidth) - sd)
        rtt = entry.rtt_s if entry.rtt_s is not None else 0.0
        return PredictedLink(entry.bandwidth, low, rtt, sd, writer, age, entry.samples,
                             entry.fitted)
    return None


def _int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi
