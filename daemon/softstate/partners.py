"""Which connected peers the soft state runs anti-entropy with: the overlay, not every connection.

Theory of operation
-------------------
A node is connected to its partial view (``daemon.p2p.overlay``), to the peers that hold it
in theirs, and to everyone it has business with: its committees' members (a hundred and more
in a large network), its tasks' workers, blob holders. The soft state spreads epidemically
over the *overlay* (view links, a random graph of degree ~2 x ``degree``): that reaches
every node in O(log N) rounds, and each record rewrite crosses each of a node's ~16 overlay
links once. Running anti-entropy over every connection instead would make a member of many
committees relay every record and exchange summaries with each of them: ten times the idle
traffic, for no faster spread.

A link is a soft-state link when either end holds the other in its view. Each end knows only
its own view, so the two roles differ:

* *active*: the peer is in our view. We start anti-entropy when it connects and send it a
  bucket summary every ``digest_every_ms`` (``crdt.antientropy``).
* *passive*: the peer sent us a summary (it holds us in its view). We relay deltas to it and
  answer its summaries, and send ours only every ``passive_digest_every_ms`` (5 min, for
  its stable point): its summaries already compare the two replicas, and our delta stream
  to it is acknowledged. It stays a partner while its summaries keep coming (``HEARD_S``),
  so when it drops us from its view, and we do not hold it in ours, the link goes back to
  carrying only its business.

A peer in both views is active on both ends. A passive end's summaries come less often than
``HEARD_S``, so two ends cannot keep each other as partners once neither holds the other in
its view: each summary makes the other end a partner for ``HEARD_S`` only.

A node none of whose view peers is connected (they went down and are not replaced yet, a
node just back) makes every connection active until one is: it is not cut off from the soft
state meanwhile, even if a peer holding it in its view could reach it (that peer may be cut
off itself). A node with an empty view that others hold in theirs needs nothing more. A host that has no overlay (an in-process test network) makes
every connection active.

Pure: the shell hands in the connected peers, the view and the time.
"""

from __future__ import annotations

from collections.abc import Iterable

from crdt.antientropy import AntiEntropyConfig

HEARD_S = 2.5 * AntiEntropyConfig().digest_every_ms / 1000
"""A passive partner is kept this long after its last summary (two periodic ones may be
lost or late before it goes). Below ``passive_digest_every_ms``, or two passive ends would
keep each other alive."""
MAX_PASSIVE = 4096
"""Passive partners at most: past it a new one is not taken. Only connected peers are held
(``update`` drops the others), so the connection cap bounds them first. Set high on purpose:
a seed is held in the view of every node that just joined through it, and a new node whose
view holds only the seed gets the soft state (and so learns other peers) only if the seed
takes it as a partner."""


class Partners:
    """The soft-state links of one node, and what changes when the view or the peers do."""

    def __init__(self) -> None:
        self.roles: dict[str, bool] = {}
        """Partner -> active (we send it periodic summaries)."""
        self._heard: dict[str, float] = {}
        """Passive candidates: when their last summary came."""

    def heard_summary(self, peer: str, now: float) -> bool:
        """``peer`` sent us a summary: it holds us in its view. True if that makes it a new
        partner (the shell then starts anti-entropy with it)."""
        if peer not in self._heard and len(self._heard) >= MAX_PASSIVE:
            return False  # its summaries are still answered; it just gets no deltas
        self._heard[peer] = now
        if peer in self.roles:
            return False
        self.roles[peer] = False
        return True

    def gone(self, peer: str) -> None:
        """``peer`` disconnected."""
        self.roles.pop(peer, None)
        self._heard.pop(peer, None)

    def update(self, connected: Iterable[str], view: Iterable[str] | None, now: float
               ) -> tuple[dict[str, bool], set[str]]:
        """Bring the roles up to date: ``(started or changed: peer -> active, stopped)``.
        ``view``: our partial view (None: no overlay, every connection is active)."""
        up = set(connected)
        self._heard = {p: t for p, t in self._heard.items() if p in up and now - t <= HEARD_S}
        mine = up if view is None else up & set(view)
        if view is not None and not mine and (view or not self._heard):
            mine = up  # no view peer up (down, not redialled yet): not cut off meanwhile
        wanted = {p: p in mine for p in mine | self._heard.keys()}
        changed = {p: a for p, a in wanted.items() if self.roles.get(p) != a}
        stopped = set(self.roles) - wanted.keys()
        self.roles = wanted
        return changed, stopped
