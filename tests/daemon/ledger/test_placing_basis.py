"""Placement scores reputation as of a named period, so results agreed while a proposal is
ordered do not make every replica refuse it (``reputation.PlacingBasis``)."""

from __future__ import annotations

import copy
import dataclasses

from daemon.ledger.reputation import BASIS_PERIOD_MS, PlacingBasis, WorkerRecord
from daemon.ledger.state import JobLedger
from protocol.canonical import packb
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskStatus

from .ledger_helpers import MEMBERS, NOW_MS, Harness


def at(h: Harness, ms: int) -> None:
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS + ms))


def agree(h: Harness, job: bytes, task: int) -> None:
    for k in range(len(h.ledger.jobs[job].tasks[task].replicas)):
        h.report(job, task, k, b"out")


def test_a_proposal_made_before_results_agreed_is_accepted_after_them():
    h = Harness()
    job = h.submit(12)
    cands = h.candidates()
    assert h.call(MEMBERS[0], h.proposal(job, cands, tasks=range(2)))["placed"] == 2
    in_flight = h.proposal(job, cands, tasks=range(2, 12))  # the primary's next proposal...
    at_execution = dataclasses.replace(in_flight, basis=0)
    agree(h, job, 0)  # ... while the first results are agreed: four workers gain reputation
    agree(h, job, 1)
    assert {h.ledger.workers[w].reputation for w in h.ledger.workers} == {2 / 3}

    # Scored with the reputation at execution, most of it is "not the best placement" ...
    reply = copy.deepcopy(h).call(MEMBERS[0], at_execution)
    assert reply["placed"] < 5 and "not the best placement" in str(reply["refused"]), reply
    # ... with the reputation of the period it names, every replica accepts all of it.
    reply = h.call(MEMBERS[0], in_flight)
    assert reply == {"placed": 10, "refused": []}, reply


def test_a_worker_that_falls_counts_lower_at_once():
    h = Harness()
    job = h.submit(4)
    h.place_all(job)
    rep = h.ledger.jobs[job].tasks[0].replicas[0]
    h.report(job, 0, 0, b"", status=int(TaskStatus.CRASHED))  # a node fault: a timeout counted
    basis = h.ledger.basis.latest
    assert h.ledger.basis.kept[-1][1] == {}  # the period began before any record
    now = h.ledger.basis.reputations(basis, h.ledger.workers)
    assert now is not None and now[rep.worker] == h.ledger.workers[rep.worker].reputation < 0.5


def test_a_proposal_may_name_the_last_two_periods_and_no_older():
    h = Harness()
    job = h.submit(6)
    cands = h.candidates()
    old = h.proposal(job, cands, tasks=[0])
    at(h, BASIS_PERIOD_MS)
    previous = h.proposal(job, cands, tasks=[1])
    assert previous.basis == old.basis + 1
    at(h, 2 * BASIS_PERIOD_MS)
    assert h.call(MEMBERS[0], previous)["placed"] == 1
    reply = h.call(MEMBERS[0], old)
    assert "no longer kept" in reply["error"] and "propose again" in reply["error"], reply


def test_the_basis_is_replicated_state():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    agree(h, job, 0)
    at(h, BASIS_PERIOD_MS)
    snap = h.ledger.snapshot()
    assert snap == packb(h.ledger.snapshot_wire(), maps=False)
    again = JobLedger([m.public_key for m in MEMBERS], f=1)
    again.restore(snap)
    assert again.snapshot() == snap
    assert again.basis.to_wire() == h.ledger.basis.to_wire() and len(again.basis.kept) == 2
    assert PlacingBasis.from_wire(h.ledger.basis.to_wire()).kept[-1][1] == {
        w: WorkerRecord(*r.to_wire()) for w, r in h.ledger.workers.items()}
