"""Work for volunteers: task offers from a committee, and the votes that certify results.

A worker's result goes to the committee as a job-ledger operation; its bytes travel as a blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from protocol.schema import MaxItems, MaxLen, message
from protocol.types import U8, U32, U64, Digest, Name, NodeIdText, Signature

RUNTIME = "wasm32-wasi"
"""The sandbox target every worker runs; a task is pinned to ``RUNTIME@<build id>``."""
MAX_RESUME_CHAIN = 16
MAX_MIRRORS = 4
"""Checkpoints from a key frame to the newest, at most (``daemon.runtime.resumable``)."""


class TaskStatus(IntEnum):
    OK = 0
    TRAPPED = 1
    OUT_OF_FUEL = 2
    OUT_OF_MEMORY = 3
    TIMED_OUT = 4
    REFUSED = 5
    EXITED = 6  # the module called proc_exit with a non-zero code
    OUTPUT_TOO_LARGE = 7  # stdout passed the task's max_output
    CRASHED = 8  # the worker process died (a node fault, not the module's result: run it again)


@message("task.offer", 1)
@dataclass(frozen=True, slots=True)
class TaskOffer:
    """From each member of the job's shard committee to the worker the ledger assigned: run
    replica ``replica`` of task ``task`` of ``job``. A worker runs it once f+1 members sent the
    same offer, so no single member can make it work for nothing."""

    shard: U32
    epoch: U64
    job: Digest
    task: U32
    replica: U8
    submitter: NodeIdText
    module_hash: Digest
    module_size: U64
    input_hash: Digest
    input_size: U32
    input_inline: Annotated[bytes, MaxLen(1024)] | None
    argv: Annotated[tuple[Annotated[str, MaxLen(256)], ...], MaxItems(64)]
    fuel: U64
    memory_pages: U32
    wall_ms: U64
    max_output: U32
    clock_ns: U64
    lease_ms: U64
    runtime: Name
    """The exact runtime (``wasm32-wasi@ID``) the task is pinned to, or the bare target: a
    worker that no longer runs it (upgraded since its record was gossiped) declines."""
    checkpoint_fuel: U64 = 0
    """A resumable module's checkpoint interval (``ledger.checkpoint_interval`` of the job):
    every replica checkpoints after the same steps and reports each digest to the ledger."""
    resume: Annotated[tuple[Digest, ...], MaxItems(MAX_RESUME_CHAIN)] = ()
    """The task's last agreed checkpoint, as the blob hashes of its chain (a key frame, then
    deltas), kept by the submitter's node; empty: start from the beginning."""
    resume_digest: Annotated[bytes, MaxLen(32)] = b""
    """The agreed digest the chain must end at (checked before a byte of it is used)."""
    mirrors: Annotated[tuple[NodeIdText, ...], MaxItems(MAX_MIRRORS)] = ()
    """Workers of this task's earlier replicas that started it (they fetched its module and
    input): asked for those blobs when the submitter cannot be reached. A worker behind NAT
    that could not reach a NAT'd submitter failed every task it was given; blobs are checked
    by hash, so a mirror can waste time but never change a byte."""
    holders: Annotated[tuple[NodeIdText, ...], MaxItems(MAX_MIRRORS)] = ()
    """Workers of the job's other tasks that ran one (they hold its module): asked for the
    module in turn with the submitter and ``mirrors``, the task index choosing who is asked
    first, so a job's first wave is not served by the submitter's uplink alone."""


@message("task.checkpoint", 1)
@dataclass(frozen=True, slots=True)
class CheckpointReady:
    """From a worker to the job's submitter, with each checkpoint it takes: "fetch this blob".
    The submitter's node keeps a task's recent chain, so the task can resume on another
    volunteer after this one leaves."""

    job: Digest
    task: U32
    replica: U8
    seq: U32
    blob: Digest
    size: U64


@message("task.output", 1)
@dataclass(frozen=True, slots=True)
class OutputReady:
    """From a worker to the job's submitter, before it reports the result to the ledger: "my
    output of this task is ready, take it". The submitter fetches it at once, so an accepted
    result survives its worker going offline (a quorum-1 task has no other copy)."""

    job: Digest
    task: U32
    replica: U8
    output_hash: Digest
    output_size: U64


@message("task.vote", 2)
@dataclass(frozen=True, slots=True)
class ResultVote:
    """From a committee member to the job's submitter, after its ledger accepted a task's
    result: a signature over ``certificate.statement(...)``, which includes how many distinct
    workers agreed (``len(workers)``) and the stderr's hash. 2f+1 of them from the committee
    are the result's certificate. (v2: v1 signed neither the count nor the stderr.)"""

    shard: U32
    epoch: U64
    seq: U64
    job: Digest
    task: U32
    status: TaskStatus
    exit_code: U32
    output_hash: Digest
    output_size: U64
    workers: Annotated[tuple[NodeIdText, ...], MaxItems(16)]
    """The workers whose results agreed: where the submitter fetches the output."""
    stderr_hash: Digest
    stderr_size: U32
    """The task's stderr (its deterministic tail), agreed on with the output."""
    signature: Signature

    @property
    def agreed(self) -> int:
        """Distinct volunteers whose results matched: signed, so it cannot be inflated."""
        return len(set(self.workers))


@message("task.offers", 1)
@dataclass(frozen=True, slots=True)
class TaskOffers:
    """Several offers for one worker from one committed batch, in one message."""

    offers: Annotated[tuple[TaskOffer, ...], MaxItems(1024)]


@message("task.votes", 1)
@dataclass(frozen=True, slots=True)
class ResultVotes:
    """Several result votes for one submitter from one committed batch, in one message."""

    votes: Annotated[tuple[ResultVote, ...], MaxItems(1024)]
