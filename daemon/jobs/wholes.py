"""Whole jobs split across shards, as their submitter keeps and submits them (the trio side).

The plan and the combined view are pure (``daemon.jobs.split``). Here: the whole -> parts
record in this node's SQLite database (it survives a restart; each part is also an ordinary
``LocalJob`` marked with its whole, so votes, certificates and outputs flow as for any job), and
submitting the parts, each to its own shard's committee, at once.

A submission is all or nothing for the user: when a committee refuses a part (or cannot be
reached), the parts already accepted are cancelled and the submission is refused with the
part's reason; the whole stays listed as refused (``novacron jobs``, ``status``), so nothing
runs, or is lost, out of sight.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import trio

from daemon.jobs.spec import JobSpec
from daemon.jobs.split import Part, grind_nonce, plan, whole_id
from daemon.jobs.submitter import (NS_JOBS, LocalJob, SubmitterDuties, Unplaceable, needs_of,
                                   to_submit)
from daemon.ledger.records import job_id
from protocol.canonical import packb, unpackb
from protocol.messages import ledger as ops

log = logging.getLogger("novacron.jobs")

NS_WHOLES = "wholes"


@dataclass
class WholeJob:
    """A job the user submitted as one and the network runs as ``parts`` (one per shard)."""
    id: bytes
    name: str
    tasks: int
    submitted_ms: int
    combine: str
    source: str
    parts: list[Part] = field(default_factory=list)
    refused: str = ""
    """Why the submission was refused (its parts then cancelled); empty: it was accepted."""

    def to_bytes(self) -> bytes:
        return packb([self.id, self.name, self.tasks, self.submitted_ms, self.combine, self.source,
                      [[p.index, p.first, p.count, p.shard, p.job] for p in self.parts],
                      self.refused])

    @classmethod
    def from_bytes(cls, data: bytes) -> WholeJob:
        i, name, tasks, ms, combine, source, parts, refused = unpackb(data)[:8]
        return cls(i, name, tasks, ms, combine, source, [Part(*p) for p in parts], refused)

    def to_json(self) -> list[dict[str, Any]]:
        """The parts as ``job.json`` lists them (``split.parts_of`` reads them back)."""
        return [{"part": p.index, "job": p.job.hex(), "shard": p.shard, "first": p.first,
                 "tasks": p.count} for p in self.parts]


@dataclass(frozen=True)
class _Built:
    """A part ready to submit: its ``Submit``, further input chunks, and blobs to keep."""
    part: Part
    op: ops.Submit
    more: list[Any]
    blobs: list[bytes]


class WholeJobs:
    """The whole jobs submitted from this node, over its ``SubmitterDuties``."""

    def __init__(self, submitter: SubmitterDuties) -> None:
        self.submitter = submitter
        self.db = submitter.db
        self.jobs: dict[bytes, WholeJob] = {}
        for _, raw in self.db.scan(NS_WHOLES):
            w = WholeJob.from_bytes(raw)
            self.jobs[w.id] = w

    def _keep(self, whole: WholeJob) -> None:
        with self.db.transaction():
            self.db.put(NS_WHOLES, whole.id, whole.to_bytes())
        self.jobs[whole.id] = whole

    def certified(self, whole: WholeJob) -> int:
        return sum(len(j.certified) for p in whole.parts
                   if (j := self.submitter.jobs.get(p.job)) is not None)

    def build(self, spec: JobSpec, count: int, shards: int,
              nonce: int) -> tuple[WholeJob, list[_Built]]:
        """The parts of ``spec`` (pure but for hashing): each part's ``Submit`` with a nonce
        that puts its id in its shard, its further input chunks, and its blobs to keep."""
        pk = self.submitter.identity.public_key
        built: list[_Built] = []
        for k, p in enumerate(plan(len(spec.inputs), count, shards, nonce % shards)):
            sub = dataclasses.replace(spec, inputs=spec.inputs[p.first:p.first + p.count])
            op, more, blobs = to_submit(sub, 0)
            n, jid = grind_nonce(lambda n: job_id(pk, ops.encode_op(dataclasses.replace(op, nonce=n))),
                                 p.shard, shards, nonce + k * 1_000_003)
            built.append(_Built(dataclasses.replace(p, job=jid), dataclasses.replace(op, nonce=n),
                                more, blobs))
        parts = [b.part for b in built]
        whole = WholeJob(whole_id(parts), spec.name, len(spec.inputs),
                         int(self.submitter.clock.wall() * 1000), spec.combine, spec.source, parts)
        return whole, built

    async def submit(self, spec: JobSpec, count: int, shards: int) -> WholeJob:
        """Submit ``spec`` as ``count`` parts on ``shards`` shards, all at once. Raises
        ``Unplaceable`` as ``submit_job`` does; a refused part leaves ``whole.refused`` set."""
        sub = self.submitter
        verdict = sub.assess(needs_of(spec))
        if verdict.refuse:
            raise Unplaceable(verdict.refuse)
        whole, built = await trio.to_thread.run_sync(
            self.build, spec, count, shards, int.from_bytes(os.urandom(8), "big") >> 1)
        for b in built:  # each part holds its blobs (the module too): kept until all let go
            sub.pins.hold(b.part.job, [sub.blobs.store.put(data, pin=True) for data in b.blobs])
        self._keep(whole)  # before any part is ordered: a restart finds what was asked
        outcome: dict[int, str] = {}

        async def one(part: Part, op: ops.Submit, more: list[Any]) -> None:
            try:
                reply = await sub.ledger.order(part.shard, op)
                first = len(op.inputs)
                for chunk in more:
                    if "error" in reply:
                        break
                    reply = await sub.ledger.order(part.shard, ops.AddInputs(part.job, first, chunk))
                    first += len(chunk)
            except Exception as err:  # noqa: BLE001 - CommitteeUnavailable, QueueFull: the part's
                outcome[part.index] = f"its committee could not be reached: {err}"
                return
            if "error" in reply:
                outcome[part.index] = f"its committee refused it: {reply['error']}"
                return
            job = LocalJob(part.job, spec.name, part.shard, part.count, whole.submitted_ms,
                           spec.combine, spec.source, list(dataclasses.astuple(needs_of(spec)))[:3],
                           whole=whole.id)
            with sub.db.transaction():
                sub.db.put(NS_JOBS, job.id, job.to_bytes())
            sub.jobs[job.id] = job

        async with trio.open_nursery() as nursery:
            for b in built:
                nursery.start_soon(one, b.part, b.op, b.more)
        if outcome:
            bad = whole.parts[min(outcome)]
            whole.refused = (f"part {bad.index + 1} of {len(whole.parts)} ({bad.words()}): "
                             f"{outcome[bad.index]}")
            await self.cancel_parts(whole)
            self._keep(whole)
        return whole

    async def cancel_parts(self, whole: WholeJob) -> dict[int, str]:
        """Cancel every part this node has (best effort); each part's state or error."""
        states: dict[int, str] = {}
        for p in whole.parts:  # also a part whose submission timed out: it may have landed
            try:
                reply = await self.submitter.ledger.order(p.shard, ops.Cancel(p.job))
            except Exception as err:  # noqa: BLE001 - one unreachable shard must not stop the rest
                states[p.index] = f"not cancelled: {err}"
                log.warning("could not cancel part %d of %s: %s", p.index, whole.id.hex()[:12], err)
                continue
            if "no job" in str(reply.get("error", "")):
                states[p.index] = "never accepted"
                self.submitter.pins.release(p.job)  # no part job here will ever settle it
            else:
                states[p.index] = str(reply.get("state", reply.get("error", "?")))
        return states
