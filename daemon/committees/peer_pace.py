"""How often a peer's asks are answered: once per interval, for a bounded set of peers.

An answer to an ask for epoch notices or a hand-over costs us its bytes (megabytes, for a
batch of notices), so a peer that asks again and again is answered at most once an interval;
the asks themselves are a few bytes. A correct peer asks once per fetch timeout or hand-over
wait (seconds apart), so one refused ``FLOOD_ASKS`` times in a row is asking on purpose: the
caller counts it against the peer (``AskFlood``), which bans a peer that keeps on. Pure:
``now`` comes in."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.errors import RemoteProtocolError

MAX_PEERS = 4096
"""Peers remembered at most (a peer's key is free to make: the map is bounded)."""
FLOOD_ASKS = 32
"""Asks refused in a row (none answered between) that make a flood."""


class AskFlood(RemoteProtocolError):
    """A peer asked far more often than any correct one does."""

    reason = "ask_flood"


@dataclass
class PeerPace:
    every_s: float
    last: dict[str, float] = field(default_factory=dict)
    """Peers -> when we last answered them."""
    refused: dict[str, int] = field(default_factory=dict)
    """Peers -> asks refused since their last answer (only peers in ``last``)."""

    def allow(self, peer: str, now: float) -> bool:
        """Answer ``peer`` now? At most once every ``every_s``; True notes the answer.
        ``AskFlood`` when this is the ``FLOOD_ASKS``-th refusal in a row (counted afresh
        after)."""
        if now - self.last.get(peer, -self.every_s) < self.every_s:
            n = self.refused.get(peer, 0) + 1
            self.refused[peer] = 0 if n >= FLOOD_ASKS else n
            if n >= FLOOD_ASKS:
                raise AskFlood(f"{n} asks within {self.every_s:g} s of an answer each")
            return False
        if peer not in self.last and len(self.last) >= MAX_PEERS:
            self.last = {p: t for p, t in self.last.items() if now - t < self.every_s}
            self.refused = {p: n for p, n in self.refused.items() if p in self.last}
        self.last[peer] = now
        self.refused.pop(peer, None)
        return True

    def forget(self, peer: str) -> None:
        self.last.pop(peer, None)
        self.refused.pop(peer, None)
