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
