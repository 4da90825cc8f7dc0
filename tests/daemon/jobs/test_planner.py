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
