"""Counters of everything the host wrapper does, drops or blames, for ``P2PHost.metrics()``.

py-libp2p drops in several places without telling anyone (full queues, rate limits, oversized
RPCs); every such place we can see is routed here, so "it did not arrive" always shows up as a
number with a cause. Counters only ever grow; ``snapshot`` returns plain JSON-able dicts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


class P2PMetrics:
    """Monotonic counters, grouped. Cheap enough to bump on every frame."""

    def __init__(self) -> None:
        self.frames_in: Counter[str] = Counter()  # protocol -> frames received
        self.frames_out: Counter[str] = Counter()  # protocol -> frames written
        self.bytes_in: Counter[str] = Counter()
        self.bytes_out: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()  # cause -> outbound frames dropped
        self.faults: defaultdict[str, Counter[str]] = defaultdict(Counter)  # peer -> reason -> n
        self.handler_errors: Counter[str] = Counter()  # protocol or topic -> our handler raised
        self.requests: Counter[str] = Counter()  # sent / served / failed:<reason>
        self.gossip_published: Counter[str] = Counter()  # topic -> own messages sent
        self.gossip_received: Counter[str] = Counter()  # topic -> delivered to the handler
        self.gossip_dropped: Counter[str] = Counter()  # cause -> messages lost
        self.dials: Counter[str] = Counter()  # attempts / failures / succeeded
        self.bans: Counter[str] = Counter()  # peer -> times banned

    def fault(self, peer: str, reason: str) -> None:
        self.faults[peer][reason] += 1

    def snapshot(self, **gauges: Any) -> dict[str, Any]:
        """All counters as plain dicts, plus the gauges the host passes in (connected peers...)."""
        return {
            "frames_in": dict(self.frames_in),
            "frames_out": dict(self.frames_out),
            "bytes_in": dict(self.bytes_in),
            "bytes_out": dict(self.bytes_out),
            "drops": dict(self.drops),
            "faults": {peer: dict(reasons) for peer, reasons in self.faults.items()},
            "handler_errors": dict(self.handler_errors),
            "requests": dict(self.requests),
            "gossip": {
                "published": dict(self.gossip_published),
                "received": dict(self.gossip_received),
                "dropped": dict(self.gossip_dropped),
            },
            "dials": dict(self.dials),
            "bans": dict(self.bans),
            **gauges,
        }
