"""A submitter that missed votes asks again (``AskVotes``): members vote for accepted tasks."""

from __future__ import annotations

from daemon.jobs import planner
from daemon.ledger.events import VotesAsked
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, SUBMITTER, WORKERS, Harness


def _accept_first(h: Harness, job: bytes) -> None:
    h.place_all(job)
    for k in range(2):
        h.report(job, 0, k, b"out")


def test_the_submitter_gets_votes_again_for_accepted_tasks_only():
    h = Harness()
    job = h.submit(3)
    _accept_first(h, job)
    h.ledger.drain_events()
    reply = h.call(SUBMITTER, ops.AskVotes(job, (0, 1, 2, 99)))
    assert reply["asked"] == 1 and reply["state"] == "open"
    events = h.ledger.drain_events()
    assert events == [VotesAsked(job, (0,))]
    out = planner.announce(events, h.ledger, 0, 1, MEMBERS[1], "net")
    (votes,) = out.votes.values()
    assert [v.task for v in votes] == [0] and votes[0].agreed == 2


def test_only_the_submitter_may_ask():
    h = Harness()
    job = h.submit(1)
    _accept_first(h, job)
    assert "submitter" in h.call(WORKERS[0], ops.AskVotes(job, (0,)))["error"]
    assert "no job" in h.call(SUBMITTER, ops.AskVotes(b"\x00" * 32, (0,)))["error"]
