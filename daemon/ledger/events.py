"""What changed in a job ledger, for the shell that acts on it (``JobLedger.drain_events``).

Events are not replicated state: each replica's ledger produces the same ones, and the member
service on each node acts on its own (offers to send, votes to sign, slots to fill).
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.ledger.records import Answer, JobState


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    job: bytes


@dataclass(frozen=True, slots=True)
class Offered:
    """Replica ``replica`` of task ``task`` was placed on ``worker``: offer it the work."""

    job: bytes
    task: int
    replica: int
    worker: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """A quorum agreed on ``answer``: members vote for it (the result's certificate)."""

    job: bytes
    task: int
    answer: Answer


@dataclass(frozen=True, slots=True)
class VotesAsked:
    """The submitter holds no certificate for these accepted tasks: members vote again."""

    job: bytes
    tasks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReplicaFailed:
    """The replica timed out, was released, or its node failed: its slot opens again."""

    job: bytes
    task: int
    replica: int


@dataclass(frozen=True, slots=True)
class TaskFailed:
    job: bytes
    task: int
    why: str


@dataclass(frozen=True, slots=True)
class JobEnded:
    job: bytes
    state: JobState


LedgerEvent = (JobSubmitted | Offered | Accepted | VotesAsked | ReplicaFailed | TaskFailed
               | JobEnded)
