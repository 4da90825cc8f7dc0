"""The partial view at scale: the real ``daemon.p2p.overlay`` planner on thousands of nodes.

Seeded and in virtual time. Every node runs the daemon's own ``Overlay`` (same policy as a
volunteer's daemon); this module plays the network under them:

- *Dials.* A wanted peer that is up is connected at the next step (both ends see the
  connection; the dialler's is outbound); one that is down counts a failed dial, which the
  overlay uses to replace it. ``Close`` hangs up both ends.
- *Knowledge.* A node boots knowing only its seed. Once connected, it has the signed records
  the soft state carries, i.e. every node's address: it learns them (the overlay keeps a
  bounded uniform sample, ``known_cap``).
- *Churn.* Who is up follows availability traces from ``testnet.traces.generate`` (the
  Failure Trace Archive fits), time-compressed by ``trace_speedup`` so minutes of simulation
  see hours of volunteer comings and goings. A node that goes down loses its connections and
  keeps its state (a restarted daemon has its database).
- *Committees.* Every ``epoch_s`` the members are the nodes up, and committees are drawn with
  the real sortition and sizing (``consensus.committee``) for ``shards`` shards plus the
  directory; a node keeps (``Overlay.keep``) and connects to the members it exchanges
  broadcasts with, as the daemon does (``daemon.committees.relay``): all of a small
  committee's, its neighbours on a large committee's mesh (``consensus.mesh``).
- *Dissemination.* A change starting at a random up node spreads as delta anti-entropy does:
  each round every node that has it sends it over all its soft-state links (the daemon's
  ``daemon.softstate.partners``: connections where either end holds the other in its view,
  not committee or work connections; ``soft_links``). ``rounds_to_all`` is
  the number of rounds until every up node reachable has it (the graph's eccentricity from
  the origin), and ``reached`` the fraction of up nodes that got it at all.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from consensus.committee import assign_committees, committee_size
from consensus.mesh import mesh_for
from daemon.p2p.overlay import Close, Overlay, OverlayPolicy, Want
from daemon.softstate.partners import Partners
from protocol.identity import NodeId
from testnet.traces.generate import EPOCH_MONDAY, generate_traces


@dataclass(frozen=True)
class SimConfig:
    nodes: int
    seed: int = 1
    seeds: int = 2
    duration_s: float = 900.0
    step_s: float = 5.0
    trace_speedup: float = 60.0
    epoch_s: float = 300.0
    shards: int = 0
    """Shard committees (0: one per 500 nodes, at least 1)."""
    known_cap: int = 512
    """Known peers kept per node (the daemon's default is 4096; a smaller sample is still
    uniform and keeps 10,000 simulated nodes inside a laptop's memory)."""
    policy: OverlayPolicy = field(default_factory=OverlayPolicy)


@dataclass
class SimResult:
    nodes: int
    up_mean: float
    max_connections: int
    """Most connections any node had at any step, committee connections included."""
    p99_connections: int
    mean_connections: float
    max_overlay_connections: int
    """Most connections to peers outside the node's committees (view, inbound, work)."""
    p99_overlay_connections: int
    max_view_peers_connected: int
    dissemination_rounds: list[int]
    reached_fraction_min: float
    committee_size: int
    shards: int
    max_committee_links: int
    """Most committee peers (all-to-all, or mesh neighbours) any node had to keep."""
    max_seats: int
    """Most committees any node sat on in one epoch (``consensus.committee.seat_cap``)."""
    max_non_seed_connections: int
    """Most connections any node but a seed had at any step (a seed's are its inbound)."""
    non_seed_over_64: int
    """Nodes, seeds aside, that had more than 64 connections (the per-node budget) at a step."""
    seeds_max_connections: int
    churn_events: int
    exchanges: int = 0
    """Peer exchanges: a full node told a peer that dialled it of others before hanging up."""


class OverlaySim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        n = cfg.nodes
        self.ids = [NodeId(f"n{i:05d}") for i in range(n)]
        self.index = {node: i for i, node in enumerate(self.ids)}
        self.addr = [f"/ip4/127.0.0.1/tcp/{10000 + i % 50000}" for i in range(n)]
        policy = OverlayPolicy(
            degree=cfg.policy.degree, max_connections=cfg.policy.max_connections,
            idle_close=cfg.policy.idle_close, shuffle_every=cfg.policy.shuffle_every,
            give_up_after=cfg.policy.give_up_after, max_known=min(cfg.known_cap, n),
            max_addrs=1,
        ) if n > cfg.policy.degree else cfg.policy
        self.overlays: list[Overlay] = []
        for i in range(n):
            seed_index = i % cfg.seeds if i >= cfg.seeds else (i + 1) % cfg.seeds
            seeds = {} if seed_index == i else {self.ids[seed_index]: (self.addr[seed_index],)}
            self.overlays.append(Overlay(self.ids[i], policy, random.Random(cfg.seed * 1_000_003 + i),
                                         seeds=seeds))
        self.conns: list[set[int]] = [set() for _ in range(n)]
        self.failures: list[dict[NodeId, int]] = [{} for _ in range(n)]
        self.wanted: list[set[int]] = [set() for _ in range(n)]
        self.learned = [False] * n
        self.traces = generate_traces(n, seed=cfg.seed, duration_s=cfg.duration_s *
                                      cfg.trace_speedup + 3600)
        self.up = [False] * n
        self.churn_events = 0
        self.exchanges = 0
        self.committee_members: list[set[int]] = [set() for _ in range(n)]
        self.committee_n = 0
        self.epoch_no = -1
        self.max_committee_links = 0
        self.max_seats = 0
        self.shards = cfg.shards or max(1, n // 500)

    # -- the network under the overlays ----------------------------------------------------------

    def _is_up(self, i: int, t: float) -> bool:
        if i < self.cfg.seeds:
            return True  # seeds are the operators' always-on nodes
        trace = self.traces[i]
        return bool(len(trace.up)) and bool(trace.is_up(EPOCH_MONDAY + t * self.cfg.trace_speedup))

    def _connect(self, a: int, b: int, now: float) -> None:
        if b in self.conns[a]:
            return
        self.conns[a].add(b)
        self.conns[b].add(a)
        self.failures[a].pop(self.ids[b], None)
        for close in self.overlays[a].connected(self.ids[b], now, outbound=True):
            self._close(a, close, now)
        if b in self.conns[a]:  # still connected: a kept the budget without closing on b
            for close in self.overlays[b].connected(self.ids[a], now, outbound=False):
                self._close(b, close, now)

    def _close(self, i: int, close: Close, now: float) -> None:
        """Node ``i`` hangs up on ``close.node``, telling it of other peers first if it dialled
        ``i`` (peer exchange: the daemon sends their signed records, ``daemon.softstate
        .exchange``); the peer learns them and takes ``i`` for full."""
        j = self.index[close.node]
        if close.exchange and self.overlays[j].dialled(self.ids[i]):
            other = self.overlays[j]
            for node in self.overlays[i].exchange_sample(close.node):
                other.learn(node, (self.addr[self.index[node]],), now)
            other.full(self.ids[i], now)
            self.exchanges += 1
        self._disconnect(i, j)

    def _disconnect(self, a: int, b: int) -> None:
        if b not in self.conns[a]:
            return
        self.conns[a].discard(b)
        self.conns[b].discard(a)
        self.overlays[a].disconnected(self.ids[b])
        self.overlays[b].disconnected(self.ids[a])

    def _set_up(self, now: float) -> None:
        for i in range(self.cfg.nodes):
            up = self._is_up(i, now)
            if up == self.up[i]:
                continue
            self.churn_events += 1
            self.up[i] = up
            if not up:
                for j in list(self.conns[i]):
                    self._disconnect(i, j)

    def _learn(self, i: int, now: float) -> None:
        """Connected: the soft state has brought every node's record (address)."""
        ov = self.overlays[i]
        n = self.cfg.nodes
        for j in self.rng.sample(range(n), min(n, self.cfg.known_cap + 1)):
            if j != i:
                ov.learn(self.ids[j], (self.addr[j],), now)
        self.learned[i] = True

    def _epoch(self) -> None:
        members = [i for i in range(self.cfg.nodes) if self.up[i]]
        keys = [self.ids[i].encode() for i in members]
        size = committee_size(len(members), 0.20, 1e-6) if len(members) >= 4 else len(members)
        self.committee_n = size
        committees = assign_committees(self.rng.randbytes(32), keys, self.shards, size)
        self.epoch_no += 1
        self.committee_members = [set() for _ in range(self.cfg.nodes)]
        seats: dict[bytes, int] = {}
        for committee in committees.values():
            for k in committee:
                seats[k] = seats.get(k, 0) + 1
        self.max_seats = max(self.max_seats, max(seats.values(), default=0))
        for shard, committee in committees.items():
            idx = [self.index[NodeId(k.decode())] for k in committee]
            mesh = mesh_for(committee, self.epoch_no, shard)
            for pos, i in enumerate(idx):
                near = idx if mesh is None else [idx[j] for j in mesh.links[pos]]
                self.committee_members[i].update(j for j in near if j != i)
        self.max_committee_links = max(self.max_committee_links,
                                       max(len(m) for m in self.committee_members))
        for i in range(self.cfg.nodes):
            self.overlays[i].keep(self.ids[j] for j in self.committee_members[i])

    def step(self, now: float) -> None:
        self._set_up(now)
        for i in range(self.cfg.nodes):
            if not self.up[i]:
                continue
            ov = self.overlays[i]
            if self.conns[i] and not self.learned[i]:
                self._learn(i, now)
            fails = self.failures[i]
            for action in ov.tick(now, lambda p: fails.get(p, 0), lambda p: False):
                j = self.index[action.node]
                if isinstance(action, Want):
                    self.wanted[i].add(j)
                elif isinstance(action, Close):
                    self._close(i, action, now)
                else:
                    self.wanted[i].discard(j)
            # The book dials wanted peers that are not connected; committees dial on demand.
            for j in list(self.wanted[i]) + sorted(self.committee_members[i]):
                if j in self.conns[i]:
                    continue
                if self.up[j]:
                    self._connect(i, j, now)
                elif j in self.wanted[i]:
                    fails[self.ids[j]] = fails.get(self.ids[j], 0) + 1
            for j in self.committee_members[i] & self.conns[i]:
                ov.used(self.ids[j], now)  # committee traffic keeps them busy

    def views(self) -> list[set[NodeId]]:
        return [ov.view() for ov in self.overlays]

    def soft_links(self, i: int, views: list[set[NodeId]]) -> dict[int, bool]:
        """Node ``i``'s soft-state links and its role on each (True: active, it holds the peer
        in its view), decided by the daemon's own ``Partners`` from its connections, its view
        and the peers whose views hold it (they send it summaries)."""
        partners = Partners()
        for j in sorted(self.conns[i]):
            if self.ids[i] in views[j]:
                partners.heard_summary(self.ids[j], 0.0)
        partners.update({self.ids[j] for j in self.conns[i]}, views[i], 0.0)
        return {self.index[NodeId(n)]: active for n, active in partners.roles.items()}

    def disseminate(self) -> tuple[int, float]:
        """Rounds for a change from a random up node to reach every up node it can reach."""
        up = [i for i in range(self.cfg.nodes) if self.up[i]]
        origin = self.rng.choice(up)
        views = self.views()
        dist = {origin: 0}
        queue = deque([origin])
        while queue:
            a = queue.popleft()
            for b in self.soft_links(a, views):
                if b not in dist:
                    dist[b] = dist[a] + 1
                    queue.append(b)
        return max(dist.values()), len(dist) / len(up)

    def run(self) -> SimResult:
        cfg = self.cfg
        steps = int(cfg.duration_s / cfg.step_s)
        peak = [0] * cfg.nodes
        peak_overlay = [0] * cfg.nodes
        ups, rounds, reached = [], [], []
        for k in range(steps + 1):
            now = k * cfg.step_s
            if k % max(1, int(cfg.epoch_s / cfg.step_s)) == 0:
                self._set_up(now)
                self._epoch()
            self.step(now)
            for i in range(cfg.nodes):
                peak[i] = max(peak[i], len(self.conns[i]))
                peak_overlay[i] = max(peak_overlay[i],
                                      len(self.conns[i] - self.committee_members[i]))
            ups.append(sum(self.up))
            if now >= 120.0 and k % max(1, int(60.0 / cfg.step_s)) == 0:
                r, f = self.disseminate()
                rounds.append(r)
                reached.append(f)
        final = sorted(len(c) for i, c in enumerate(self.conns) if self.up[i])
        overlay = sorted(peak_overlay)
        view_up = max(len(ov.view() & {self.ids[j] for j in self.conns[i]})
                      for i, ov in enumerate(self.overlays))
        return SimResult(
            nodes=cfg.nodes, up_mean=sum(ups) / len(ups), max_connections=max(peak),
            p99_connections=final[int(0.99 * (len(final) - 1))],
            mean_connections=sum(final) / len(final), max_view_peers_connected=view_up,
            max_overlay_connections=overlay[-1],
            p99_overlay_connections=overlay[int(0.99 * (len(overlay) - 1))],
            dissemination_rounds=rounds, reached_fraction_min=min(reached) if reached else 0.0,
            committee_size=self.committee_n, shards=self.shards,
            max_committee_links=self.max_committee_links, max_seats=self.max_seats,
            max_non_seed_connections=max(peak[cfg.seeds:], default=0),
            non_seed_over_64=sum(1 for p in peak[cfg.seeds:] if p > 64),
            seeds_max_connections=max(peak[: cfg.seeds]), churn_events=self.churn_events,
            exchanges=self.exchanges,
        )
