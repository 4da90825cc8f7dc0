"""Checkpoints as agreed progress: which of a task's checkpoints a quorum vouches for, and which
replica a checkpoint catches. Pure.

A resumable task's replicas report each checkpoint's digest (``ops.CheckpointReport``); honest
replicas checkpoint after the same step with byte-identical state (``daemon.runtime.resumable``),
so their digests match. The rules:

- **agreed**: checkpoint ``seq`` is recorded once ``quorum`` live replicas reported the same
  digest for it. Agreed checkpoints only move forward; the ledger keeps the last
  ``AGREED_WINDOW`` of them (the newest is where a task resumes).
- **caught**: a live replica that reported a different digest for an agreed checkpoint is
  *disagreed* there, mid-run, not at the end: its worker's reputation falls as for a wrong
  result (``disagreed`` + 1, clean run reset), its replica is dropped, and its slot is placed
  again, resuming from the agreed checkpoint. So a cheater wastes at most one checkpoint
  interval of the task, and cannot ride a long task to its end.
- **split**: every live replica has reported a checkpoint beyond the agreed one, they disagree
  and none has a quorum (two replicas, two digests): nobody can tell who is wrong, so the task
  asks for one more replica (within ``max_replicas``); it resumes from the last agreed
  checkpoint, reaches the disputed one, and its report decides.

Reports are bounded: a replica keeps its last ``REPORT_WINDOW`` reports, each must have a
higher ``seq`` than the one before.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

REPORT_WINDOW = 8
AGREED_WINDOW = 16
"""At least the runtime's key-frame spacing, so the chain a new replica resumes from (the last
key frame to the newest agreed checkpoint) is always in the ledger."""


class CheckpointMark(NamedTuple):
    """One checkpoint as a replica reported it, or as the ledger agreed it."""

    seq: int
    digest: bytes
    steps: int
    fuel_used: int
    blob: bytes = b""
    """SHA-256 of its compressed bytes (the reporter's; the submitter's node keeps them)."""
    keyframe: bool = False


def marks_from_wire(v: object) -> list[CheckpointMark]:
    if not isinstance(v, list):
        return []
    return [CheckpointMark(int(m[0]), bytes(m[1]), int(m[2]), int(m[3]), bytes(m[4]),
                           bool(m[5])) for m in v]


def marks_to_wire(marks: list[CheckpointMark]) -> list[list[object]]:
    return [list(m) for m in marks]


def settle(agreed: list[CheckpointMark], reports: dict[int, list[CheckpointMark]],
           quorum: int) -> tuple[list[CheckpointMark], list[tuple[int, int]]]:
    """New agreed checkpoints and the replicas caught, from the live replicas' ``reports``
    (replica index -> its recent reports). Returns (newly agreed, ascending; [(replica, seq)])."""
    latest = agreed[-1].seq if agreed else -1
    votes: dict[int, Counter[bytes]] = {}
    first: dict[tuple[int, bytes], CheckpointMark] = {}
    for marks in reports.values():
        for m in marks:
            if m.seq > latest:
                votes.setdefault(m.seq, Counter())[m.digest] += 1
                first.setdefault((m.seq, m.digest), m)
    new: list[CheckpointMark] = []
    for seq in sorted(votes):
        digest, count = max(votes[seq].items(), key=lambda kv: (kv[1], kv[0]))
        if count >= quorum:
            new.append(first[(seq, digest)])
    known = {m.seq: m.digest for m in agreed + new}
    caught = []
    for k, marks in sorted(reports.items()):
        wrong = [m.seq for m in marks if m.seq in known and known[m.seq] != m.digest]
        if wrong:
            caught.append((k, wrong[0]))
    return new, caught


def resume_chain(agreed: list[CheckpointMark]) -> tuple[tuple[bytes, ...], bytes]:
    """The blobs a new replica resumes from (the last key frame up to the newest agreed
    checkpoint, with no gap) and the digest they must end at; ``((), b"")`` if there is none."""
    for i in range(len(agreed) - 1, -1, -1):
        if agreed[i].keyframe:
            chain = agreed[i:]
            if all(b.seq == a.seq + 1 for a, b in zip(chain, chain[1:])):
                return tuple(m.blob for m in chain), chain[-1].digest
            break
    return (), b""


def needs_tiebreak(agreed: list[CheckpointMark], reports: dict[int, list[CheckpointMark]],
                   quorum: int) -> bool:
    """Every live replica reported beyond the agreed checkpoint and, at the first checkpoint
    they all reached, no digest has a quorum and they differ: one more replica must decide."""
    if len(reports) < 2 or any(not marks for marks in reports.values()):
        return False
    latest = agreed[-1].seq if agreed else -1
    reached = min(marks[-1].seq for marks in reports.values())
    for seq in range(latest + 1, reached + 1):
        at = [m.digest for marks in reports.values() for m in marks if m.seq == seq]
        if len(at) == len(reports) and len(set(at)) > 1:
            return max(Counter(at).values()) < quorum
    return False
