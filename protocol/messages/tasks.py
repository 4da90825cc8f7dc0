"""Work for volunteers: an offer of a task, and the worker's signed result digest.

The result bytes travel as a blob; only their digest goes to the committee.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.schema import message
from protocol.types import U32, U64, Digest, NodeIdText, Text


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
    job_id: Digest
    task_index: U32
    replica: U32
    module_hash: Digest
    input_hash: Digest
    fuel: U64
    memory_pages: U32
    wall_ms: U64
    deadline_ms: U64
    submitter: NodeIdText


@message("task.result", 1)
@dataclass(frozen=True, slots=True)
class TaskResult:
    job_id: Digest
    task_index: U32
    replica: U32
    status: TaskStatus
    output_hash: Digest
    output_size: U64
    fuel_used: U64
    wall_ms: U64
    detail: Text
