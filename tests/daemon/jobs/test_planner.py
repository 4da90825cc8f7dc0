"""``daemon.jobs.planner``: the job's typical output size, which placement's link cost uses,
and the mirrors an offer names."""

from __future__ import annotations

import dataclasses

import pytest

from daemon.jobs.planner import expected_output_bytes, mirrors, offer
from protocol.errors import LocalProtocolError
from protocol.messages.tasks import MAX_MIRRORS, TaskOffer, TaskStatus
from protocol.schema import encode_body, struct_spec

from tests.daemon.ledger.ledger_helpers import Harness


def test_the_median_accepted_output_and_zero_before_any() -> None:
    h = Harness()
    job = h.submit(4)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    assert expected_output_bytes(rec) == 0
    for task, size in ((0, 100), (1, 3000), (2, 200)):
        for replica in range(len(rec.tasks[task].replicas)):
            h.report(job, task, replica, b"x" * size)
    assert [t.accepted is not None for t in rec.tasks] == [True, True, True, False]
    assert expected_output_bytes(rec) == 200


def test_an_offer_names_the_workers_of_the_tasks_earlier_replicas_as_mirrors() -> None:
    """A worker that cannot reach the submitter (both behind NAT) fetches the module and input
    from the workers that started the task before it: named in the offer, from the ledger,
    the same at every member; never itself, never one that did not start, at most four."""
    h = Harness(max_replicas=8)
    job = h.submit(1)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    task = rec.tasks[0]
    assert mirrors(task, 0) == () and mirrors(task, 1) == ()  # nobody started yet
    task.replicas[0].started = True
    assert mirrors(task, 1) == (task.replicas[0].worker,)
    got = offer(rec, 0, 1, 0, 0)
    assert got.mirrors == (task.replicas[0].worker,)
    # a replica that ended without a result may never have fetched anything
    h.report(job, 0, 0, b"", status=int(TaskStatus.CRASHED))
    assert mirrors(task, 1) == ()
    assert struct_spec(TaskOffer).decode(encode_body(got)) == got
    with pytest.raises(LocalProtocolError):
        encode_body(dataclasses.replace(got, mirrors=("x" * 52,) * (MAX_MIRRORS + 1)))



def test_an_offer_names_workers_of_the_jobs_other_tasks_as_module_holders() -> None:
    """The submitter's uplink alone served every first fetch of a job's module: the offer
    also names workers that ran another of its tasks (they hold the module), a different
    turn of them for each task, never this replica's worker or the task's own mirrors; the
    worker asks the submitter, mirrors and holders in a turn chosen by the task index."""
    from daemon.jobs.planner import job_holders
    from daemon.jobs.worker import module_sources

    h = Harness()
    job = h.submit(8)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    assert job_holders(rec) == [] and offer(rec, 5, 0, 0, 0).holders == ()
    for task in (0, 1):  # two tasks ran: their four workers hold the module
        for k in range(2):
            h.report(job, task, k, b"out")
    ran = job_holders(rec)
    assert len(ran) == 4 and set(ran) == {r.worker for t in rec.tasks[:2] for r in t.replicas}
    offers = [offer(rec, t, k, 0, 0) for t in range(2, 8) for k in range(2)]
    for o in offers:
        me = rec.tasks[o.task].replicas[o.replica].worker
        assert o.holders and me not in o.holders and set(o.holders) <= set(ran)
    assert len({o.holders[0] for o in offers}) > 1  # the tasks of a wave ask different ones
    assert offer(rec, 3, 0, 0, 0, job_holders(rec)) == offer(rec, 3, 0, 0, 0)

    o = offers[0]
    firsts = {module_sources(dataclasses.replace(o, task=t))[0] for t in range(8)}
    assert firsts == {o.submitter, *o.holders}
    assert sorted(module_sources(o)) == sorted([o.submitter, *o.holders])


def test_offers_go_in_messages_bounded_by_bytes_as_well_as_count() -> None:
    """256 offers with 16 KB of argv each would be 4 MB in one message, over any frame: they
    are cut at ``MESSAGE_BYTES``; small ones still go 256 to a message."""
    from daemon.jobs.planner import MAX_PER_MESSAGE, MESSAGE_BYTES, in_messages
    from protocol.canonical import packb

    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    small = offer(h.ledger.jobs[job], 0, 0, 0, 0)
    big = dataclasses.replace(small, argv=("a" * 256,) * 64)
    groups = list(in_messages([big] * 256))
    assert sum(len(g) for g in groups) == 256 and len(groups) > 1
    for g in groups:
        assert len(packb([encode_body(o) for o in g])) <= MESSAGE_BYTES + 64
    assert [len(g) for g in in_messages([small] * 300)] == [MAX_PER_MESSAGE, 300 - MAX_PER_MESSAGE]


def test_an_offer_whose_worker_reported_nothing_is_sent_again_with_a_doubling_wait() -> None:
    """Offers go once, after the placing batch, and a worker runs one only when f+1 members'
    copies arrived: a replica whose worker reported nothing 20 s (ledger time) after its
    placement is offered again, then after 40 s, 80 s...; a started one never is."""
    from daemon.jobs.planner import OFFER_RESEND_S, OFFER_RESEND_SCAN_S, OfferResends
    from protocol.messages import ledger as ops
    from tests.daemon.ledger.ledger_helpers import MEMBERS

    h = Harness()
    job = h.submit(2)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    placed = rec.tasks[0].replicas[0].placed_ms
    started = rec.tasks[1].replicas[0]
    h.call(h.worker(started.worker), ops.Start(job, 1, 0))
    resends, now = OfferResends(), 0.0

    def at(ms: int) -> dict:
        nonlocal now
        for m in MEMBERS:
            h.call(m, ops.Tick(placed + ms))
        now += OFFER_RESEND_SCAN_S
        return resends.due(0, 1, h.ledger, now)

    assert at(19_000) == {}
    again = at(int(OFFER_RESEND_S * 1000))
    sent = sorted((w, o.task, o.replica) for w, offers in again.items() for o in offers)
    # every unstarted replica of both tasks, never task 1's started one
    assert sent == sorted((r.worker, i, k) for i in (0, 1) for k, r in
                          enumerate(rec.tasks[i].replicas) if (i, k) != (1, 0))
    first = again[rec.tasks[0].replicas[0].worker][0]
    assert first == offer(rec, first.task, first.replica, 0, 1)  # as every member builds it
    assert at(50_000) == {}  # the next one waits 40 s
    assert at(60_000) != {}
    assert at(100_000) == {} and at(140_000) != {}  # then 80 s
    h.call(h.worker(rec.tasks[0].replicas[0].worker), ops.Start(job, 0, 0))
    later = at(170_000)  # (0, 1) was due at 140 s and waits 160 s now: only the others' due
    assert later == {} and 0 < 170_000 < rec.tasks[0].replicas[1].lease_ms - placed
    assert (0, job, 0, 1) in resends.due_ms and (0, job, 0, 0) not in resends.due_ms
