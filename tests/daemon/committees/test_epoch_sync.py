"""Following the epoch chain by announcement and fetch, pure: whom a node behind asks, how
much, when it gives up on a peer, and how often it answers others."""

from __future__ import annotations

import pytest

from daemon.committees.epoch_sync import (FETCH_BATCH, FETCH_TIMEOUT_S, MAX_PEERS, SERVE_EVERY_S,
                                          SKIP_S, EpochSync, Fetch)
from daemon.committees.peer_pace import FLOOD_ASKS, AskFlood, PeerPace


def test_a_node_level_with_its_peers_asks_nothing():
    s = EpochSync()
    assert s.have("a", 5, 5, 0.0) is None and s.have("b", 3, 5, 0.0) is None
    assert not s.behind(5) and s.next(5, 100.0) is None


def test_a_node_behind_asks_the_peer_furthest_ahead_once_for_a_batch():
    s = EpochSync()
    assert s.have("a", 4, 1, 0.0) == Fetch("a", 1)
    assert s.have("b", 30, 1, 0.1) is None  # one fetch at a time
    assert s.behind(1)
    # the batch comes in: each notice keeps the fetch alive, the last one ends it
    for ours in (2, 3):
        assert s.progressed(ours, 1.0) is None
    assert s.progressed(4, 1.0) == Fetch("b", 4)  # a is done: b is further on
    for ours in range(5, 4 + FETCH_BATCH):
        assert s.progressed(ours, 2.0) is None
    assert s.progressed(4 + FETCH_BATCH, 2.0) == Fetch("b", 4 + FETCH_BATCH)


def test_catching_up_counts_from_two_epochs_behind_and_not_on_a_peer_that_failed_a_fetch():
    """What the health line says: one epoch behind is a fresh notice spreading; two or more
    is catching up; a peer that let our fetch time out (a liar, or a slow one) is not believed."""
    s = EpochSync()
    s.have("near", 6, 5, 0.0)
    assert s.catching_up_to(5) is None
    assert s.have("far", 9, 5, 0.0) is None  # asking "near" already
    assert s.catching_up_to(5) == 9
    s.next(5, FETCH_TIMEOUT_S)  # "near" brought nothing: skipped, "far" asked
    s.next(5, 2 * FETCH_TIMEOUT_S)  # nor did "far"
    assert set(s.skipped) == {"near", "far"} and s.catching_up_to(5) is None


def test_a_peer_that_lets_a_fetch_time_out_is_passed_over_for_a_while():
    s = EpochSync()
    assert s.have("slow", 9, 0, 0.0) == Fetch("slow", 0)
    s.have("other", 8, 0, 0.0)
    assert s.next(0, FETCH_TIMEOUT_S - 0.1) is None
    assert s.next(0, FETCH_TIMEOUT_S) == Fetch("other", 0)  # further on, but it failed us
    t = 2 * FETCH_TIMEOUT_S
    assert s.next(0, t) == Fetch("slow", 0)  # both failed us: the furthest on again
    assert s.next(0, t + SKIP_S) is not None


def test_progress_keeps_a_slow_batch_alive():
    s = EpochSync()
    s.have("a", 8, 0, 0.0)
    assert s.progressed(1, FETCH_TIMEOUT_S - 1) is None
    assert s.next(1, 2 * FETCH_TIMEOUT_S - 2) is None
    s.have("b", 8, 1, 0.0)
    assert s.next(1, 2 * FETCH_TIMEOUT_S - 1) == Fetch("b", 1)


def test_a_peer_that_disconnects_is_no_longer_asked():
    s = EpochSync()
    s.have("a", 9, 0, 0.0)
    s.have("b", 5, 0, 0.0)
    s.gone("a")
    assert s.next(0, 0.1) == Fetch("b", 0)  # without waiting for a's fetch to time out
    s.gone("b")
    assert not s.behind(0) and s.next(0, 99.0) is None


def test_fetches_are_answered_at_most_once_a_second_per_peer():
    s = EpochSync()
    assert s.may_serve("a", 0.0) and not s.may_serve("a", SERVE_EVERY_S - 0.01)
    assert s.may_serve("b", 0.5) and s.may_serve("a", SERVE_EVERY_S)


def test_what_is_remembered_of_peers_is_bounded():
    s = EpochSync()
    for k in range(MAX_PEERS + 10):
        s.have(f"p{k}", 1, 1, 0.0)
        s.may_serve(f"p{k}", 5.0 * k)
    assert len(s.heads) == MAX_PEERS and len(s.served.last) <= MAX_PEERS


def test_a_peer_refused_flood_asks_times_in_a_row_is_counted_and_one_answer_clears_it():
    """A correct peer asks once per fetch timeout; one asking without pause is flooding: the
    caller gets ``AskFlood`` (a fault against the asker), then the count starts again."""
    pace = PeerPace(1.0)
    assert pace.allow("p", 0.0)
    for _ in range(FLOOD_ASKS - 1):
        assert not pace.allow("p", 0.5)
    with pytest.raises(AskFlood):
        pace.allow("p", 0.5)
    assert not pace.allow("p", 0.6)  # counted afresh
    assert pace.allow("p", 1.0)  # answered: the refusals before do not count any more
    for _ in range(FLOOD_ASKS - 1):
        assert not pace.allow("p", 1.5)
    assert pace.allow("p", 2.0) and pace.refused == {}
    pace.forget("p")
    assert "p" not in pace.last
