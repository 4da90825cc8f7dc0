"""Can this node be dialled, and if not, how is it reached: the pure core of NAT traversal.

Theory of operation
-------------------
A volunteer usually sits behind a home NAT router and does not know it. Three mechanisms from
libp2p decide how it is reached (``daemon.p2p.traversal`` runs them on py-libp2p's
implementations; this module decides *when* and *what to believe*):

1. **AutoNAT** -- we ask connected peers to dial us back on the addresses we advertise. One
   answer proves little (a peer may lie, or sit on our LAN), so a verdict per peer is kept for
   ``verdict_ttl`` seconds and the node is ``PUBLIC`` only when ``confirmations`` distinct
   peers reached us and more reached us than failed, ``PRIVATE`` when ``confirmations`` peers
   failed and more failed than reached us, ``UNKNOWN`` until then. (go-libp2p's AutoNAT v1
   asks for 3 confirmations, as here; py-libp2p's own aggregation wants 4 and never forgets.)
   While ``UNKNOWN`` we ask every ``ask_every_unknown`` seconds, afterwards every
   ``ask_every_known`` seconds, at most ``asks_per_round`` peers at a time and never the same
   peer twice within ``verdict_ttl``.
2. **Circuit relay v2** -- a ``PRIVATE`` node reserves a slot on ``relays_wanted`` peers it
   could dial itself (so they are dialable) and advertises ``<relay addr>/p2p-circuit`` in its
   signed capability record instead of addresses nobody can reach. Reservations are renewed
   at ``renew_fraction`` of their lifetime; a refused or failed one backs the relay off for
   ``relay_backoff`` seconds and another candidate is tried. A node that turns ``PUBLIC``
   drops its reservations.
3. **DCUtR** -- once two nodes talk through a relay, py-libp2p's DCUtR service tries to punch
   a direct connection. The shell reports each peer's outcome (``punched``), so ``status``
   can say "direct after hole punching" for peers first reached through a relay.

``status_line`` is what ``novacron status`` shows: the case the node is in, plus what it last
tried. Pure: time and randomness come in as arguments, decisions go out as ``AskAutoNat`` /
``Reserve`` / ``Unreserve`` intents.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from protocol.identity import NodeId


class Reachability(Enum):
    UNKNOWN = "unknown"
    PUBLIC = "public"
    PRIVATE = "private"


@dataclass(frozen=True)
class TraversalPolicy:
    confirmations: int = 3
    """Distinct peers that must agree before the verdict flips (AutoNAT v1's 3)."""
    verdict_ttl: float = 900.0
    """A peer's dial-back verdict counts this long (addresses and NATs change)."""
    ask_every_unknown: float = 10.0
    ask_every_known: float = 300.0
    asks_per_round: int = 3
    relays_wanted: int = 2
    """Reservations a private node holds (two, so one relay leaving does not cut it off)."""
    renew_fraction: float = 0.75
    relay_backoff: float = 120.0

    def __post_init__(self) -> None:
        if self.confirmations < 1 or self.asks_per_round < 1 or self.relays_wanted < 0:
            raise ValueError("need confirmations >= 1, asks_per_round >= 1, relays_wanted >= 0")
        if not 0 < self.renew_fraction < 1:
            raise ValueError("renew_fraction must be in (0, 1)")


@dataclass(frozen=True)
class AskAutoNat:
    """Ask ``peer`` to dial us back on our advertised addresses."""

    peer: NodeId


@dataclass(frozen=True)
class Reserve:
    """Reserve (or renew) a circuit-relay slot on ``relay``."""

    relay: NodeId


@dataclass(frozen=True)
class Unreserve:
    """Stop using ``relay`` (we became public, or it refused us)."""

    relay: NodeId


Action = AskAutoNat | Reserve | Unreserve


@dataclass
class _Reservation:
    expires: float
    lifetime: float
    addrs: tuple[str, ...]


@dataclass
class Traversal:
    """What this node believes about its reachability, and what to try next."""

    self_id: NodeId
    policy: TraversalPolicy = field(default_factory=TraversalPolicy)
    state: Reachability = Reachability.UNKNOWN
    _verdicts: dict[NodeId, tuple[bool, float]] = field(default_factory=dict)
    _asked: dict[NodeId, float] = field(default_factory=dict)
    _next_ask: float = 0.0
    _reservations: dict[NodeId, _Reservation] = field(default_factory=dict)
    _pending: set[NodeId] = field(default_factory=set)
    _reserving: set[NodeId] = field(default_factory=set)
    _backoff: dict[NodeId, float] = field(default_factory=dict)
    punched: dict[NodeId, bool] = field(default_factory=dict)
    """Per peer first reached through a relay: did hole punching give a direct connection?"""
    last_tried: str = "nothing yet"

    # -- inputs ------------------------------------------------------------------------------

    def verdict(self, peer: NodeId, dialable: bool | None, now: float, detail: str = "") -> None:
        """A peer's AutoNAT answer: True (it reached us), False (it could not), None (no
        verdict: refused to try, or the request failed)."""
        self._pending.discard(peer)
        what = {True: "reached us", False: "could not dial us", None: "gave no verdict"}
        self.last_tried = f"asked {_short(peer)} to dial us back: {what[dialable]}" + (
            f" ({detail})" if detail else "")
        if dialable is None:
            # No answer is no evidence: the peer may be asked again next round (a timeout on
            # a loaded or lossy link would otherwise bar it for verdict_ttl, and a small
            # network would never gather its confirmations).
            self._asked.pop(peer, None)
            return
        self._verdicts[peer] = (dialable, now)
        self._decide(now)

    def reserved(self, relay: NodeId, ok: bool, now: float, *, ttl: float = 0.0,
                 addrs: Iterable[str] = (), detail: str = "") -> None:
        """The outcome of a reservation on ``relay``: its lifetime and our relayed addresses."""
        self._reserving.discard(relay)
        if ok and ttl > 0:
            self._reservations[relay] = _Reservation(now + ttl, ttl, tuple(addrs))
            self.last_tried = f"reserved a relay slot on {_short(relay)} for {ttl:.0f} s"
        else:
            self._reservations.pop(relay, None)
            self._backoff[relay] = now + self.policy.relay_backoff
            self.last_tried = f"relay reservation on {_short(relay)} failed" + (
                f" ({detail})" if detail else "")

    def relay_lost(self, relay: NodeId) -> None:
        """Our connection to a relay went away: its slot is gone with it."""
        if self._reservations.pop(relay, None) is not None:
            self.last_tried = f"lost relay {_short(relay)}; looking for another"

    def hole_punch(self, peer: NodeId, direct: bool) -> None:
        """A peer first reached through a relay is now connected directly (or gave up)."""
        if self.punched.get(peer) == direct:
            return
        self.punched[peer] = direct
        if len(self.punched) > 256:  # bounded: the oldest entries go first
            del self.punched[next(iter(self.punched))]
        self.last_tried = (f"hole punch to {_short(peer)}: "
                           f"{'direct connection' if direct else 'failed, staying relayed'}")

    # -- decisions ---------------------------------------------------------------------------

    def tick(self, now: float, connected: Iterable[NodeId], dialable: Iterable[NodeId],
             rng: random.Random) -> list[Action]:
        """``connected``: peers we can ask (direct connections). ``dialable``: peers we dialled
        ourselves over a direct address, the candidates for relays."""
        p = self.policy
        out: list[Action] = []
        self._forget(now)
        if now >= self._next_ask:
            fresh = sorted(n for n in set(connected) if n != self.self_id
                           and n not in self._pending
                           and now - self._asked.get(n, -1e18) >= p.verdict_ttl)
            rng.shuffle(fresh)
            for peer in fresh[: p.asks_per_round]:
                self._asked[peer] = now
                self._pending.add(peer)
                out.append(AskAutoNat(peer))
            known = self.state is not Reachability.UNKNOWN
            self._next_ask = now + (p.ask_every_known if known else p.ask_every_unknown)
        if self.state is Reachability.PUBLIC:
            for relay in sorted(self._reservations):
                out.append(Unreserve(relay))
            self._reservations.clear()
            return out
        if self.state is not Reachability.PRIVATE:
            return out
        for relay, res in sorted(self._reservations.items()):
            if res.expires <= now:
                del self._reservations[relay]
            elif relay not in self._reserving and res.expires - now <= (
                    1 - p.renew_fraction) * res.lifetime:
                self._reserving.add(relay)
                out.append(Reserve(relay))
        missing = p.relays_wanted - len(self._reservations) - len(
            self._reserving - set(self._reservations))
        if missing > 0:
            candidates = sorted(n for n in set(dialable) if n != self.self_id
                                and n not in self._reservations and n not in self._reserving
                                and self._backoff.get(n, -1e18) <= now)
            rng.shuffle(candidates)
            for relay in candidates[:missing]:
                self._reserving.add(relay)
                out.append(Reserve(relay))
        return out

    def _forget(self, now: float) -> None:
        ttl = self.policy.verdict_ttl
        for peer in [n for n, (_, t) in self._verdicts.items() if now - t > ttl]:
            del self._verdicts[peer]
        for peer in [n for n, t in self._asked.items() if now - t > ttl]:
            del self._asked[peer]
        for relay in [n for n, t in self._backoff.items() if t <= now]:
            del self._backoff[relay]

    def _decide(self, now: float) -> None:
        yes = sum(1 for ok, _ in self._verdicts.values() if ok)
        no = len(self._verdicts) - yes
        need = self.policy.confirmations
        if yes >= need and yes > no:
            new = Reachability.PUBLIC
        elif no >= need and no > yes:
            new = Reachability.PRIVATE
        else:
            return  # not enough agreement: keep what we believed
        if new is not self.state:
            self.state = new
            self._next_ask = now + self.policy.ask_every_known

    # -- outputs -----------------------------------------------------------------------------

    def relays(self) -> list[NodeId]:
        return sorted(self._reservations)

    def relayed_addrs(self) -> list[str]:
        """Our addresses through the relays holding a slot for us (without /p2p/<self>)."""
        out: list[str] = []
        for relay in sorted(self._reservations):
            out.extend(self._reservations[relay].addrs)
        return out

    def counts(self) -> tuple[int, int]:
        yes = sum(1 for ok, _ in self._verdicts.values() if ok)
        return yes, len(self._verdicts) - yes

    def status_line(self) -> str:
        yes, no = self.counts()
        direct = sorted(p for p, ok in self.punched.items() if ok)
        if self.state is Reachability.PUBLIC:
            case = f"public (dialled back by {yes} of {yes + no} peers asked)"
        elif self.state is Reachability.PRIVATE:
            relays = self.relays()
            if relays:
                case = ("behind NAT, reached through relay "
                        + ", ".join(_short(r) for r in relays))
            else:
                case = f"behind NAT ({no} of {yes + no} peers could not dial us), no relay yet"
            if direct:
                case += f"; direct after hole punching to {len(direct)} peer(s)"
        else:
            case = f"reachability unknown ({yes} reached us, {no} could not; asking peers)"
        return f"{case}; last tried: {self.last_tried}"

    def summary(self) -> dict[str, object]:
        yes, no = self.counts()
        return {
            "state": self.state.value, "dialled_back": yes, "not_dialled_back": no,
            "relays": self.relays(), "relayed_addrs": self.relayed_addrs(),
            "hole_punched": sorted(p for p, ok in self.punched.items() if ok),
            "hole_punch_failed": sorted(p for p, ok in self.punched.items() if not ok),
            "last_tried": self.last_tried, "line": self.status_line(),
        }


def _short(node: str) -> str:
    return node[-8:] if len(node) > 8 else node
