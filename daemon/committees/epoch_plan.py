"""What the epoch manager decides on each tick, as a pure planner (``EpochPlanner.plan``).

The trio shell (``daemon.committees.epochs.EpochManager``) carries the steps out: ``Join`` (a
proof of work, then a join request to the directory), ``Advance`` (ask the directory for the
next epoch), ``Evict`` (report a silent member), ``Retire`` (drop an old epoch's replica). Time
comes in: ``now`` is the service's monotonic clock, ``wall`` its wall clock (what
``last_heard`` answers in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.directory import EpochConfig
from consensus.mesh import MESH_ABOVE
from protocol.identity import node_id_from_public_key

EPOCH_MIN_S = 10.0
"""An epoch lasts at least this long before a member asks for the next (``epoch_min_s``)."""
EPOCH_S_PER_MEMBER = 0.1
"""...and at least this long per member. Every node takes in each new epoch's notice (the
membership, ~36 bytes a member) and passes it on about once (``epoch_sync``), and every shard
hands its state over: with a fixed minimum, a network of 10,000 volunteers churning all day
would advance every ten seconds and each node would move ~70 KB/s for epochs alone. With the
minimum in proportion to the members, a node's share is bounded whatever the network's size
(2 x 36 B x N per 0.1 s x N: ~0.7 KB/s), at the price of a joiner's wait: up to 17 minutes at
10,000 members (Algorand-style networks batch their membership changes for hours)."""


EPOCH_MESHED_MIN_S = 1800.0
"""...and at least this long once committees are meshed (more than ``consensus.mesh
.MESH_ABOVE`` members, from ~55 nodes on). An epoch's closing round (every member's
``EndEpoch``, the batch that orders it, every member's checkpoint) floods each member's
prepare, commit and checkpoint over its committee's mesh, every member forwarding each to ~11
neighbours: 0.47 MB a seat at 37 members, 3.2 MB at 220, sent plus received
(``scripts/sim_scale.py``, ``committee_round_bytes``; ``bench_mesh.py`` measures the same
within 1%), and a node holds about half a seat. That cost does not shrink as the network
grows, so the per-member pace above did not bound it: at 17 minutes an epoch a node of 10,000
paid ~1.5 KB/s for closing rounds, at 100 nodes (one epoch per 10 s) ~34 KB/s. Half an hour
keeps it under ~0.8 KB/s at any size; a joiner of a large network waits up to that long."""


def epoch_min_s(members: int, committee: int = 0) -> float:
    """How long an epoch of ``members`` members, whose committees have ``committee`` members,
    lasts at least before the next is asked for."""
    floor = EPOCH_MESHED_MIN_S if committee > MESH_ABOVE else EPOCH_MIN_S
    return max(floor, EPOCH_S_PER_MEMBER * members)


RETIRE_S = 60.0
"""An old epoch's replica serves its final state this long, then stops."""
JOIN_RETRY_S = 15.0
EVICT_SCAN_S = 5.0


@dataclass(frozen=True, slots=True)
class Join:
    pass


@dataclass(frozen=True, slots=True)
class Advance:
    epoch: int


@dataclass(frozen=True, slots=True)
class Evict:
    public_key: bytes
    epoch: int
    silent_s: float


@dataclass(frozen=True, slots=True)
class Retire:
    shard: int
    epoch: int


EpochStep = Join | Advance | Evict | Retire


@dataclass
class EpochPlanner:
    entered_at: float
    """When this node entered the current epoch (monotonic)."""
    started_wall: float
    """When this node started (wall clock): no member is silent for longer than we are up."""
    retire: dict[tuple[int, int], float] = field(default_factory=dict)
    """(shard, old epoch) -> when we stopped being its current member."""
    join_at: float = 0.0
    advance_asked: int = -1
    evict_asked: set[tuple[int, bytes]] = field(default_factory=set)
    evict_scan: float = 0.0

    def entered(self, now: float, old_replicas: list[tuple[int, int]]) -> None:
        """We entered a new epoch at ``now``; ``old_replicas`` retire ``RETIRE_S`` later."""
        self.entered_at = now
        for key in old_replicas:
            self.retire[key] = now

    def plan(self, now: float, wall: float, me: bytes, epoch: EpochConfig, stay_out: bool,
             directory: Any | None, evict_after_s: float,
             last_heard: Callable[[str], float | None]) -> list[EpochStep]:
        """``directory``: this node's replica's ``DirectoryMachine`` of the current epoch, if
        it sits on the directory committee."""
        steps: list[EpochStep] = []
        if me not in epoch.members and not stay_out and now - self.join_at >= JOIN_RETRY_S:
            self.join_at = now
            steps.append(Join())
        if directory is not None:
            if now - self.evict_scan >= EVICT_SCAN_S:
                self.evict_scan = now
                steps += self._silent(wall, me, epoch, evict_after_s, last_heard)
            least = epoch_min_s(len(epoch.members), epoch.committee_size)
            if (directory.joining or directory.leaving or directory.evicted()) \
                    and directory.epoch == epoch.epoch and now - self.entered_at >= least \
                    and self.advance_asked < epoch.epoch + 1:
                self.advance_asked = epoch.epoch + 1
                steps.append(Advance(epoch.epoch + 1))
        for key, since in list(self.retire.items()):
            if now - since >= RETIRE_S:
                del self.retire[key]
                steps.append(Retire(*key))
        return steps

    def _silent(self, wall: float, me: bytes, epoch: EpochConfig, after: float,
                last_heard: Callable[[str], float | None]) -> list[EpochStep]:
        """As a directory committee member: members silent for ``after`` seconds."""
        if not after:
            return []
        out: list[EpochStep] = []
        for pk in epoch.members:
            if pk == me or (epoch.epoch, pk) in self.evict_asked:
                continue
            heard = max(last_heard(node_id_from_public_key(pk)) or 0.0, self.started_wall)
            if wall - heard >= after:
                self.evict_asked.add((epoch.epoch, pk))
                out.append(Evict(pk, epoch.epoch, wall - heard))
        return out

    def failed(self, step: EpochStep) -> None:
        """The directory did not order ``step``: plan it again later."""
        if isinstance(step, Advance):
            self.advance_asked = -1
        elif isinstance(step, Evict):
            self.evict_asked.discard((step.epoch, step.public_key))
