"""How often a peer's asks are answered: once per interval, for a bounded set of peers.

An answer to an ask for epoch notices or a hand-over costs us its bytes (megabytes, for a
batch of notices), so a peer that asks again and again is answered at most once an interval;
the asks themselves are a few bytes. Pure: ``now`` comes in."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PEERS = 4096
"""Peers remembered at most (a peer's key is free to make: the map is bounded)."""


@dataclass
class PeerPace:
    every_s: float
    last: dict[str, float] = field(default_factory=dict)
    """Peers -> when we last answered them."""

    def allow(self, peer: str, now: float) -> bool:
        """Answer ``peer`` now? At most once every ``every_s``; True notes the answer."""
        if now - self.last.get(peer, -self.every_s) < self.every_s:
            return False
        if peer not in self.last and len(self.last) >= MAX_PEERS:
            self.last = {p: t for p, t in self.last.items() if now - t < self.every_s}
        self.last[peer] = now
        return True

    def forget(self, peer: str) -> None:
        self.last.pop(peer, None)
