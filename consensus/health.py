"""Committee health: can the committee this replica sits on still commit? Pure.

A replica that cannot commit looks busy, not broken: it keeps sending view changes and status
messages, and without a check the daemon would go on saying ``ok`` (it did, for a lone node that
changed views every second and a shard wedged by an oversized batch). This module turns what a
replica and its shell observe into a verdict with a reason a user can act on:

- ``stalled``  -- fewer members than a quorum are reachable, or work has waited without any
                  batch executing for ``stall_after`` seconds: nothing this committee orders
                  will commit until that changes;
- ``degraded`` -- work has waited for ``degrade_after`` seconds, the committee changed views
                  ``degrade_view_changes`` times in a row without executing anything, some
                  members are unreachable, or this replica was left behind in a view change
                  that a quorum carrying on in a lower view did not join: it commits, slowly or
                  with less margin;
- ``ok``       -- otherwise.

The thresholds are seconds of no progress, not counts of messages, so a slow but live committee
under a big job is ``degraded`` at worst, and a committee that is idle is never blamed for
having nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Health(Enum):
    OK = "ok"
    DEGRADED = "degraded"
    STALLED = "stalled"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one replica (and its shell) knows about its committee at one moment."""

    members: int
    quorum: int
    reachable: int
    """Members this node can reach now, itself included."""
    waiting_s: float | None
    """Seconds that work (requests, in-flight batches) has waited with no batch executed;
    None when there is no work."""
    view_changes_in_a_row: int
    """View changes started since a batch last executed."""
    view_changing: bool
    view: int = 0
    """The view this replica is in (or asks for, while ``view_changing``)."""
    carrying_on: int = 0
    """Other members lately seen committing normally in one lower view (``carrying_on_view``)
    while this replica waits in a view change they did not join."""
    carrying_on_view: int = -1


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    reason: str
    """Empty when ok; otherwise one short clause saying why."""


DEGRADE_AFTER_S = 5.0
STALL_AFTER_S = 20.0
DEGRADE_VIEW_CHANGES = 2


def committee_health(obs: Observation, *, degrade_after: float = DEGRADE_AFTER_S,
                     stall_after: float = STALL_AFTER_S,
                     degrade_view_changes: int = DEGRADE_VIEW_CHANGES) -> Verdict:
    """The verdict for one committee (see the module docstring for the rules)."""
    waiting = obs.waiting_s
    short = obs.reachable < obs.quorum
    reach = (f"only {obs.reachable} of {obs.members} members reachable, a quorum is "
             f"{obs.quorum}")
    vcs = obs.view_changes_in_a_row
    vc_note = f", {vcs} view changes in a row" if vcs else ""
    if short:
        return Verdict(Health.STALLED, reach + vc_note)
    if obs.view_changing and obs.carrying_on >= obs.quorum:
        # PBFT cannot take it back to the lower view (its view change is out, and voting
        # there again could undo a commit), but the committee commits without it, and it
        # follows their commits (``consensus.recovery``) until their next view change.
        return Verdict(Health.DEGRADED, f"left behind asking for view {obs.view}: {obs.carrying_on}"
                                        f" of {obs.members} members carry on in view "
                                        f"{obs.carrying_on_view} (it follows their commits)")
    if waiting is not None and waiting >= stall_after:
        return Verdict(Health.STALLED, f"nothing committed for {waiting:.0f} s with work "
                                       f"waiting{vc_note}")
    if vcs >= degrade_view_changes:
        return Verdict(Health.DEGRADED, f"{vcs} view changes in a row without a commit")
    if waiting is not None and waiting >= degrade_after:
        return Verdict(Health.DEGRADED, f"work waiting {waiting:.0f} s for a commit")
    if obs.reachable < obs.members:
        return Verdict(Health.DEGRADED, f"{obs.members - obs.reachable} of {obs.members} "
                                        f"members unreachable")
    return Verdict(Health.OK, "")


def worst(verdicts: list[tuple[str, Verdict]]) -> tuple[Health, str]:
    """The node's consensus health over its committees: the worst verdict, with every
    non-ok committee's reason (``name: reason; ...``)."""
    order = [Health.OK, Health.DEGRADED, Health.STALLED]
    bad = [(n, v) for n, v in verdicts if v.health is not Health.OK]
    if not bad:
        return Health.OK, ""
    top = max((v.health for _, v in bad), key=order.index)
    return top, "; ".join(f"{n}: {v.reason}" for n, v in bad)
