"""The soft state's ``links`` object: every node's published link summary (``daemon.links.summary``).

An owner-keyed LWW map next to the capability registry in the same CRDT replica: node k writes
only key k, each write signed on its dot, so anti-entropy, pruning of departed nodes and the
signature checks are the registry's own. ``LinkBook`` is the service's part of it: when to
write ours (``due``: changed as a reader would notice, at most every ``min_interval``), and
reading everyone's, skipping a summary its writer got wrong (a malformed value costs the
writer its say, never the reader a crash).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from crdt import CrdtReplica, LWWMap
from daemon.links.summary import (LinkSummary, PredictedLink, changed, from_wire,
                                  min_interval, predict, to_wire)
from daemon.softstate.decoded import DecodedValues

LINKS = "links"

LinkSource = Callable[[int], LinkSummary]
"""This node's current summary, stamped with the given wall time in ms."""


class LinkBook:
    def __init__(self, replica: CrdtReplica, node_id: str) -> None:
        self.replica = replica
        self.node_id = node_id
        self.source: LinkSource | None = None
        self.published: LinkSummary | None = None
        self.last_publish = -math.inf
        self.malformed = 0
        self._decoded = DecodedValues(from_wire)
        """Placement reads a few summaries per proposal: each is decoded once per value."""

    def due(self, now: float, now_ms: int) -> LinkSummary | None:
        """Our summary if it should be written now (``now``: the service's monotonic clock):
        changed, and not sooner than ``min_interval`` (longer as the network grows)."""
        links: LWWMap = self.replica.get(LINKS)  # type: ignore[assignment]
        if self.source is None or now - self.last_publish < min_interval(len(links.keys())):
            return None
        summary = self.source(now_ms)
        return summary if changed(self.published, summary) else None

    def publish(self, summary: LinkSummary, now: float) -> None:
        wire = to_wire(summary)
        self.replica.update(LINKS, lambda m, w: m.p_set(w, self.node_id, wire), summary.at_ms)
        self.published, self.last_publish = summary, now

    def summary(self, node: str) -> LinkSummary | None:
        """``node``'s published summary (None: none, or one its writer got wrong)."""
        links: LWWMap = self.replica.get(LINKS)  # type: ignore[assignment]
        return self._decoded.get(links, node)

    def summaries(self) -> dict[str, LinkSummary]:
        links: LWWMap = self.replica.get(LINKS)  # type: ignore[assignment]
        out = {}
        bad = 0
        for key in links.keys():
            found = self.summary(key)
            if found is None:
                bad += 1
            else:
                out[key] = found
        self.malformed = bad
        return out

    def predicted_to(self, target: str, nodes: list[str], now_ms: int
                     ) -> dict[str, PredictedLink]:
        """The predicted link from each of ``nodes`` to ``target`` (nodes nobody measured left
        out); reads only the summaries of ``target`` and ``nodes``. For links to this node
        itself its live table counts, not the copy it last published: that may be up to
        ``MIN_INTERVAL_S`` old, and an FL round that just fetched every client's update
        plans the next round on what those fetches measured."""
        out = {}
        if target == self.node_id and self.source is not None:
            ours: LinkSummary | None = self.source(now_ms)
        else:
            ours = self.summary(target)
        for node in nodes:
            if node == target:
                continue
            theirs = self.summary(node)
            found = predict({k: v for k, v in ((target, ours), (node, theirs)) if v is not None},
                            node, target, now_ms)
            if found is not None:
                out[node] = found
        return out

    def status(self) -> dict[str, Any]:
        """For ``status --json``: what we publish and how many nodes' summaries we hold
        (counted, not decoded: status is read often; ``malformed`` as of the last read)."""
        own = self.published
        links: LWWMap = self.replica.get(LINKS)  # type: ignore[assignment]
        return {
            "known": len(links.keys()), "malformed": self.malformed,
            "published_at_ms": own.at_ms if own else None,
            "published": [{"peer": e.peer, "bandwidth": round(e.bandwidth),
                           "log_sd": round(e.log_sd, 3),
                           "rtt_ms": None if e.rtt_s is None else round(e.rtt_s * 1000, 1),
                           "samples": e.samples} for e in own.entries] if own else [],
        }
