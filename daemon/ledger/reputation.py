"""Worker reputation from agreement, and BOINC-style adaptive replication.

Hard state, kept by the job ledger: per worker, how many of its results agreed with the
accepted result, how many disagreed, how many replicas it let time out, and its current run of
consecutive agreeing results. Counts are integers so every replica of the ledger computes the
same numbers (floats are derived only when read).

Adaptive replication (Anderson's BOINC does the same): a worker with a long, clean record may
run a task alone, except for a deterministic spot check on a fixed share of tasks. A worker
without such a record never has a result accepted unchecked; one disagreement resets the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

TRUST_AFTER = 10
"""Consecutive agreeing results before a worker may run a task alone."""
SPOT_CHECK_ONE_IN = 5
"""A trusted worker's task is still replicated once in this many (chosen by hash)."""


@dataclass
class WorkerRecord:
    agreed: int = 0
    disagreed: int = 0
    timeouts: int = 0
    run: int = 0
    """Consecutive agreeing results since the last disagreement."""

    def to_wire(self) -> list[int]:
        return [self.agreed, self.disagreed, self.timeouts, self.run]

    @classmethod
    def from_wire(cls, v: list[int]) -> "WorkerRecord":
        return cls(*v)

    @property
    def reputation(self) -> float:
        """In [0, 1]: a Beta(1, 1) prior, disagreements weigh 4x, timeouts half."""
        good = self.agreed + 1
        bad = 4 * self.disagreed + 0.5 * self.timeouts + 1
        return good / (good + bad)

    @property
    def trusted(self) -> bool:
        return self.run >= TRUST_AFTER and self.disagreed * 20 <= self.agreed


def spot_checked(job: bytes, task: int) -> bool:
    """Deterministic, unpredictable to the worker when it is assigned: is this task checked?"""
    h = hashlib.sha256(b"novacron/spot-check/v1" + job + task.to_bytes(4, "big")).digest()
    return int.from_bytes(h[:4], "big") % SPOT_CHECK_ONE_IN == 0


PRIOR = WorkerRecord().reputation
"""The reputation of a worker the ledger has no record of yet."""
BASIS_PERIOD_MS = 60_000
"""How often, in ledger time, the reputation placement scores with moves on (``PlacingBasis``)."""


class PlacingBasis:
    """The reputation placement scores workers with: as the ledger held it at the last two
    ``BASIS_PERIOD_MS`` boundaries of its clock, each marked by its period number.

    A proposal is checked by every replica when it executes, many batches after the proposer
    read the ledger; each result agreed meanwhile moves a worker's reputation (a fresh
    worker's goes 1/2, 2/3, 3/4 with its first results), so the best placement at execution
    was often not the proposer's. On a 30-daemon testnet a job's proposals placed 3 or 4 of
    their tasks and had the rest refused as "not the best placement", and a task's median
    first placement came 99 s into a 177 s job of millisecond tasks. Scoring with the
    reputation of a named period makes the proposer's and the checkers' inputs equal. Only a
    rise waits for the next period: the lower of a worker's reputation then and now counts, so
    a worker caught disagreeing or timing out is not favoured meanwhile (a proposal in flight
    when one of its candidates falls may still be refused: 1-3 tasks a proposal, when
    replicas crashed fetching the module)."""

    KEPT = 2

    def __init__(self) -> None:
        self.kept: list[tuple[int, dict[str, WorkerRecord]]] = []

    @property
    def latest(self) -> int:
        """The period a proposal made now names (0 before the clock started)."""
        return self.kept[-1][0] if self.kept else 0

    def roll(self, now_ms: int, workers: dict[str, WorkerRecord]) -> None:
        """At every clock advance: once a period begins, keep the records as they stand."""
        period = now_ms // BASIS_PERIOD_MS
        if period and period != self.latest:
            snapshot = {w: WorkerRecord(*r.to_wire()) for w, r in workers.items()}
            self.kept = [*self.kept[1 - self.KEPT:], (period, snapshot)]

    def reputations(self, period: int, workers: dict[str, WorkerRecord]) -> dict[str, float] | None:
        """Worker -> reputation to score with for a proposal naming ``period``; None if that
        period is no longer kept. Period 0 names the reputation at execution (tests and tools
        that place against the ledger as it stands; before, every proposal was checked so)."""
        if period == 0:
            return {w: r.reputation for w, r in workers.items()}
        then = next((s for p, s in self.kept if p == period), None)
        if then is None:
            return None
        # records are never removed: one not kept then is new since, and had the prior
        return {w: min(r.reputation, then[w].reputation if w in then else PRIOR)
                for w, r in workers.items()}

    def to_wire(self) -> list[Any]:
        return [[p, [[w, r.to_wire()] for w, r in sorted(s.items())]] for p, s in self.kept]

    @classmethod
    def from_wire(cls, v: list[Any]) -> "PlacingBasis":
        basis = cls()
        basis.kept = [(int(p), {w: WorkerRecord.from_wire(r) for w, r in s}) for p, s in v]
        return basis
