"""The records a job ledger keeps: jobs, their tasks, and each task's replicas.

A *replica* (``TaskReplica``) is one run of a task on one worker; its ``ReplicaOutcome`` says
what became of it, and its ``result`` is the ``Answer`` it reported. A task (``TaskState``) is
open until a quorum of replicas agree on an ``Answer`` (accepted), it runs out of replicas or
time (failed, with a ``failure`` kind), or its job is cancelled. A job (``JobState``) loads its
inputs, is open while any task is, then is done or cancelled.

The states are ``StrEnum``s: their values are the strings snapshots and queries always carried.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from collections.abc import Iterator
from typing import Any, NamedTuple

from protocol.canonical import packb
from daemon.ledger.checkpoints import CheckpointMark, marks_from_wire, marks_to_wire
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskStatus

LEASE_SLACK_MS = 60_000
"""A replica's lease: twice the task's wall-clock limit and this much more."""


def lease_for(wall_ms: int) -> int:
    """How long a replica of a task with wall-clock limit ``wall_ms`` is held for its worker."""
    return 2 * wall_ms + LEASE_SLACK_MS


EMPTY_SHA256 = hashlib.sha256(b"").digest()
# Why a task failed without an agreed result.
NO_AGREEMENT, NO_RESULT, DEADLINE = "NO_AGREEMENT", "NO_RESULT", "DEADLINE"
NOT_STARTED_DEADLINE = 1 << 62
"""The deadline of a job waiting for a fresh ledger clock: none yet."""


class ReplicaOutcome(StrEnum):
    """What became of one replica."""

    PENDING = "pending"
    AGREED = "agreed"
    DISAGREED = "disagreed"
    TIMEOUT = "timeout"
    RELEASED = "released"


class TaskState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    LOADING = "loading"
    """Waiting for the rest of its inputs (``AddInputs``); not placed yet."""
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Answer(NamedTuple):
    """What replicas must agree on: a replica's reported result, as the ledger compares it."""

    status: int
    output_hash: bytes
    output_size: int
    exit_code: int
    stderr_hash: bytes
    stderr_size: int


@dataclass
class TaskReplica:
    """One run of a task on one worker. Its encoding is cached (``packed``) until a field is
    set again: a checkpoint of a 100,000-task ledger re-encodes only what changed."""

    worker: str
    placed_ms: int
    lease_ms: int
    started: bool = False
    result: Answer | None = None
    """What the worker reported, as replicas must agree on it (``Answer``)."""
    outcome: ReplicaOutcome = ReplicaOutcome.PENDING
    detail: str = ""
    started_ms: int = 0
    """Ledger time of the worker's ``Start`` (0: not started)."""
    reported_ms: int = 0
    """Ledger time of its ``Result`` (0: none yet)."""
    fuel_used: int = 0
    """The fuel the worker reported. Not part of the agreement (a result is its output), but
    shown by ``explain``: replicas of a deterministic runtime report the same fuel, and a
    difference points at a non-deterministic runtime."""
    checkpoints: list[CheckpointMark] = field(default_factory=list)
    """Its latest checkpoint reports (``checkpoints.REPORT_WINDOW``), oldest first."""

    _packed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        d[name] = value
        d["_packed"] = None

    def packed(self) -> bytes:
        """``packb(self.to_wire())``, cached while no field is set."""
        b: bytes | None = self.__dict__["_packed"]
        if b is None:
            b = packb(self.to_wire(), maps=False)
            self.__dict__["_packed"] = b
        return b

    def to_wire(self) -> list[Any]:
        wire = [self.worker, self.placed_ms, self.lease_ms, self.started,
                list(self.result) if self.result else None, self.outcome, self.detail,
                self.started_ms, self.reported_ms, self.fuel_used]
        if self.checkpoints:  # absent for every task that never checkpoints, as before
            wire.append(marks_to_wire(self.checkpoints))
        return wire

    @classmethod
    def from_wire(cls, v: list[Any]) -> "TaskReplica":
        # Snapshots from before run times (fuel) were kept have 7 (9) fields: those read as 0;
        # replicas that never reported a checkpoint have no 11th.
        rep = cls(v[0], v[1], v[2], v[3], _result(v[4]), ReplicaOutcome(v[5]), v[6], *v[7:10])
        if len(v) > 10:
            rep.checkpoints = marks_from_wire(v[10])
        return rep

    @property
    def runtime_ms(self) -> int | None:
        """Start to result, in ledger time (includes handing the output over)."""
        if self.started_ms and self.reported_ms >= self.started_ms:
            return self.reported_ms - self.started_ms
        return None


@dataclass
class Task:
    """One input of a job and its replicas. Like ``TaskReplica`` its encoding is cached
    (``packed``): setting a field drops it, and so does any change to a replica or to the
    replica list (the cache remembers each replica's own cached bytes object, which a change
    drops). The only in-place values are the replica list and frozen records, so nothing else
    can change under the cache; ``tests/daemon/ledger/test_snapshot_cache.py`` compares the
    bytes with a fresh encoding after every kind of operation."""

    input: ops.TaskInput
    replicas: list[TaskReplica] = field(default_factory=list)
    state: TaskState = TaskState.OPEN
    accepted: Answer | None = None
    accepted_seq: int = 0
    quorum: int = 0
    explanation: Any = None
    runtime: str = ""
    """The exact runtime its replicas run on (``placing.task_runtime``); "" until placed."""
    failure: str = ""
    """Why a FAILED task has no agreed result (one of ``NO_RESULT_KINDS``)."""
    checkpoints: list[CheckpointMark] = field(default_factory=list)
    """Its latest agreed checkpoints (``checkpoints.AGREED_WINDOW``); the last is where a new
    replica resumes."""
    _packed: tuple[bytes, list[bytes]] | None = field(default=None, init=False, repr=False,
                                                       compare=False)
    """The task's encoding and the replica encodings it holds (each replica's own cached
    bytes object: a replica that changed has another one, or none)."""

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        d[name] = value
        d["_packed"] = None

    def packed(self) -> bytes:
        """``packb(self.to_wire())``, cached while neither the task nor a replica changed."""
        cached: tuple[bytes, list[bytes]] | None = self.__dict__["_packed"]
        reps = self.replicas
        if cached is not None:
            b, seen = cached
            if len(seen) == len(reps):
                for r, rb in zip(reps, seen):
                    if r.__dict__["_packed"] is not rb:
                        break
                else:
                    return b
        parts = [r.packed() for r in reps]
        tail = self._tail()
        # The task's array, with the replicas' cached encodings spliced in as one array.
        b = b"".join((array_header(2 + len(tail)), packb(self._head(), maps=False),
                      array_header(len(parts)), *parts,
                      packb(tail, maps=False)[len(array_header(len(tail))):]))
        self.__dict__["_packed"] = (b, parts)
        return b

    def _head(self) -> list[Any]:
        return [self.input.hash, self.input.size, self.input.inline]

    def _tail(self) -> list[Any]:
        """The fields after the replicas (maps=False: an explanation is already canonical)."""
        tail = [self.state, list(self.accepted) if self.accepted else None, self.accepted_seq,
                self.quorum, self.explanation, self.runtime, self.failure]
        if self.checkpoints:  # absent for tasks that never checkpoint: their bytes are unchanged
            tail.append(marks_to_wire(self.checkpoints))
        return tail

    def to_wire(self) -> list[Any]:
        return [self._head(), [r.to_wire() for r in self.replicas], *self._tail()]

    @classmethod
    def from_wire(cls, v: list[Any]) -> "Task":
        # Snapshots from before tasks were pinned to a runtime have 7 fields: read as unpinned;
        # from before failures were named, 8: a failed task reads as NO_RESULT.
        task = cls(ops.TaskInput(*v[0]), [TaskReplica.from_wire(r) for r in v[1]], TaskState(v[2]),
                   _result(v[3]), v[4], v[5], v[6], *v[7:9])
        if len(v) > 9:
            task.checkpoints = marks_from_wire(v[9])
        if task.state == TaskState.FAILED and not task.failure:
            task.failure = NO_RESULT
        return task

    @property
    def agreed(self) -> int:
        """Distinct workers whose result is the accepted one (two replicas of a task share a
        worker only when the first ended with no result): what the certificate states."""
        return len({r.worker for r in self.replicas if r.outcome == ReplicaOutcome.AGREED})

    @property
    def outcome_kind(self) -> str:
        """``OK``, the agreed failure's status name, a ``NO_RESULT_KINDS`` name, or the state."""
        if self.state == TaskState.ACCEPTED and self.accepted is not None:
            return TaskStatus(self.accepted.status).name
        if self.state == TaskState.FAILED:
            return self.failure or NO_RESULT
        return self.state.upper()


def _result(v: list[Any] | None) -> Answer | None:
    """A stored result; snapshots written before exit codes were agreed on read as exit 0,
    and from before stderr was agreed on, as an empty stderr."""
    if not v:
        return None
    status, output_hash, size, *rest = v
    exit_code = rest[0] if rest else 0
    stderr_hash, stderr_size = (rest[1], rest[2]) if len(rest) >= 3 else (EMPTY_SHA256, 0)
    return Answer(status, output_hash, size, exit_code, stderr_hash, stderr_size)


@dataclass
class Job:
    id: bytes
    submitter: str
    spec: ops.Submit
    submitted_ms: int
    clock_ns: int
    tasks: list[Task]
    state: JobState = JobState.OPEN
    ended_ms: int = 0
    runtimes_ms: list[int] = field(default_factory=list)
    """Run times of the latest ``RUNTIME_SAMPLES`` replicas whose result was accepted."""
    settled_below: int = field(default=0, init=False, compare=False, repr=False)
    """Every task below this index has left ``OPEN`` (a task never goes back): where a walk for
    open tasks may start. Derived, not replicated (0 after a restore): it only saves time.
    Tasks settle roughly in order, so without it checking whether a 100,000-task job is done
    after each accepted task walked all the settled ones again (quadratic in the job)."""

    _settled_counts: tuple[int, Counter[str], Counter[str], Counter[str]] | None = field(
        default=None, init=False, compare=False, repr=False)
    """``counts`` of the tasks below an index that is at most ``settled_below`` (derived)."""

    placed: set[int] = field(default_factory=set, init=False, compare=False, repr=False)
    """Indices of tasks given a replica while open (derived like ``settled_below``; rebuilt at
    restore): every open task with replicas is here, so walks for running replicas (leases,
    a worker's replicas, load) visit these instead of all 100,000 tasks. Settled ones are
    dropped as walks meet them."""

    def add_replica(self, index: int, replica: TaskReplica) -> int:
        """Give task ``index`` another replica; its position. Replicas are added only here:
        the walks for running replicas find a task through ``placed``, and a task given a
        replica behind its back would never see its lease expire (until a restore, which
        rebuilds ``placed``: the replicas would diverge)."""
        task = self.tasks[index]
        task.replicas.append(replica)
        self.placed.add(index)
        return len(task.replicas) - 1

    def unsettled(self) -> Iterator[tuple[int, Task]]:
        """(index, task) of every open task that has replicas, in index order."""
        tasks = self.tasks
        for i in sorted(self.placed):
            t = tasks[i]
            if t.state == TaskState.OPEN:
                yield i, t
            else:
                self.placed.discard(i)

    def _advance_settled(self) -> int:
        """Move ``settled_below`` past the tasks that have left ``OPEN`` since; returns it."""
        tasks, i = self.tasks, self.settled_below
        while i < len(tasks) and tasks[i].state != TaskState.OPEN:
            i += 1
        self.settled_below = i
        return i

    def open_tasks(self) -> Iterator[tuple[int, Task]]:
        """(index, task) of every open task, in order."""
        tasks = self.tasks
        i = self._advance_settled()
        for k in range(i, len(tasks)):
            if tasks[k].state == TaskState.OPEN:
                yield k, tasks[k]

    @property
    def deadline_ms(self) -> int:
        """Never, until the job has started (``submitted_ms`` 0: ``JobLedger._anchor``)."""
        if not self.submitted_ms:
            return NOT_STARTED_DEADLINE
        return self.submitted_ms + self.spec.deadline_s * 1000

    @property
    def lease_ms(self) -> int:
        return lease_for(self.spec.wall_ms)

    def counts(self) -> dict[str, Any]:
        """``accepted``: tasks with an agreed result, of which ``ok`` succeeded; ``failed``:
        agreed failures and tasks with no agreed result, by kind in ``failures``;
        ``agreed``: accepted tasks by how many distinct volunteers agreed (keys as text);
        ``checkpointed`` (only when some are): open tasks with an agreed checkpoint."""
        # A status query of a 100,000-task job runs on every committee member, once a second
        # while someone watches: the settled prefix (tasks below ``settled_below`` never
        # change again: no state goes back to OPEN, and an accepted task's replicas are final)
        # is counted once and kept; only the rest is walked each time.
        tasks = self.tasks
        end = self._advance_settled()
        done = self._settled_counts
        if done is None or done[0] > end:  # (a restore starts over: derived state)
            done = (0, Counter(), Counter(), Counter())
        below, c0, k0, a0 = done
        if below < end:
            c0, k0, a0 = c0.copy(), k0.copy(), a0.copy()
            _count(tasks, below, end, c0, k0, a0)
            done = (end, c0, k0, a0)
        self._settled_counts = done
        c, kinds, agreed = c0.copy(), k0.copy(), a0.copy()
        running, checkpointed = _count(tasks, end, len(tasks), c, kinds, agreed)
        ok = kinds.pop("OK", 0)
        out: dict[str, Any] = {"tasks": len(self.tasks), "accepted": c[TaskState.ACCEPTED], "ok": ok,
                "failed": sum(kinds.values()), "failures": dict(sorted(kinds.items())),
                "cancelled": c[TaskState.CANCELLED], "open": c[TaskState.OPEN], "running": running,
                "agreed": dict(sorted(agreed.items()))}
        if checkpointed:  # open tasks with an agreed checkpoint (resumable jobs only)
            out["checkpointed"] = checkpointed
        return out


def _count(tasks: list[Task], lo: int, hi: int, c: Counter[str], kinds: Counter[str],
           agreed: Counter[str]) -> tuple[int, int]:
    """Add tasks[lo:hi] to the state, outcome-kind and agreed counters; returns (running,
    checkpointed) among them."""
    running = checkpointed = 0
    for k in range(lo, hi):
        t = tasks[k]
        state = t.state
        c[state] += 1
        if state == TaskState.OPEN:
            running += any(r.outcome == ReplicaOutcome.PENDING and r.started for r in t.replicas)
            checkpointed += bool(t.checkpoints)
        elif state == TaskState.ACCEPTED:
            kinds[t.outcome_kind] += 1
            agreed[str(t.agreed)] += 1
        elif state == TaskState.FAILED:
            kinds[t.outcome_kind] += 1
    return running, checkpointed


def array_header(n: int) -> bytes:
    """The msgpack header of an n-item array (what ``packb`` writes before the items), so
    cached encodings of the items can be spliced into one canonical array."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def job_id(submitter_pk: bytes, operation: bytes) -> bytes:
    return hashlib.sha256(b"novacron/job-id/v1" + submitter_pk + operation).digest()
