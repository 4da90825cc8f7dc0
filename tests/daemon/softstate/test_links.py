"""The soft state's ``links`` object: our summary written, everyone's read, a bad one skipped,
each decoded once per value."""

from __future__ import annotations

from crdt import CrdtReplica
from daemon.links.summary import LinkEntry, LinkSummary, to_wire
from daemon.softstate.links import LINKS, LinkBook
from daemon.softstate.service import SCHEMA

ME, PEER = "A" * 52, "B" * 52


def test_written_read_cached_and_a_malformed_one_skipped() -> None:
    replica = CrdtReplica(ME, SCHEMA, session=1)
    book = LinkBook(replica, ME)
    assert book.summary(ME) is None and book.summaries() == {}
    summary = LinkSummary(ME, 1_000, (LinkEntry(PEER, 2e6, 0.3, 0.02, 4, 1.0, True),))
    book.publish(summary, now=0.0)
    first = book.summary(ME)
    assert first == summary and book.summary(ME) is first  # decoded once for this value
    assert book.predicted_to(PEER, [ME, PEER], 1_000)[ME].source == ME
    assert book.status()["published"][0]["peer"] == PEER
    replica.update(LINKS, lambda m, w: m.p_set(w, ME, [9, "not a summary"]), 2_000)
    assert book.summary(ME) is None and book.summaries() == {} and book.malformed == 1
    assert book.predicted_to(PEER, [ME], 2_000) == {}
    book.publish(LinkSummary(ME, 3_000, summary.entries), now=40.0)
    assert book.summaries()[ME].at_ms == 3_000 and book.malformed == 0
    assert to_wire(book.summaries()[ME]) == to_wire(LinkSummary(ME, 3_000, summary.entries))
