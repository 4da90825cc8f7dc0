"""What the soft-state service does on each tick, as a pure planner (``TickPlanner.plan``).

The trio shell (``daemon.softstate.service.SoftStateService.run``) calls ``plan`` on every tick
(``TICK_S``; ``REST_TICK_S`` at rest) with its clock, its load and its listen addresses, and
carries out the ``Steps``: note it is alive (availability history), publish its capability
record again, write its load entry (``daemon.softstate.load``), persist the replica, scan who
was heard from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.capabilities import HEARTBEAT_S

REFRESH_S = 300.0
"""An unchanged record is published again this often in a small network (``refresh_period``)."""
REFRESH_MAX_S = 8 * 3600.0
"""... and at least this often in any network: a third of the default eviction silence (24 h)."""
REFRESH_PER_NODE_S = 6.0
"""Seconds of refresh period per node known: a network of N nodes rewrites unchanged records
about once per ``REFRESH_PER_NODE_S`` seconds in all, so what a node relays of them does not
grow with N (each rewrite crosses each of its connections once)."""


def refresh_period(nodes: int, silence_s: float = 0.0) -> float:
    """How long this node leaves its record unchanged before writing it again, in a network of
    ``nodes`` records; ``silence_s``: the silence after which members are evicted (0: never),
    which a refresh must come well inside of, for nodes that are not connected to the
    directory's members hear of each other only through records."""
    period = min(REFRESH_MAX_S, max(REFRESH_S, REFRESH_PER_NODE_S * nodes))
    if silence_s > 0:
        period = max(REFRESH_S, min(period, silence_s / 3))
    return period


LOAD_REPUBLISH_S = 5.0
LOAD_STEP_PERMILLE = 250
"""A load change this large is written (``Steps.load``), no sooner than ``load_period``
after the last write of load (an entry, or a record)."""
LOAD_PER_NODE_S = 0.5
"""Seconds of the load period per node known: busy workers of a network of N nodes write their
load at most about twice a second in all, whatever N. Every write reaches every node once
through each of its soft-state links, so at the flat 5 s the soft state cost each node more
the larger the network: in a 100-task job on 30 daemons records changed 1.7 times a second,
and decoding the copies was the largest single cost of a worker's CPU (load was then written
by rewriting the whole record; it has an entry of its own now, a tenth of the bytes). A
scheduler's own committee counts the tasks it queued on each worker (``jobs.planner
.loaded_candidates`` takes the higher of the two), so a record's load matters for work the
committee does not see, which can wait."""


def load_period(nodes: int) -> float:
    """How soon after its last write a node rewrites its record for a change of load, in a
    network of ``nodes`` records: ``LOAD_REPUBLISH_S`` up to 10 nodes, ``LOAD_PER_NODE_S``
    per node beyond."""
    return max(LOAD_REPUBLISH_S, LOAD_PER_NODE_S * nodes)


PERSIST_S = 10.0
MEMBERSHIP_SCAN_S = 5.0


@dataclass(frozen=True, slots=True)
class Steps:
    heartbeat: bool = False
    publish: bool = False
    """Write the capability record again (it carries the load too)."""
    persist: bool = False
    scan: bool = False
    load: bool = False
    """Write only the load entry (``daemon.softstate.load``)."""


@dataclass
class TickPlanner:
    started: float
    """When the service started (monotonic): every timer counts from there."""
    load: int
    """The load last written (in a record or an entry) and the listen addresses the last
    published record carried (whoever published it: ``published`` is told of every publish,
    also those made outside ``plan``)."""
    addrs: Any
    refresh_s: float = REFRESH_S
    """The current refresh period (``refresh_period``: the service updates it as the network
    grows)."""
    load_s: float = LOAD_REPUBLISH_S
    """The current load period (``load_period``: updated alike)."""

    def __post_init__(self) -> None:
        self.last_heartbeat = self.last_refresh = self.last_scan = self.started
        self.last_load = self.started

    def plan(self, now: float, load: int, addrs: Any, dirty_at: float | None) -> Steps:
        """``dirty_at``: since when the replica has unpersisted changes (None: none)."""
        heartbeat = now - self.last_heartbeat >= HEARTBEAT_S
        if heartbeat:
            self.last_heartbeat = now
        publish = addrs != self.addrs or now - self.last_refresh >= self.refresh_s
        moved = not publish and abs(load - self.load) >= LOAD_STEP_PERMILLE and \
            now - self.last_load >= self.load_s
        if publish:
            self.published(now, load, addrs)
        elif moved:
            self.load, self.last_load = load, now
        scan = now - self.last_scan >= MEMBERSHIP_SCAN_S
        if scan:
            self.last_scan = now
        return Steps(heartbeat, publish, dirty_at is not None and now - dirty_at >= PERSIST_S,
                     scan, load=moved)

    def published(self, now: float, load: int, addrs: Any) -> None:
        """A record carrying ``load`` and ``addrs`` went out at ``now`` (for any reason: a
        runtime became ready, an attestation changed). Later load changes are measured from
        it: a record published while a task ran said "busy", and must be corrected when the
        worker is idle again, or placement skips an idle worker until the next refresh."""
        self.load, self.addrs, self.last_refresh, self.last_load = load, addrs, now, now
