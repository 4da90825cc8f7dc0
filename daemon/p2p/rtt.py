"""Round-trip times to peers, and timers scaled by them: the pure core.

Theory of operation
-------------------
Round trips come from two sources, both fed to ``RttTable.sample``. Traffic that already
flows: the soft state's anti-entropy sends each peer its deltas and the peer acknowledges
them at once (``crdt.antientropy.Books.on_ack``), an interval sent once and its
acknowledgement being a round trip. At every network size a view peer carries a delta every
few seconds (each record rewrite crosses each overlay link), so view peers are timed for free.
And libp2p's ping, only where nothing else measured the link: the host pings the peers it
keeps (its view and its committees) that are newly connected (timers fall back to their
loopback bases until a peer is measured) or have had no sample for ``PROBE_EVERY`` seconds,
several at a time (one dead peer's timeout does not hold up the others); ``RttTable.due``
says whom. A ping is a new stream and two round trips, ~300 bytes with framing: at 15 s to
each of ~160 connections (a member of many committees) that alone was 3 KB/s of a volunteer's
idle traffic. Each peer has a
smoothed round trip and a variation, as TCP keeps them (RFC 6298: ``srtt += (r - srtt) / 8``,
``rttvar += (|r - srtt| - rttvar) / 4``); ``conservative(peer)`` is ``srtt + 4 * rttvar``,
TCP's retransmission timeout before its floor.

Timers that wait for a peer's answer (PBFT's request and view-change timeouts, its status
interval, leases) use ``scale(base, rtt, multiple)``: never below the base that suits a
loopback or LAN (so a fast network is not slowed down), ``multiple`` round trips when the
committee is far away (so a 300 ms link is not taken for a dead primary), and never above a
ceiling (a dead peer is still found out). A committee's round trip is the median of its
members' conservative estimates: one slow member should not slow the others, and one fast
member should not make a far committee impatient.

Pure: time and samples come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median

from daemon.p2p.config import P2PConfig
from protocol.identity import NodeId

PROBE_EVERY = 60.0
"""A kept peer with no round-trip sample (from a ping or an acknowledged delta) for this long
is pinged. The timers that read the table retune every ``RETUNE_EVERY`` s from the smoothed
estimate, which a minute-old sample still describes well (a path's round trip changes when
its route does, not from second to second)."""
RETRY_EVERY = 15.0
"""After an unanswered ping the next comes this soon, so a dead link (a NAT mapping gone, no
socket error) is still found within ``PROBE_EVERY + (DEAD_AFTER_MISSES - 1) * RETRY_EVERY``
seconds plus the ping timeouts."""
FORGET_AFTER = 600.0
"""A peer not sampled for this long is forgotten (its link may have changed)."""
MAX_PEERS = 256
"""Peers tracked at most (view + committees are far fewer); the stalest go first."""


@dataclass
class _Estimate:
    srtt: float
    rttvar: float
    samples: int
    updated: float
    misses: int = 0


class RttTable:
    """Smoothed round trips per peer (seconds)."""

    def __init__(self) -> None:
        self._peers: dict[NodeId, _Estimate] = {}
        self._probed: dict[NodeId, float] = {}

    def due(self, peers: Iterable[NodeId], now: float) -> list[NodeId]:
        """Those of ``peers`` to ping now, marked as pinged: never pinged while connected, or
        neither pinged nor otherwise sampled for ``PROBE_EVERY`` s (``RETRY_EVERY`` s after a
        missed ping). Peers no longer given are dropped from the record, so one that
        reconnects is pinged at once."""
        current = set(peers)
        self._probed = {p: t for p, t in self._probed.items() if p in current}
        out = []
        for p in sorted(current):
            last = self._probed.get(p)
            est = self._peers.get(p)
            if last is not None and est is not None and est.misses:
                due = now - last >= RETRY_EVERY
            elif last is not None:
                due = now - max(last, est.updated if est else last) >= PROBE_EVERY
            else:
                due = True
            if due:
                self._probed[p] = now
                out.append(p)
        return out

    def sample(self, peer: NodeId, rtt: float, now: float) -> None:
        if not 0.0 <= rtt < 60.0:
            return  # a clock oddity or a wedged peer: not a round trip
        est = self._peers.get(peer)
        if est is None:
            if len(self._peers) >= MAX_PEERS:
                stalest = min(self._peers, key=lambda p: self._peers[p].updated)
                del self._peers[stalest]
            self._peers[peer] = _Estimate(rtt, rtt / 2, 1, now)
            return
        est.misses = 0
        est.rttvar += (abs(rtt - est.srtt) - est.rttvar) / 4
        est.srtt += (rtt - est.srtt) / 8
        est.samples += 1
        est.updated = now

    def ping_timeout(self, peer: NodeId, base: float) -> float:
        """How long to wait for a ping's answer: ``base`` until measured (and never less), then
        ``PING_TIMEOUT_RTTS`` conservative round trips, at most ``PING_TIMEOUT_CEILING``."""
        return scale(base, self.conservative(peer), PING_TIMEOUT_RTTS, PING_TIMEOUT_CEILING)

    def missed(self, peer: NodeId, now: float, heard_since: bool = False) -> bool:
        """A ping went unanswered within ``ping_timeout``. True once ``DEAD_AFTER_MISSES`` in a
        row have: the link is dead (a NAT mapping expired, a laptop lid closed) even though no
        socket error says so, and the caller should hang up and redial. A peer never measured
        is not tracked here (its connection attempt has its own timeout).

        ``heard_since``: a frame came from the peer while the ping waited. The link is alive,
        only slow (the ping queued behind consensus traffic on a sub-Mbit uplink, or the peer's
        event loop lagging): no miss. Hanging up on such peers tore down the busiest links of a
        30-node WAN testnet's committee, 1,230 times, and every redial cost it more."""
        est = self._peers.get(peer)
        if est is None:
            return False
        if heard_since:
            est.misses = 0
            return False
        est.misses += 1
        if est.misses >= DEAD_AFTER_MISSES:
            est.misses = 0
            return True
        return False

    def forget_stale(self, now: float) -> None:
        for peer in [p for p, e in self._peers.items() if now - e.updated > FORGET_AFTER]:
            del self._peers[peer]

    def srtt(self, peer: NodeId) -> float | None:
        est = self._peers.get(peer)
        return est.srtt if est else None

    def samples(self, peer: NodeId) -> int:
        """Samples taken of ``peer`` since it was last forgotten (0: not measured)."""
        est = self._peers.get(peer)
        return est.samples if est else 0

    def conservative(self, peer: NodeId) -> float | None:
        est = self._peers.get(peer)
        return est.srtt + 4 * est.rttvar if est else None

    def group(self, peers: Iterable[str]) -> float | None:
        """The median conservative round trip of those ``peers`` we have measured."""
        known = [c for p in peers if (c := self.conservative(NodeId(p))) is not None]
        return median(known) if known else None

    def summary(self) -> dict[str, float | int | None]:
        srtts = sorted(e.srtt for e in self._peers.values())
        if not srtts:
            return {"peers": 0, "median_ms": None, "max_ms": None}
        return {"peers": len(srtts), "median_ms": round(median(srtts) * 1000, 1),
                "max_ms": round(srtts[-1] * 1000, 1)}


def scale(base: float, rtt: float | None, multiple: float, ceiling: float) -> float:
    """``base`` on a fast network, ``multiple`` round trips on a slow one, at most ``ceiling``."""
    if rtt is None:
        return base
    return min(max(base, multiple * rtt), max(base, ceiling))


PING_TIMEOUT_RTTS = 4.0
"""A ping is late after 4 conservative round trips (srtt + 4 x rttvar each): a loaded peer
still answers in time, a 300 ms link is given 1.2 s or more, never the base's 5 s."""
PING_TIMEOUT_CEILING = 30.0
DEAD_AFTER_MISSES = 3
"""Unanswered pings in a row (the later ones ``RETRY_EVERY`` s apart) before a link is declared
dead: one lost packet burst is not a dead peer, half a minute of silence after a minute
without any answer is."""

VIEW_CHANGE_RTTS = 8.0
"""A PBFT round is ~3 one-way delays plus batching; 8 round trips leave room for jitter and a
queue, so only a primary that is really gone (or mute) is replaced."""
STATUS_RTTS = 1.5
"""Status messages drive retransmission: no point sending them faster than answers return."""
RETUNE_EVERY = 15.0


def pbft_timers(base_view_change: float, base_status: float, rtt: float | None,
                ceiling: float) -> tuple[float, float]:
    """(view-change timeout, status interval) for a committee whose round trip is ``rtt``."""
    return (scale(base_view_change, rtt, VIEW_CHANGE_RTTS, ceiling),
            scale(base_status, rtt, STATUS_RTTS, ceiling / 4))


DIAL_RTTS = 8.0
"""Round trips a dial may take: TCP, two protocol negotiations and the Noise handshake are ~5,
and a loaded peer answers each one late."""


def dial_wait(rtts: RttTable, peer: NodeId, connected: Iterable[str], config: P2PConfig) -> float:
    """How long a dial to ``peer`` may take: ``config.dial_timeout`` on a fast network,
    ``DIAL_RTTS`` round trips on a slow one (the peer's own conservative round trip, or before
    it is measured the median of our connected peers', which is how far and how loaded the
    network is), at most ``config.dial_timeout_ceiling``."""
    rtt = rtts.conservative(peer)
    if rtt is None:
        rtt = rtts.group(connected)
    return scale(config.dial_timeout, rtt, DIAL_RTTS, config.dial_timeout_ceiling)
