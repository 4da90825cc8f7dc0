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


def test_links_to_this_node_read_its_live_table_not_its_last_publication() -> None:
    """An FL round fetches every client's update, then plans the next round at once: the
    summary published up to 30 s before does not yet hold what those fetches measured."""
    replica = CrdtReplica(ME, SCHEMA, session=1)
    book = LinkBook(replica, ME)
    live = {"entries": ()}
    book.source = lambda now_ms: LinkSummary(ME, now_ms, live["entries"])
    book.publish(book.source(0), now=0.0)  # nothing measured when last published
    assert book.predicted_to(ME, [PEER], 1_000) == {}
    live["entries"] = (LinkEntry(PEER, 1.2e5, 0.3, 0.04, 2, 0.0, False),)
    got = book.predicted_to(ME, [PEER], 2_000)[PEER]
    assert got.source == ME and got.bandwidth == 1.2e5
    # links between two other nodes still come from what they published
    assert book.predicted_to(PEER, [ME], 2_000) == {}
