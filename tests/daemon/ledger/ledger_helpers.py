"""Building blocks for ledger tests: members, workers, candidates, requests."""

from __future__ import annotations

import random
from collections import Counter

from consensus.statemachine import ClientRequest
from daemon.capabilities import offered_runtimes
from daemon.ledger.placing import (expected_duration, majority_runtime, propose, retried_workers,
                                   task_runtime, used_workers)
from daemon.ledger.state import JobLedger
from daemon.sched import AvailabilityHistory, summarize
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops

NOW_MS = 1_750_000_000_000


def ident(i: int) -> NodeIdentity:
    return NodeIdentity(random.Random(1000 + i).randbytes(32))


MEMBERS = [ident(i) for i in range(4)]
WORKERS = [ident(100 + i) for i in range(8)]
SUBMITTER = ident(500)


class Harness:
    def __init__(self, **spec_overrides) -> None:
        self.ledger = JobLedger([m.public_key for m in MEMBERS], f=1)
        self.rid = 0
        self.tick_all(NOW_MS)
        self.spec_overrides = spec_overrides

    def call(self, who: NodeIdentity, op) -> dict:
        from protocol.canonical import unpackb

        self.rid += 1
        data = ops.encode_op(op)
        reply = self.ledger.apply(ClientRequest(who.public_key, self.rid, data, b""))
        return unpackb(reply)

    def submit(self, n_tasks=3, **kw) -> bytes:
        fields = dict(name="t", module_hash=b"\x01" * 32, module_size=100, argv=("t",),
                      inputs=tuple(ops.TaskInput(bytes([i]) * 32, 1, bytes([i])) for i in range(n_tasks)),
                      fuel=10**9, memory_pages=16, wall_ms=60_000, max_output=1024, replicas=2,
                      quorum=2, max_replicas=4, min_attestation=0, deadline_s=3600, clock_ns=0,
                      nonce=self.rid, total_tasks=n_tasks)
        fields.update(self.spec_overrides)
        fields.update(kw)
        fields["total_tasks"] = kw.get("total_tasks", len(fields["inputs"]))
        reply = self.call(SUBMITTER, ops.Submit(**fields))
        assert "job" in reply, reply
        if self.ledger.anchoring is not None:
            self.read_clocks()  # a job submitted to an idle shard starts at the next reading
        return reply["job"]

    def read_clocks(self) -> None:
        """Every member reports its clock, one millisecond on (as a committee does at once
        when a job comes to an idle shard)."""
        self.tick_all(max(self.ledger.member_clock.values(), default=NOW_MS) + 1)

    def tick_all(self, now_ms: int) -> None:
        """Every member reports its clock reading ``now_ms``."""
        for m in MEMBERS:
            self.call(m, ops.Tick(now_ms))

    def reputation(self) -> dict[str, float]:
        """What a proposal scores workers with when it names no period (basis 0): now."""
        return self.ledger.basis.reputations(0, self.ledger.workers) or {}

    def candidates(self, workers=WORKERS, domains=None,
                   runtimes=None) -> tuple[ops.CandidateWire, ...]:
        """``runtimes``: node id -> its exact runtime id (default: all run "r1")."""
        now_s = NOW_MS / 1000
        hist = AvailabilityHistory().started(now_s - 30 * 86400).alive(now_s)
        summary = summarize(hist, now_s).to_wire()
        return tuple(
            ops.CandidateWire(w.node_id, summary, 4, 4096,
                              offered_runtimes((runtimes or {}).get(w.node_id, "r1")), 0, 0, 10,
                              (domains or {}).get(w.node_id, f"d{i}"), 0)
            for i, w in enumerate(workers))

    def place_all(self, job: bytes, workers=WORKERS, cands=None) -> dict:
        return self.call(MEMBERS[0], self.proposal(job, cands or self.candidates(workers)))

    def proposal(self, job: bytes, cands, tasks=None, basis=None) -> ops.Place:
        """A member's ``Place`` for ``tasks`` (default: every task with open slots), scored
        with the reputation of period ``basis`` (default: the latest kept, as a planner)."""
        jobrec = self.ledger.jobs[job]
        assignments = []
        extra: Counter = Counter()
        duration = expected_duration(jobrec.spec, jobrec.runtimes_ms)
        majority = majority_runtime(cands)
        basis = self.ledger.basis.latest if basis is None else basis
        reputation = self.ledger.basis.reputations(basis, self.ledger.workers) or {}
        for i in range(len(jobrec.tasks)) if tasks is None else tasks:
            task = jobrec.tasks[i]
            slots = self.ledger.open_slots(jobrec, task)
            if slots:
                _, a = propose(job, i, jobrec.spec, slots, cands, used_workers(task), reputation,
                               self.ledger.now_ms, duration, task_runtime(task, majority), extra,
                               retried_workers(task))
                assignments.append(a)
                extra.update(a.workers)
        return ops.Place(job, self.ledger.now_ms, duration[0], cands, tuple(assignments), basis)

    def worker(self, node_id: str) -> NodeIdentity:
        return next(w for w in WORKERS if w.node_id == node_id)

    def report(self, job: bytes, task: int, replica: int, output: bytes, status: int = 0,
               exit_code: int = 0) -> dict:
        rep = self.ledger.jobs[job].tasks[task].replicas[replica]
        return self.call(self.worker(rep.worker), ops.Result(job, task, replica, status, exit_code,
                                                             output.ljust(32, b"\0")[:32],
                                                             len(output), 5, ""))
