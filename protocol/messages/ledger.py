"""Job ledger operations: what clients ask a shard committee to order.

Each operation is a typed message in ``protocol.schema.REGISTRY`` (``ledger.submit`` v1, ...).
It travels as the ``operation`` bytes of a PBFT ``Request``: canonical msgpack ``[tag, body]``
where ``body`` is the operation's fields as an array (``protocol.schema``) and ``tag`` a small
integer naming the message (``TAGS``): the form ledgers have always stored, so snapshots and
requests written before the operations joined the registry still decode.
Who may send what (checked by the ledger, since the request's signer is authenticated):

- ``Submit``, ``AddInputs``, ``Cancel`` -- any node, as the job's submitter;
- ``Tick``, ``Place``, ``Unreachable`` -- committee members only (time, placements, dead workers);
- ``Start``, ``Result``, ``Leave``, ``CheckpointReport`` -- the worker a replica was assigned to;
- ``Query``                     -- anyone (an ordered read; it changes nothing);
- ``AskVotes``                  -- the job's submitter (votes again for its uncertified tasks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage
from protocol.schema import REGISTRY, MaxItems, MaxLen, message, struct_spec
from protocol.types import U8, U16, U32, U64, Digest, Name, NodeIdText, Text

MAX_INLINE_INPUT = 1024
"""Task inputs up to this size travel inside the ledger; larger ones are blobs, by hash."""
MAX_TASKS_PER_OP = 2048
MAX_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class TaskInput:
    hash: Digest
    size: U32
    inline: Annotated[bytes, MaxLen(MAX_INLINE_INPUT)] | None


@message("ledger.submit", 1)
@dataclass(frozen=True, slots=True)
class Submit:
    name: Name
    module_hash: Digest
    module_size: U64
    argv: Annotated[tuple[Annotated[str, MaxLen(256)], ...], MaxItems(64)]
    inputs: Annotated[tuple[TaskInput, ...], MaxItems(MAX_TASKS_PER_OP)]
    fuel: U64
    memory_pages: U32
    wall_ms: U64
    max_output: U32
    replicas: U8
    quorum: U8
    max_replicas: U8
    min_attestation: U8
    deadline_s: U32
    clock_ns: U64
    """0: the ledger time at submission."""
    nonce: U64
    """Makes two identical submissions two jobs."""
    total_tasks: U32
    """All the job's tasks; when more than ``inputs`` holds, ``AddInputs`` brings the rest and
    the job is placed only once it is complete (an operation is at most 64 KiB)."""
    adaptive: bool = False
    """Adaptive replication, asked for by the job file: a task may be placed on one trusted
    worker alone and accepted on its word (quorum 1). Off unless asked."""
    runtime: Name = "wasm32-wasi"
    """The runtime family that runs the module: ``wasm32-wasi``, or ``python`` (the module is a
    ``daemon.runtime.bundle``); placement pins each task to one exact ``FAMILY@ID``."""
    checkpoint_fuel: U64 = 0
    """A resumable module's checkpoint interval in fuel (``[checkpoint] every_fuel``): the
    same for every replica, so their checkpoints fall after the same steps. 0: the default
    (``checkpoint_interval``)."""


@message("ledger.add_inputs", 1)
@dataclass(frozen=True, slots=True)
class AddInputs:
    job: Digest
    first: U32
    """Index of the first input here: must equal the number of tasks the job has so far."""
    inputs: Annotated[tuple[TaskInput, ...], MaxItems(MAX_TASKS_PER_OP)]


@message("ledger.cancel", 1)
@dataclass(frozen=True, slots=True)
class Cancel:
    job: Digest


@message("ledger.tick", 1)
@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: U64


@dataclass(frozen=True, slots=True)
class CandidateWire:
    """One peer as the proposer's soft state saw it (reputation comes from the ledger)."""

    node_id: NodeIdText
    availability: Any
    cores: U16
    memory_mib: U32
    runtimes: Annotated[tuple[Name, ...], MaxItems(8)]
    attestation: U8
    load_permille: U16
    link_ms: U32
    domain: Name
    vouched_since_s: U64
    """0: not vouched."""


@dataclass(frozen=True, slots=True)
class TaskAssignment:
    task: U32
    workers: Annotated[tuple[NodeIdText, ...], MaxItems(16)]
    explanation: Any
    """The proposer's ``Explanation.to_dict()``, stored verbatim for ``novacron explain``:
    replicas check the choice, but never store floats they computed themselves (their last
    bits may differ between machines, and replicated state must not)."""


@message("ledger.place", 1)
@dataclass(frozen=True, slots=True)
class Place:
    job: Digest
    now_ms: U64
    duration_ms: U64
    """The task duration placement assumed (``placing.expected_duration``): the ledger's
    estimate moves as results arrive, so the proposer says which one it used and every
    replica checks it is close to its own."""
    candidates: Annotated[tuple[CandidateWire, ...], MaxItems(MAX_CANDIDATES)]
    assignments: Annotated[tuple[TaskAssignment, ...], MaxItems(MAX_TASKS_PER_OP)]
    basis: U64 = 0
    """The period of the ledger's reputation the proposal scored workers with
    (``daemon.ledger.reputation.PlacingBasis``); 0: the reputation at execution."""


@message("ledger.start", 1)
@dataclass(frozen=True, slots=True)
class Start:
    job: Digest
    task: U32
    replica: U8


@message("ledger.result", 1)
@dataclass(frozen=True, slots=True)
class Result:
    job: Digest
    task: U32
    replica: U8
    status: U8
    exit_code: U32
    """The code the module passed to ``proc_exit``, if it exited (else 0): part of the
    result replicas must agree on, so a cheater cannot change it unnoticed."""
    output_hash: Digest
    output_size: U64
    fuel_used: U64
    detail: Text
    stderr_hash: Digest = hashlib.sha256(b"").digest()
    stderr_size: U32 = 0
    """The task's stderr (its deterministic tail): part of what replicas must agree on; the
    bytes go to the submitter like the output."""


@message("ledger.checkpoint", 1)
@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """A worker's resumable task reached checkpoint ``seq``: its state's digest
    (``daemon.runtime.checkpoint``), the steps and fuel it took to get there. The ledger
    records a checkpoint once ``quorum`` replicas report the same digest for it; a replica
    reporting another digest for an agreed checkpoint is caught there."""

    job: Digest
    task: U32
    replica: U8
    seq: U32
    steps: U64
    fuel_used: U64
    digest: Digest
    blob: Digest
    """SHA-256 of the compressed checkpoint bytes, handed to the submitter's node: where a new
    replica fetches them (not part of the agreement: the digest is)."""
    keyframe: bool
    """The checkpoint holds the whole state (a chain to resume from starts at one)."""


@message("ledger.leave", 1)
@dataclass(frozen=True, slots=True)
class Leave:
    """The worker is going offline: release its unfinished replicas now, not at their lease."""

    reason: Text


@message("ledger.unreachable", 1)
@dataclass(frozen=True, slots=True)
class Unreachable:
    """A committee member has not been connected to ``worker`` for a while, and the worker holds
    unreported replicas. f+1 members saying so (within ``UNREACHABLE_WINDOW_MS``) release them
    now instead of at their lease (twice the wall limit and a minute); any report from the worker
    itself withdraws the claims."""

    worker: NodeIdText


@message("ledger.query", 1)
@dataclass(frozen=True, slots=True)
class Query:
    """An ordered read of a job: its counts, and tasks ``first .. first+count-1`` (at most
    ``MAX_QUERY_TASKS``); with ``detail`` (and count 1) a task's replicas and explanation."""

    job: Digest
    first: U32
    count: U16
    detail: bool


@message("ledger.ask_votes", 1)
@dataclass(frozen=True, slots=True)
class AskVotes:
    """The job's submitter asks the committee to sign again the result votes of these tasks:
    it holds no certificate for them (it was offline when they were accepted, or votes were
    lost). Members re-send votes for the ones their ledger accepted; the rest are ignored."""

    job: Digest
    tasks: Annotated[tuple[U32, ...], MaxItems(MAX_TASKS_PER_OP)]


MAX_QUERY_TASKS = 500


@message("ledger.worker", 1)
@dataclass(frozen=True, slots=True)
class WorkerQuery:
    """An ordered read of one worker's record on this shard: results agreed and disagreed,
    timeouts, reputation. A volunteer's node asks for its own, for its owner's page."""

    worker: NodeIdText


MAX_BATCH = 32


@message("ledger.batch", 1)
@dataclass(frozen=True, slots=True)
class Batch:
    """Several operations of one client in one request (applied in order, each answered):
    a node's queued reports cost one consensus round instead of one each."""

    items: Annotated[tuple[Annotated[bytes, MaxLen(64 * 1024)], ...], MaxItems(MAX_BATCH)]


TAGS: dict[int, type] = {1: Submit, 2: Cancel, 3: Tick, 4: Place, 5: Start, 6: Result, 7: Leave,
                         8: Query, 9: Batch, 10: AddInputs, 11: Unreachable, 12: WorkerQuery,
                         13: CheckpointReport, 20: AskVotes}
"""Wire tag -> operation class. Tags never change meaning; a new operation takes a new tag."""
_TAG_OF = {cls: tag for tag, cls in TAGS.items()}

Operation = (Submit | AddInputs | Cancel | Tick | Place | Start | Result | Leave | Unreachable
             | Query | WorkerQuery | Batch | CheckpointReport
             | AskVotes)



CHECKPOINTS_PER_FUEL_LIMIT = 100
MIN_CHECKPOINT_FUEL = 1_000_000_000
"""The default interval: a hundredth of the fuel limit, at least ~0.4 s of compiled wasm."""


def checkpoint_interval(op: Submit) -> int:
    """The fuel between two checkpoints of a task of this job (see ``Submit.checkpoint_fuel``)."""
    if op.checkpoint_fuel:
        return op.checkpoint_fuel
    return max(MIN_CHECKPOINT_FUEL, op.fuel // CHECKPOINTS_PER_FUEL_LIMIT)


def encode_op(op: Operation) -> bytes:
    return packb([_TAG_OF[type(op)], struct_spec(type(op)).encode(op)])


def decode_stored_submit(data: bytes) -> Submit:
    """A job's ``Submit`` as a ledger snapshot stored it. Snapshots from before adaptive
    replication was a choice have no ``adaptive`` field: those jobs read as not adaptive (so
    their remaining tasks are placed with the quorum they asked for). Snapshots from before
    runtimes were named have no ``runtime``: those jobs are wasm32-wasi jobs; from before
    checkpoints, no ``checkpoint_fuel``: the default interval."""
    value = unpackb(data, max_size=1 << 20, canonical_maps=True)
    fields = len(struct_spec(Submit).names)
    newer = [False, "wasm32-wasi", 0]  # adaptive, runtime, checkpoint_fuel: defaults of old jobs
    if (type(value) is list and len(value) == 2 and value[0] == _TAG_OF[Submit]
            and type(value[1]) is list and fields - len(newer) <= len(value[1]) < fields):
        have = len(value[1]) - (fields - len(newer))
        value = [value[0], value[1] + newer[have:]]
    op = decode_op(packb(value))
    if not isinstance(op, Submit):
        raise MalformedMessage("a stored job is not a Submit")
    return op


def decode_op(data: bytes) -> Operation:
    """Decode untrusted operation bytes; raises only ``RemoteProtocolError`` kinds."""
    value = unpackb(data, max_size=1 << 20, canonical_maps=True)
    if type(value) is not list or len(value) != 2 or type(value[0]) is not int:
        raise MalformedMessage("a ledger operation is [tag, body]")
    cls = TAGS.get(value[0])
    if cls is None:
        raise MalformedMessage(f"unknown ledger operation tag {value[0]}")
    op: Operation = struct_spec(REGISTRY.lookup(cls.TYPE, cls.VERSION)).decode(  # type: ignore[attr-defined]
        value[1], cls.__name__)
    return op
