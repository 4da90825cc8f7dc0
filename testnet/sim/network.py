"""The simulated network's fault model: what happens to one message in flight.

Seeded and pure: given the simulator's ``random.Random`` and a message, decide whether it is
dropped, how many copies arrive, and when. Reordering comes from independent delays (a later
message can overtake an earlier one), as it does on real networks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

NodeName = str


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """Fault rates for messages on a link. Times are virtual seconds."""

    drop: float = 0.0
    """Probability a message is lost."""
    duplicate: float = 0.0
    """Probability a delivered message arrives twice (each copy with its own delay)."""
    min_delay: float = 0.001
    max_delay: float = 0.010
    """Each copy's delay is uniform in [min_delay, max_delay]; a wide range reorders."""

    def __post_init__(self) -> None:
        if not (0 <= self.drop <= 1 and 0 <= self.duplicate <= 1):
            raise ValueError("drop and duplicate are probabilities")
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("need 0 <= min_delay <= max_delay")


RELIABLE = LinkFaults()
"""No loss, no duplicates, small delays: the network after the faults stop."""


@dataclass
class Network:
    """Default faults, per-link overrides, and partitions (sets of nodes that can talk)."""

    faults: LinkFaults = RELIABLE
    links: dict[tuple[NodeName, NodeName], LinkFaults] = field(default_factory=dict)
    _partition: dict[NodeName, int] | None = None

    def partition(self, *groups: set[NodeName] | list[NodeName]) -> None:
        """Only nodes in the same group can exchange messages; unlisted nodes are isolated."""
        self._partition = {n: i for i, g in enumerate(groups) for n in g}

    def heal(self) -> None:
        """Remove partitions, per-link overrides, and default faults."""
        self._partition = None
        self.links.clear()
        self.faults = RELIABLE

    def connected(self, src: NodeName, dst: NodeName) -> bool:
        if self._partition is None or src == dst:
            return True
        g = self._partition.get(src)
        return g is not None and g == self._partition.get(dst)

    def fate(self, rng: random.Random, src: NodeName, dst: NodeName) -> list[float]:
        """Delays of the copies that will arrive (empty: dropped). Always draws the same
        number of random values for the same faults, so runs replay exactly."""
        f = self.links.get((src, dst), self.faults)
        lost = rng.random() < f.drop
        dup = rng.random() < f.duplicate
        delays = [rng.uniform(f.min_delay, f.max_delay) for _ in range(2)]
        if lost or not self.connected(src, dst):
            return []
        return delays if dup else delays[:1]
