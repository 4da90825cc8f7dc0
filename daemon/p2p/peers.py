"""Which peers to dial when, and which to shun: the pure core of connection management.

Theory of operation
-------------------
Each known peer has a record. *Remembered* peers (bootstrap peers and those added with
``remember``) are kept connected: whenever one is not connected, not being dialled and not banned,
it is *due* at ``next_dial``. A failed dial pushes ``next_dial`` out by an exponential backoff
(``reconnect_min * 2**failures``, capped at ``reconnect_max``) with "equal jitter" (half fixed, half
uniform from the caller's seeded rng) so that a restarted network does not redial in lockstep.
A connection that ends after lasting at least ``reconnect_max`` resets the failure count; a
shorter one counts as another failure, so a flapping peer keeps backing off. Peers that only ever
dialled us are known but not redialled: they have us as their bootstrap and come back themselves.

Faults: each counted fault adds 1 to the peer's score, which leaks at ``fault_decay`` per second
(a leaky bucket, so rare honest mistakes never add up). When the score reaches ``fault_threshold``
the peer is banned until ``now + ban_seconds``: the shell disconnects it, refuses its streams and
ignores its gossip; its score starts from zero when the ban ends.

The shell (``daemon.p2p.host``) feeds in events with ``now`` from the trio clock and carries out
the dials it is told are due. Nothing here reads a clock or module-level ``random``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.identity import NodeId


@dataclass(frozen=True)
class BackoffPolicy:
    minimum: float
    maximum: float

    def delay(self, failures: int, rng: random.Random) -> float:
        """Wait before attempt ``failures + 1``: in [base/2, base], base doubling per failure."""
        base = min(self.maximum, self.minimum * (2.0 ** min(failures, 62)))
        return base / 2 + rng.uniform(0.0, base / 2)


@dataclass(frozen=True)
class KnownPeer:
    """A snapshot of what the book knows about one peer (``P2PHost.known_peers()``)."""

    node_id: NodeId
    addrs: tuple[str, ...]
    remembered: bool
    bootstrap: bool
    connected: bool
    failures: int
    banned: bool
    fault_score: float


@dataclass
class _Record:
    node_id: NodeId
    addrs: list[str] = field(default_factory=list)
    remembered: bool = False
    bootstrap: bool = False
    connected: bool = False
    connected_since: float = 0.0
    dialing: bool = False
    failures: int = 0
    next_dial: float = 0.0
    fault_score: float = 0.0
    fault_updated: float = 0.0
    banned_until: float = 0.0


class PeerBook:
    """Known peers, their backoff state and their fault scores."""

    def __init__(
        self,
        *,
        self_id: NodeId,
        backoff: BackoffPolicy,
        fault_threshold: float,
        fault_decay: float,
        ban_seconds: float,
        rng: random.Random,
    ) -> None:
        self.self_id = self_id
        self.backoff = backoff
        self.fault_threshold = fault_threshold
        self.fault_decay = fault_decay
        self.ban_seconds = ban_seconds
        self._rng = rng
        self._peers: dict[NodeId, _Record] = {}

    def _get(self, node_id: NodeId) -> _Record:
        rec = self._peers.get(node_id)
        if rec is None:
            rec = self._peers[node_id] = _Record(node_id)
        return rec

    # -- what we learn -------------------------------------------------------------------------

    def remember(
        self, node_id: NodeId, addrs: Iterable[str], *, bootstrap: bool, now: float
    ) -> bool:
        """Keep this peer connected from now on. Returns False for our own id (never dialled)."""
        if node_id == self.self_id:
            return False
        rec = self._get(node_id)
        for addr in addrs:
            if addr not in rec.addrs:
                rec.addrs.append(addr)
        if not rec.remembered:
            rec.remembered = True
            rec.next_dial = now
        rec.bootstrap = rec.bootstrap or bootstrap
        return True

    def forget(self, node_id: NodeId) -> None:
        """Stop redialling a peer (it stays known while connected; its ban and score stay)."""
        rec = self._peers.get(node_id)
        if rec is not None:
            rec.remembered = False  # still shown as a bootstrap peer; the overlay may want it again

    def addrs(self, node_id: NodeId) -> list[str]:
        rec = self._peers.get(node_id)
        return list(rec.addrs) if rec else []

    def connected(self, node_id: NodeId, now: float) -> None:
        rec = self._get(node_id)
        rec.connected = True
        rec.connected_since = now
        rec.dialing = False

    def disconnected(self, node_id: NodeId, now: float) -> None:
        rec = self._peers.get(node_id)
        if rec is None or not rec.connected:
            return
        rec.connected = False
        if now - rec.connected_since < self.backoff.maximum:
            rec.failures += 1  # it did not stay: treat like a failed dial so flapping backs off
        else:
            rec.failures = 0
        rec.next_dial = now + self.backoff.delay(rec.failures, self._rng)

    # -- dialling ------------------------------------------------------------------------------

    def due(self, now: float) -> list[NodeId]:
        """Remembered peers to dial now, in a stable order. Marks them as being dialled."""
        out = []
        for rec in self._peers.values():
            if (
                rec.remembered
                and not rec.connected
                and not rec.dialing
                and rec.banned_until <= now
                and rec.next_dial <= now
            ):
                rec.dialing = True
                out.append(rec.node_id)
        return out

    def dial_failed(self, node_id: NodeId, now: float) -> float:
        """Record a failed dial; returns the delay before the next attempt."""
        rec = self._get(node_id)
        rec.dialing = False
        delay = self.backoff.delay(rec.failures, self._rng)
        rec.failures += 1
        rec.next_dial = now + delay
        return delay

    def dial_succeeded(self, node_id: NodeId, now: float) -> None:
        rec = self._get(node_id)
        rec.dialing = False
        if not rec.connected:  # the connected event may come before or after the dial returns
            self.connected(node_id, now)

    def next_wakeup(self) -> float | None:
        """The earliest time at which ``due`` may return something new (None: nothing pending)."""
        times = [
            max(rec.next_dial, rec.banned_until)
            for rec in self._peers.values()
            if rec.remembered and not rec.connected and not rec.dialing
        ]
        return min(times) if times else None

    # -- faults and bans -----------------------------------------------------------------------

    def fault(self, node_id: NodeId, now: float, weight: float = 1.0) -> bool:
        """Count a fault. Returns True if this fault got the peer banned (the shell disconnects)."""
        rec = self._get(node_id)
        if self.is_banned(node_id, now):
            return False
        leaked = (now - rec.fault_updated) * self.fault_decay
        rec.fault_score = max(0.0, rec.fault_score - leaked) + weight
        rec.fault_updated = now
        if rec.fault_score >= self.fault_threshold:
            rec.banned_until = now + self.ban_seconds
            rec.fault_score = 0.0
            rec.dialing = False
            return True
        return False

    def is_banned(self, node_id: NodeId, now: float) -> bool:
        rec = self._peers.get(node_id)
        return rec is not None and rec.banned_until > now

    def banned(self, now: float) -> list[NodeId]:
        return [rec.node_id for rec in self._peers.values() if rec.banned_until > now]

    def _leaked_score(self, rec: _Record, now: float) -> float:
        return max(0.0, rec.fault_score - (now - rec.fault_updated) * self.fault_decay)

    # -- views ---------------------------------------------------------------------------------

    def snapshot(self, now: float) -> list[KnownPeer]:
        return [
            KnownPeer(
                node_id=rec.node_id,
                addrs=tuple(rec.addrs),
                remembered=rec.remembered,
                bootstrap=rec.bootstrap,
                connected=rec.connected,
                failures=rec.failures,
                banned=rec.banned_until > now,
                fault_score=self._leaked_score(rec, now),
            )
            for rec in self._peers.values()
        ]
