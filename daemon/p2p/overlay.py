"""Which connections a node keeps: a bounded random partial view plus the peers it works with.

Theory of operation
-------------------
A volunteer starts knowing one or a few bootstrap addresses. It learns the rest of the network
from the signed capability records of the soft state (each carries its writer's listen
addresses; ``learn``), and it does **not** connect to everyone. It keeps:

* the *view*: ``degree`` peers chosen uniformly at random among those it knows. The connection
  book (``daemon.p2p.peers``) keeps each view peer connected, redialling with backoff; a view
  peer that failed ``give_up_after`` dials in a row is replaced by another. At first the view
  holds the bootstrap peers (the only ones known); as soon as other peers are known, each seed
  in the view is swapped for one of them, and seeds are taken into a view only when nothing
  else fills it (a small network). A seed is where nodes learn the network, not a peer every
  node keeps: as Bitcoin Core treats its ``-seednode`` peers. When seeds stayed until a
  shuffle happened to pick them, a seed of a 10,000-node simulated network held ~550
  connections for minutes. Every ``shuffle_every`` seconds one view member is swapped for a
  random known peer, so the overlay is a random graph of degree ~2 x ``degree`` (our dials
  plus those of peers that chose us), over which the soft state spreads epidemically in
  O(log N) rounds. This is the active view of HyParView or the mesh of GossipSub; we need no
  shuffle messages of our own because the capability records already give every node a
  sample of the whole network.
* *work* connections: everything else. They are dialled on demand by the streams layer when a
  service sends to a peer whose address is known (its committee, its tasks' workers or
  submitter, a blob holder), or opened by a peer that has business with us. Peers a service
  says it works with now (``keep``) are never trimmed. A work connection *we* dialled that
  carried nothing for ``idle_close`` seconds is closed; inbound ones are left to their dialler
  (it may hold us in its view), unless we are over the cap.
* a cap: past ``max_connections`` connections outside the kept set, the least recently used
  that are not in the view are closed, inbound ones included. So a node's connections stay at
  most ``max_connections`` plus its committees' members, however large the network is. (The
  kept peers are not counted: a committee member must reach its committee, and counting them
  would make a member of a large committee hang up on every peer that chose it, which would
  redial at once.)
* kept peers are also kept *connected*, as view peers are (``Want``: the book dials them and
  redials with backoff): a committee's members exchange broadcasts and vote at any moment, and
  the health of a committee counts its members connected. Dialled only on demand, the members
  of an idle committee (a tick every ten minutes) were never connected, its health read
  "stalled: only 9 of 19 members reachable" for want of trying, and a committee's first
  commit after a quiet spell waited for a dozen dials over 300 ms links.
* a budget: ``budget`` connections in all, the kept and view peers counted whether connected
  yet or not (they will be: counting only those connected would let the dials that follow a
  tick pass it). Since committees above ``consensus.mesh.MESH_ABOVE`` members talk over a mesh and a
  node holds at most three seats (``consensus.committee.seat_cap``), the kept set of a large
  network is at most 36 peers, so the budget leaves room for the view and the peers that
  chose us. It binds mostly at an epoch change: the last epoch's committee peers become work
  connections just as the new committees dial in (at 10,000 simulated nodes a node on three
  committees held ~30 such links next to its 36 new ones, 85 in all). Past the budget all the
  peers that just left the kept set go (a retiring replica that still needs one redials it),
  then, if that is not enough, the least recently used that are neither kept nor in the view;
  those two are never closed, so a node whose committees and view alone
  exceed the budget (a small network with many shards) goes over it rather than lose them.
  The budget is kept as each connection arrives (``connected`` returns the closes), not only
  at the next tick: a peer choosing us between two ticks took a node of 10,000 simulated
  ones to 65.
* *peer exchange* (GossipSub v1.1's PX): an inbound connection closed for the cap or the
  budget is told first (``Close.exchange``) of a few random peers we know, as their signed
  records (``daemon.softstate.exchange``), and that we are full. The peer learns them and
  does not pick us again for ``full_for`` seconds (``full``); a view peer that said so is
  replaced at once. A full seed thus still bootstraps every newcomer: it hands out addresses
  instead of its soft state, and the newcomer takes both from the peers it learns. A node
  that refused newcomers over its budget without it would leave one that knows only its
  seed with nowhere to go.

Known peers are capped at ``max_known`` (a uniform random sample is kept when more arrive), so
memory does not grow with the network either. Bootstrap peers are never evicted from it: a node
that lost every connection can always start again from its seeds.

Everything here is pure: time and randomness come in as arguments, decisions go out as
``Want`` / ``Unwant`` / ``Close`` intents that ``daemon.p2p.host`` carries out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from protocol.identity import NodeId


@dataclass(frozen=True)
class OverlayPolicy:
    degree: int = 8
    """View peers we dial and keep (GossipSub's D; HyParView's active view is log(N) + c)."""
    max_connections: int = 48
    """Connections outside the kept set (view, inbound, work); past it the least recently
    used that are not in the view go."""
    budget: int = 64
    """Connections in all, kept and view peers included (connected or not); past it the spare
    ones go, those that just left the kept set first."""
    idle_close: float = 60.0
    """An outbound work connection silent this long is closed."""
    shuffle_every: float = 30.0
    """Swap one view member for a random known peer this often."""
    give_up_after: int = 3
    """Failed dials in a row before a view peer is replaced (when another is known)."""
    replace_every: float = 2.0
    """Seconds between replacements of unreachable view peers. When the network is loaded
    every dial fails, and replacing each failing peer at once by one that failed too (or
    soon will) multiplied dials (1,656 replacements in 5 minutes on one node of 30): the
    book's redial backoff, not the view, should absorb a bad spell."""
    max_known: int = 4096
    """Known peers (node id + addresses) kept; a uniform sample beyond."""
    max_addrs: int = 4
    """Addresses kept per known peer."""
    exchange_peers: int = 16
    """Peers we tell of when we hang up on one that dialled us for being full."""
    full_for: float = 300.0
    """A peer that closed our connection because it was full is not picked for the view again
    for this long."""

    def __post_init__(self) -> None:
        if not 1 <= self.degree <= min(self.max_connections, self.budget):
            raise ValueError("need 1 <= degree <= max_connections and budget")
        if min(self.idle_close, self.shuffle_every, self.replace_every, self.full_for) <= 0:
            raise ValueError("idle_close, shuffle_every, replace_every, full_for must be > 0")
        if self.give_up_after < 1 or self.max_known < self.degree or self.max_addrs < 1:
            raise ValueError("need give_up_after >= 1, max_known >= degree, max_addrs >= 1")


@dataclass(frozen=True)
class Want:
    """Put ``node`` in the view: keep it connected (dial now, redial with backoff)."""

    node: NodeId
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class Unwant:
    """``node`` left the view: stop redialling it (its connection may stay, as a work one)."""

    node: NodeId


@dataclass(frozen=True)
class Close:
    """Hang up on ``node``; first, if ``exchange``, tell it of a few other peers (it dialled us
    and we are full: peer exchange)."""

    node: NodeId
    reason: str
    exchange: bool = False


Action = Want | Unwant | Close

CLOSING_S = 30.0
"""A peer we said to close and that is still connected this long after is counted (and
may be closed) again: the hang-up failed."""


@dataclass
class _Conn:
    outbound: bool
    since: float
    last_used: float


@dataclass
class OverlayStats:
    wanted: int = 0
    replaced: int = 0
    shuffled: int = 0
    closed_idle: int = 0
    closed_over_cap: int = 0
    full_peers: int = 0
    """Peers that told us they were full (peer exchange)."""
    last: str = ""
    """What the overlay last did, for ``status``."""


@dataclass
class Overlay:
    """The partial view, the known peers and the open connections of one node."""

    self_id: NodeId
    policy: OverlayPolicy
    rng: random.Random
    seeds: dict[NodeId, tuple[str, ...]] = field(default_factory=dict)
    stats: OverlayStats = field(default_factory=OverlayStats)

    def __post_init__(self) -> None:
        self._known: dict[NodeId, tuple[str, ...]] = {}
        self._known_list: list[NodeId] = []  # the same ids, for O(1) uniform choice
        self._view: set[NodeId] = set()
        self._conns: dict[NodeId, _Conn] = {}
        self._kept: set[NodeId] = set()
        self._kept_wanted: set[NodeId] = set()
        """Kept peers outside the view that we asked the book to keep connected."""
        self._released: set[NodeId] = set()
        """Peers that left the kept set at the last ``keep`` (first to go past the budget)."""
        self._closing: dict[NodeId, float] = {}
        """Peers we said to close, since when: not counted or closed again meanwhile (a
        close with a peer exchange takes a round trip or two)."""
        self._full: dict[NodeId, float] = {}
        """Peers that said they were full, until when they are not picked (``full``)."""
        self._next_shuffle: float | None = None
        self._next_replace = 0.0
        for node, addrs in list(self.seeds.items()):
            self.learn(node, addrs, now=0.0)

    # -- what we learn -------------------------------------------------------------------------

    def learn(self, node: NodeId, addrs: Iterable[str], now: float) -> bool:
        """A peer's addresses (from a signed record, a seed, a connection). True if stored."""
        if node == self.self_id:
            return False
        good = tuple(dict.fromkeys(a for a in addrs if _dialable(a)))[: self.policy.max_addrs]
        if not good:
            return False
        if node in self._known:
            self._known[node] = good
            return True
        if len(self._known_list) >= self.policy.max_known:
            # Keep a uniform sample: replace a random non-seed, non-view entry, or drop the news.
            i = self.rng.randrange(len(self._known_list))
            victim = self._known_list[i]
            if victim in self.seeds or victim in self._view or victim in self._conns:
                return False
            del self._known[victim]
            self._known_list[i] = node
        else:
            self._known_list.append(node)
        self._known[node] = good
        return True

    def addrs(self, node: NodeId) -> tuple[str, ...]:
        return self._known.get(node, ())

    def keep(self, nodes: Iterable[str]) -> None:
        """The peers the services work with now (replaces the previous set)."""
        kept = {NodeId(n) for n in nodes} - {self.self_id}
        self._released = (self._kept - kept) & self._conns.keys()
        self._kept = kept

    def connected(self, node: NodeId, now: float, *, outbound: bool) -> list[Close]:
        """A connection to ``node`` is up. Returns the closes that keep the budget, if this
        one passed it (the host carries them out at once, not at the next tick)."""
        conn = self._conns.get(node)
        if conn is not None:
            conn.outbound = conn.outbound or outbound
            if self._closing.pop(node, None) is None:
                return []
            # A new connection while we hung up on the old one (it dialled again, or both
            # ends had dialled): counted again, and closed again if still over.
            return self._trim(now, set())
        self._conns[node] = _Conn(outbound, now, now)
        return self._trim(now, set())

    def full(self, node: NodeId, now: float) -> None:
        """``node`` closed our connection because it was full (it said so with a peer
        exchange): not picked for the view for ``full_for``; out of it at the next tick."""
        if len(self._full) >= self.policy.max_known:
            return  # bounded; a peer we cannot note is just picked again and refuses again
        self._full[node] = now + self.policy.full_for
        self.stats.full_peers += 1

    def disconnected(self, node: NodeId) -> None:
        self._conns.pop(node, None)
        self._released.discard(node)
        self._closing.pop(node, None)

    def dialled(self, node: NodeId) -> bool:
        """We dialled ``node`` (it is connected, and not only inbound)."""
        conn = self._conns.get(node)
        return conn is not None and conn.outbound

    def used(self, node: NodeId, now: float) -> None:
        """A frame went to or came from ``node``: its connection is not idle."""
        conn = self._conns.get(node)
        if conn is not None:
            conn.last_used = now

    # -- deciding ------------------------------------------------------------------------------

    def tick(self, now: float, failures: Callable[[NodeId], int],
             banned: Callable[[NodeId], bool]) -> list[Action]:
        """What to change now. ``failures(node)``: failed dials in a row (the book's count)."""
        out: list[Action] = []
        self._full = {n: t for n, t in self._full.items() if t > now}
        self._closing = {n: t for n, t in self._closing.items() if now - t < CLOSING_S}
        # 1. Replace view peers that are banned at once, and those that said they are full
        #    or are seeds once another peer can take their place; one that keeps failing
        #    only for a known peer that has not (else the book keeps redialling it, with
        #    backoff), and at most one such every ``replace_every``.
        fresh: bool | None = None  # whether such a peer exists: looked up once per tick
        for node in sorted(self._view):
            why = "unreachable"
            if banned(node):
                dead = self._candidates_exist()
            elif node in self._full:
                why = "full"
                dead = self._pick(failures, banned, prefer_connected=False) is not None
            elif node in self.seeds:
                # A seed stays while the view has room (a small network) or nobody else can
                # take its place; else it goes at once, not when a shuffle happens to pick it.
                why = "seed"
                dead = self._others_fill(self.policy.degree - len(self._view) + 1,
                                         failures, banned)
            else:
                dead = (node not in self._conns and failures(node) >= self.policy.give_up_after
                        and now >= self._next_replace)
                if dead and fresh is None:
                    fresh = self._fresh_exists(failures, banned)
                dead = dead and bool(fresh)
                if dead:
                    self._next_replace = now + self.policy.replace_every
            if dead:
                self._view.discard(node)
                out.append(Unwant(node))
                self.stats.replaced += 1
                self.stats.last = f"replaced {why} view peer {node[:12]}"
        # 2. Fill the view, preferring peers we are already connected to (no dial needed).
        self._fill(out, failures, banned)
        # 3. Shuffle: swap one view member for a random known peer, so the graph keeps mixing.
        if self._next_shuffle is None:
            self._next_shuffle = now + self.policy.shuffle_every * (0.5 + self.rng.random())
        elif now >= self._next_shuffle:
            self._next_shuffle = now + self.policy.shuffle_every * (0.5 + self.rng.random())
            self._shuffle(out, failures, banned)
        # 4. Keep the kept peers connected too (a view peer is already).
        self._want_kept(out)
        # 5. Trim idle work connections we dialled, then anything over the cap.
        for node, conn in sorted(self._conns.items()):
            if (node not in self._view and node not in self._kept and conn.outbound
                    and node not in self._closing
                    and now - conn.last_used >= self.policy.idle_close):
                out.append(Close(node, "idle"))
                self._closing[node] = now
                self.stats.closed_idle += 1
        out.extend(self._trim(now, {a.node for a in out if isinstance(a, Close)}))
        return out

    def _trim(self, now: float, closing: set[NodeId]) -> list[Close]:
        """Closes that bring the connections back within the cap and the budget (``closing``:
        already being closed). Spare connections go: those that just left the kept set
        first, then the least recently used; kept and view peers never do."""
        closing = closing | self._closing.keys()
        counted = [n for n in self._conns if n not in self._kept and n not in closing]
        reserved = self._kept | self._view  # connected or about to be: they will be
        over = max(len(counted) - self.policy.max_connections,
                   len(reserved) + sum(1 for n in counted if n not in reserved)
                   - self.policy.budget)
        if over <= 0:
            return []
        spare = sorted(
            (n not in self._released, c.last_used, n) for n, c in self._conns.items()
            if n not in self._view and n not in self._kept and n not in closing
        )
        # Every peer that left the kept set goes, not just enough of them to meet the
        # budget: else the node sits at the budget and the next peer to choose it passes it.
        go = max(over, sum(1 for released, _, _ in spare if not released))
        out = []
        for _, _, node in spare[:go]:
            out.append(Close(node, "over the connection cap",
                             exchange=not self._conns[node].outbound))
            self._closing[node] = now
            self.stats.closed_over_cap += 1
        return out

    def _want_kept(self, out: list[Action]) -> None:
        left = {a.node for a in out if isinstance(a, Unwant)}
        for node in sorted(self._kept_wanted):
            if node not in self._kept or node in self._view:
                self._kept_wanted.discard(node)  # no longer kept, or the view holds it now
                if node not in self._view:
                    out.append(Unwant(node))
        for node in sorted(self._kept):
            addrs = self._known.get(node)
            if addrs and node not in self._view and (node not in self._kept_wanted or
                                                     node in left):
                self._kept_wanted.add(node)
                out.append(Want(node, addrs))

    def _candidates_exist(self) -> bool:
        return len(self._known) > len(self._view)

    def _fresh_exists(self, failures: Callable[[NodeId], int],
                      banned: Callable[[NodeId], bool]) -> bool:
        """A known peer outside the view that is not banned and has not failed
        ``give_up_after`` dials in a row (a scan: at most ``max_known``, and only for a view
        peer due for replacement)."""
        return any(n not in self._view and not banned(n)
                   and failures(n) < self.policy.give_up_after for n in self._known_list)

    def _open_to(self, node: NodeId, banned: Callable[[NodeId], bool]) -> bool:
        """``node`` could join the view: not in it, not banned, not full (seeds aside)."""
        return node not in self._view and not banned(node) and node not in self._full

    def _pick(self, failures: Callable[[NodeId], int], banned: Callable[[NodeId], bool],
              prefer_connected: bool, seeds: bool = True) -> NodeId | None:
        """A peer for the view: one not in it, not banned, not full, and a seed only if no
        other will do (``seeds=False``: never a seed, nor a peer that keeps failing)."""
        def eligible(n: NodeId) -> bool:
            return self._open_to(n, banned) and n not in self.seeds

        def fresh(n: NodeId) -> bool:
            return failures(n) < self.policy.give_up_after

        if prefer_connected:
            ready = sorted(n for n in self._conns if n in self._known and eligible(n))
            if ready:
                return self.rng.choice(ready)
        if self._known_list:
            # Uniform among known peers outside the view; a few tries, then a scan.
            for _ in range(8):
                node = self._known_list[self.rng.randrange(len(self._known_list))]
                if eligible(node) and fresh(node):
                    return node
        rest = [n for n in self._known_list if eligible(n)]
        if not rest and seeds:
            # Nothing else fills the view: a seed rather than nothing (never a full peer: it
            # would refuse us again).
            rest = [n for n in self._known_list if n in self.seeds and self._open_to(n, banned)]
        usable = [n for n in rest if fresh(n)]
        if usable or (rest and seeds):
            return self.rng.choice(usable or rest)
        return None

    def _others_fill(self, need: int, failures: Callable[[NodeId], int],
                     banned: Callable[[NodeId], bool]) -> bool:
        """At least ``need`` peers outside the view could join it that are not seeds, full,
        banned or failing (a scan of at most ``max_known``, only while a seed is in the
        view)."""
        found = 0
        for n in self._known_list:
            if (self._open_to(n, banned) and n not in self.seeds
                    and failures(n) < self.policy.give_up_after):
                found += 1
                if found >= need:
                    return True
        return False

    def exchange_sample(self, toward: NodeId, k: int | None = None) -> list[NodeId]:
        """Up to ``k`` (``exchange_peers``) known peers to tell ``toward`` of when we hang up
        on it for being full (peer exchange): uniform among those we know, not ``toward``, not seeds (it has
        one), not full. Uniform, not our view: every refused newcomer of a seed would
        otherwise crowd the seed's eight view peers."""
        pool = [n for n in self._known_list
                if n != toward and n not in self.seeds and n not in self._full]
        k = self.policy.exchange_peers if k is None else k
        return self.rng.sample(pool, min(k, len(pool)))

    def _fill(self, out: list[Action], failures: Callable[[NodeId], int],
              banned: Callable[[NodeId], bool]) -> None:
        while len(self._view) < self.policy.degree:
            node = self._pick(failures, banned, prefer_connected=True)
            if node is None:
                return
            self._view.add(node)
            out.append(Want(node, self._known[node]))
            self.stats.wanted += 1
            self.stats.last = f"added {node[:12]} to the view"

    def _shuffle(self, out: list[Action], failures: Callable[[NodeId], int],
                 banned: Callable[[NodeId], bool]) -> None:
        if len(self._view) < self.policy.degree:
            return
        new = self._pick(failures, banned, prefer_connected=False)
        if new is None:
            return
        old = self.rng.choice(sorted(self._view))
        self._view.discard(old)
        out.append(Unwant(old))
        self._view.add(new)
        out.append(Want(new, self._known[new]))
        self.stats.shuffled += 1
        self.stats.last = f"shuffled {old[:12]} out of the view for {new[:12]}"

    # -- views ---------------------------------------------------------------------------------

    def view(self) -> set[NodeId]:
        return set(self._view)

    def kept(self) -> set[NodeId]:
        return set(self._kept)

    def is_kept(self, node: NodeId) -> bool:
        return node in self._kept

    def known_count(self) -> int:
        return len(self._known)

    def summary(self) -> dict[str, object]:
        view_up = sum(1 for n in self._view if n in self._conns)
        inbound = sum(1 for c in self._conns.values() if not c.outbound)
        return {
            "view": len(self._view), "view_connected": view_up, "degree": self.policy.degree,
            "known": len(self._known), "connections": len(self._conns), "inbound": inbound,
            "work": sum(1 for n in self._conns if n not in self._view),
            "kept": len(self._kept), "max_connections": self.policy.max_connections,
            "budget": self.policy.budget,
            "shuffles": self.stats.shuffled, "replaced": self.stats.replaced,
            "closed_idle": self.stats.closed_idle, "closed_over_cap": self.stats.closed_over_cap,
            "full_peers": self.stats.full_peers, "last": self.stats.last,
        }


def _dialable(addr: str) -> bool:
    """Skip addresses nobody can dial: unspecified (0.0.0.0, ::) and malformed ones."""
    return addr.startswith("/") and "/ip4/0.0.0.0/" not in addr and "/ip6/::/" not in addr
