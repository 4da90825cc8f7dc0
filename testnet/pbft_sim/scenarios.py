"""Seeded PBFT scenarios: one seed decides everything - committee size, which replicas are
faulty and how, the network's faults, partitions, crashes, pauses - and replays exactly.

A run has two phases. Until ``heal_at`` the network drops, duplicates, delays and reorders,
may be partitioned, and correct replicas crash and restart (with their persisted state) or
pause; up to f replicas are faulty in one of the ``FAULT_KINDS``. On ``OLD_PRIMARY_SHARE`` of
the seeds the primary is crashed early and restarted into live traffic after the others moved
to a later view (``_old_primary_restart``). At ``heal_at`` the network
becomes reliable and every crashed or paused node comes back. Safety is checked after every
step (``checker``); liveness means every client's requests are done within ``LIVENESS_BOUND``
virtual seconds after the heal.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from consensus.committee import max_faulty
from testnet.pbft_sim.adapter import Cluster
from testnet.pbft_sim.byzantine import BEHAVIOURS
from testnet.sim import LinkFaults, Network, Simulation

FAULT_KINDS = (*BEHAVIOURS, "twins", "lost_state")
SIZES = (4, 7, 10)
LIVENESS_BOUND = 10.0
"""Virtual seconds after the heal within which every request must be done. Worst case: f
faulty primaries in a row, each costing a view change with a doubling timeout (0.3 s base,
capped at 2.4 s), plus catch-up of replicas that were crashed or partitioned."""

OLD_PRIMARY_SHARE = 0.4
"""Share of the seeds (with network faults) whose primary is crashed early and restarted into
live traffic after the others moved on (``_old_primary_restart``)."""

SIM_CONFIG: dict[str, Any] = dict(checkpoint_interval=4, window=8, batch_size=8,
                                  max_inflight=2, view_change_timeout=0.3,
                                  max_view_change_timeout=2.4, status_interval=0.1)


@dataclass
class Outcome:
    seed: int
    n: int
    faulty: dict[str, str]
    """Replica name -> fault kind."""
    injected: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    done: bool = False
    heal_at: float = 0.0
    done_at: float | None = None
    steps: int = 0
    commits: int = 0
    max_view: int = 0
    wall: float = 0.0
    trace: list[str] = field(default_factory=list)

    @property
    def recovery(self) -> float | None:
        return None if self.done_at is None else max(0.0, self.done_at - self.heal_at)


def plan_faults(rng: random.Random, n: int, kinds: tuple[str, ...]) -> dict[int, str]:
    f = max_faulty(n)
    count = rng.choice([f, f, max(0, f - 1), rng.randint(0, f)])
    pool = list(range(n))
    rng.shuffle(pool)
    if count and rng.random() < 0.5 and 0 not in pool[:count]:
        pool.remove(0)
        pool.insert(0, 0)  # often the first primary is one of them
    return {i: rng.choice(kinds) for i in pool[:count]}


def _old_primary_restart(rng: random.Random, cluster: Cluster,
                         heal_at: float, requests: int) -> list[tuple[float, str, Any]]:
    """Crash the primary of the view the committee is in, early, and bring it back (with its
    disk) after the others have changed view and committed more, into live traffic: two to
    four new clients start just then and, believing in view 0, send their first requests to
    replica 0. The restarted node wakes up as the primary of a view the others left and
    returns on a bad link (``_degrade_inbound``), so the new view and the commit proofs that
    would bring it up to date arrive late, out of order or not at all. It must never propose
    its own batch at a sequence number that is already committed (the job simulation's seed
    898 found a primary that did; ``tests/testnet/pbft_sim`` keeps seeds that catch it)."""
    crash_at = rng.uniform(0.02, heal_at / 3)
    restart_at = rng.uniform(crash_at + heal_at / 3, heal_at - 0.05)
    for _ in range(rng.randint(2, 4)):  # separate requests: more than one batch to propose
        cluster.add_client(requests, start=restart_at + rng.uniform(0, 0.2))
    target: list[str] = []  # filled in at crash time: who is primary is known only then
    return [(crash_at, "crash_primary", target), (restart_at, "restart_primary", target)]


def _crash_current_primary(sim: Simulation, cluster: Cluster) -> list[str]:
    """Crash the primary of the highest view a correct replica is in, if it is correct and up
    (a Byzantine primary is already somebody else's fault); the name, or nothing."""
    views = [r.replica.view for r in cluster.correct() if r.replica is not None]
    if not views:
        return []
    name = f"{cluster.prefix}r{cluster.cfg.primary(max(views))}"
    node = cluster.replicas.get(name)
    if node is None or node.faulty or not sim.is_up(name):
        return []
    sim.crash(name)
    return [name]


def _degrade_inbound(sim: Simulation, rng: random.Random, names: list[str], name: str) -> None:
    """Replica-to-``name`` links lose 40-80% and delay up to 0.1 s until the heal (a node
    back on a flaky link: its peers' catch-up answers are what it misses)."""
    base = sim.network.faults
    bad = LinkFaults(drop=rng.uniform(0.4, 0.8), duplicate=base.duplicate,
                     min_delay=base.min_delay, max_delay=max(base.max_delay, 0.1))
    for other in names:
        if other != name:
            sim.network.links[(other, name)] = bad


def run_seed(seed: int, *, n: int | None = None, kinds: tuple[str, ...] = FAULT_KINDS,
             real_crypto: bool = False, clients: int = 3, requests: int = 6,
             heal_at: float = 1.5, trace: bool = False, net_faults: bool = True,
             config: dict[str, Any] | None = None) -> Outcome:
    t0 = time.perf_counter()
    rng = random.Random(f"pbft-plan-{seed}")
    n = n or rng.choice((4, 4, 4, 7, 7, 10))
    faults = plan_faults(rng, n, kinds)
    sim = Simulation(seed, Network())
    sim.keep_log = trace
    storm = rng.random() < 0.3  # view-change storms: timeouts close to message delays
    timeouts = dict(view_change_timeout=0.1, max_view_change_timeout=0.8) if storm else {}
    cluster = Cluster(sim, n, real_crypto=real_crypto,
                      config={**SIM_CONFIG, **timeouts, **(config or {})})
    out = Outcome(seed, n, {})
    for i in range(n):
        kind = faults.get(i)
        if kind in BEHAVIOURS:
            cluster.add_replica(i, BEHAVIOURS[kind])
            out.faulty[f"r{i}"] = kind
        elif kind == "twins":
            for suffix in "ab":
                cluster.add_replica(i, name=f"r{i}{suffix}").faulty = True
                out.faulty[f"r{i}{suffix}"] = kind
        else:
            node = cluster.add_replica(i)
            if kind == "lost_state":
                node.faulty = True
                out.faulty[node.name] = kind
    for _ in range(clients):
        cluster.add_client(requests, start=rng.uniform(0, heal_at))
    names = list(cluster.replicas)
    correct = [r.name for r in cluster.correct()]

    # -- the fault schedule (phase 1) -------------------------------------------------------------
    events: list[tuple[float, str, Any]] = []
    if net_faults:
        sim.network.faults = LinkFaults(drop=rng.uniform(0, 0.15), duplicate=rng.uniform(0, 0.15),
                                        min_delay=0.001, max_delay=rng.choice([0.01, 0.05, 0.1, 0.2]))
        out.injected["lossy_network"] += 1
        # Zero to three partitions in a row, each a random split (Twins-style reshuffles).
        bounds = sorted(rng.uniform(0, heal_at) for _ in range(2 * rng.choice([0, 0, 1, 2, 3])))
        for start, end in zip(bounds[::2], bounds[1::2]):
            nodes = names + list(cluster.clients)
            rng.shuffle(nodes)
            cut = rng.randint(1, len(nodes) - 1)
            events.append((start, "partition", (nodes[:cut], nodes[cut:])))
            events.append((end, "unpartition", None))
        for name in rng.sample(correct, k=min(len(correct), rng.choice([0, 0, 1, 2]))):
            t = rng.uniform(0, heal_at - 0.1)
            if rng.random() < 0.6:
                events += [(t, "crash", name), (rng.uniform(t, heal_at), "restart", name)]
            else:
                events += [(t, "pause", name), (rng.uniform(t, heal_at), "resume", name)]
    if net_faults and rng.random() < OLD_PRIMARY_SHARE:
        events += _old_primary_restart(rng, cluster, heal_at, requests)
    for name, kind in out.faulty.items():
        if kind == "lost_state":
            t = rng.uniform(0, heal_at - 0.1)
            events += [(t, "crash", name), (rng.uniform(t, heal_at), "wipe", name)]
    events.sort(key=lambda e: e[0])

    for t, what, arg in events:
        sim.run_until(t)
        if what not in ("crash_primary", "restart_primary"):
            out.injected[what] += 1
        if what == "partition":
            sim.network.partition(*arg)
        elif what == "unpartition":
            sim.network._partition = None
        elif what == "crash":
            sim.crash(arg)
        elif what == "restart" and not sim.is_up(arg):
            sim.restart(arg, keep_state=True)
        elif what == "wipe" and not sim.is_up(arg):
            sim.restart(arg, keep_state=False)
        elif what == "crash_primary":
            arg[:] = _crash_current_primary(sim, cluster)
            out.injected["primary_crashed"] += len(arg)
        elif what == "restart_primary" and arg and not sim.is_up(arg[0]):
            sim.restart(arg[0], keep_state=True)
            out.injected["old_primary_restarted"] += 1
            _degrade_inbound(sim, rng, names, arg[0])
        elif what == "pause":
            sim.pause(arg)
        elif what == "resume":
            sim.resume(arg)
    sim.run_until(heal_at)

    # -- heal (phase 2) ---------------------------------------------------------------------------
    sim.network.heal()
    for name in names:
        if sim.state[name].value == "crashed":
            sim.restart(name, keep_state=out.faulty.get(name) != "lost_state")
        sim.resume(name)
    out.heal_at = sim.now
    out.done = sim.run_until(heal_at + LIVENESS_BOUND, stop=cluster.all_clients_done)
    out.done_at = sim.now if out.done else None
    _finish(out, cluster, sim, t0)
    return out


def _finish(out: Outcome, cluster: Cluster, sim: Simulation, t0: float) -> None:
    out.violations = list(cluster.checker.violations)
    out.steps = sim.steps
    out.commits = cluster.checker.commits
    out.max_view = max((r.replica.view for r in cluster.correct() if r.replica), default=0)
    for node in cluster.replicas.values():
        injected = getattr(node, "injected", 0)
        if injected:
            out.injected[f"{out.faulty[node.name]}_messages"] += injected
    out.injected["dropped"] += sim.stats.dropped
    out.injected["duplicated"] += sim.stats.duplicated
    out.injected["rejected_bad_signature"] += cluster.rejected
    out.wall = time.perf_counter() - t0
    out.trace = sim.log


def run_twins_attack(seed: int, *, real_crypto: bool = False, heal_after: float = 1.0,
                     duration: float = 2.0) -> Cluster:
    """f+1 = 2 faulty replicas of n = 4 colluding as Twins: keys 0 (the primary) and 3 each run
    on two nodes, and a partition gives each twin pair one correct replica and one client, so
    both sides form quorums (3 of 4 keys) and commit different batches. Safety cannot hold
    here; the checker must see the conflict and name keys 0 and 3 from signed votes."""
    sim = Simulation(seed, Network())
    cluster = Cluster(sim, 4, real_crypto=real_crypto, config=dict(SIM_CONFIG))
    cluster.checker.raise_on_violation = False
    for i in (0, 3):
        for side in "ab":
            cluster.add_replica(i, name=f"r{i}{side}").faulty = True
    cluster.add_replica(1)
    cluster.add_replica(2)
    cluster.add_client(3)
    cluster.add_client(3)
    sim.network.partition({"r0a", "r3a", "r1", "c0"}, {"r0b", "r3b", "r2", "c1"})
    sim.run_until(heal_after)
    sim.network.heal()
    sim.run_until(duration)
    return cluster
