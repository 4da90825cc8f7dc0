"""Following the epoch chain by announcement and fetch, as a pure planner (``EpochSync``).

Each epoch's notice carries the whole membership (~36 bytes a member: 360 KB at 10,000
members). Pushed by every node to every connected peer, a node took it in once per neighbour
(up to 64 copies an epoch), and each new connection was sent the whole chain since the genesis,
which only grows. Instead a node tells its peers how far it has followed the chain
(``EpochHave``: as a peer connects, and as it moves on), and a node that is behind asks one
peer that is ahead for the notices it lacks, a bounded batch at a time (``EpochFetch``), the
way a blockchain node syncs headers: each notice crosses to each node about once.

The trio shell (``daemon.committees.epochs.EpochManager``) sends what this decides. Time comes
in as ``now`` (the service's monotonic clock); peers are node ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.committees.peer_pace import PeerPace

FETCH_BATCH = 8
"""Notices one fetch asks for at most (each is one frame; a batch is a few MB at 10,000
members, and a node far behind asks again as soon as a batch is in)."""
FETCH_TIMEOUT_S = 10.0
"""A fetch that brought nothing for this long is given up: ask another peer that is ahead."""
SKIP_S = 60.0
"""A peer that let a fetch time out is asked again only after this long (if another is ahead)."""
SERVE_EVERY_S = 1.0
"""A peer's fetches are answered at most once a second: a batch costs us its bytes to send."""
MAX_PEERS = 4096
"""Peers whose heads and answers are remembered at most (connected peers, in practice)."""


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask ``peer`` for the notices that end ``epoch`` and after."""

    peer: str
    epoch: int


@dataclass
class _Asking:
    peer: str
    upto: int
    """Our chain is where this fetch should bring it (the peer's head, at most a batch on)."""
    since: float
    """When the fetch was sent, or last brought a notice."""


@dataclass
class EpochSync:
    heads: dict[str, int] = field(default_factory=dict)
    """Connected peers -> the epoch each said it has followed the chain to."""
    asking: _Asking | None = None
    skipped: dict[str, float] = field(default_factory=dict)
    """Peers that let a fetch time out -> when."""
    served: PeerPace = field(default_factory=lambda: PeerPace(SERVE_EVERY_S))
    """When we last answered each peer's fetch."""

    def have(self, peer: str, epoch: int, ours: int, now: float) -> Fetch | None:
        """``peer`` said it has followed the chain to ``epoch``; we are at ``ours``."""
        if peer not in self.heads and len(self.heads) >= MAX_PEERS:
            return None
        self.heads[peer] = max(self.heads.get(peer, 0), epoch)
        return self.next(ours, now)

    def next(self, ours: int, now: float) -> Fetch | None:
        """The fetch to send now, if we are behind a peer and none is under way (at each
        notice applied, and at each tick for a fetch that timed out)."""
        if self.asking is not None:
            if ours >= self.asking.upto:
                self.asking = None  # done
            elif now - self.asking.since < FETCH_TIMEOUT_S:
                return None
            else:
                self.skipped[self.asking.peer] = now
                self.asking = None
        ahead = [(e, p) for p, e in self.heads.items() if e > ours]
        if not ahead:
            return None
        fresh = [(e, p) for e, p in ahead if now - self.skipped.get(p, -SKIP_S) >= SKIP_S]
        head, peer = max(fresh or ahead)
        self.asking = _Asking(peer, min(head, ours + FETCH_BATCH), now)
        return Fetch(peer, ours)

    def progressed(self, ours: int, now: float) -> Fetch | None:
        """A notice was applied (our chain is at ``ours``): the fetch under way is alive."""
        if self.asking is not None and ours < self.asking.upto:
            self.asking.since = now
        return self.next(ours, now)

    def behind(self, ours: int) -> bool:
        """A peer said it is further on: we are catching up (our own moves need no telling)."""
        return any(e > ours for e in self.heads.values())

    def catching_up_to(self, ours: int) -> int | None:
        """The epoch we are following the chain to, if that is two or more on from ``ours``
        (one on is a fresh notice spreading, seconds at most); peers that let a fetch time out
        do not count (one claiming an epoch it cannot serve would show us behind for ever)."""
        heads = [e for p, e in self.heads.items() if p not in self.skipped]
        target = max(heads, default=ours)
        return target if target >= ours + 2 else None

    def may_serve(self, peer: str, now: float) -> bool:
        """Answer ``peer``'s fetch now? At most once every ``SERVE_EVERY_S``."""
        return self.served.allow(peer, now)

    def gone(self, peer: str) -> None:
        """``peer`` disconnected: its head is no longer a place to fetch from."""
        self.heads.pop(peer, None)
        self.served.forget(peer)
        self.skipped.pop(peer, None)
        if self.asking is not None and self.asking.peer == peer:
            self.asking = None  # ask another at the next tick
