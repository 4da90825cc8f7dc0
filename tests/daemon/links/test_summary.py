"""The published link summary: bounded, checked on the way in, read from either end."""

from __future__ import annotations

import math
from dataclasses import replace
import random

import pytest

from daemon.links import LinkTable, predict, summarize
from daemon.links.summary import (MAX_PEERS, MAX_SUMMARY_BYTES, LinkEntry, LinkSummary, changed,
                                  from_wire, to_wire)
from protocol.canonical import packb
from protocol.errors import MalformedMessage

ID = "12D3KooW"  # node ids are 52-character base58 peer ids


def node(i: int) -> str:
    return f"{ID}{i:044d}"


def fed(peers: dict[str, float], *, transfers: int = 5, now: float = 100.0) -> LinkTable:
    """A table fed as the blob service feeds it: 256 KiB chunks at each peer's rate."""
    table = LinkTable()
    for peer, rate in peers.items():
        table.rtt(peer, 0.05, now)
        for k in range(transfers):
            table.observe(peer, 256 * 1024, 0.05 + 256 * 1024 / rate, now + k)
    return table


def test_at_most_max_peers_the_best_measured_and_within_the_byte_cap() -> None:
    rng = random.Random(7)
    table = LinkTable()
    for i in range(40):  # more peers than a summary takes, some measured more often
        for k in range(1 + i % 5):
            table.observe(node(i), 64 * 1024, rng.uniform(0.01, 2.0), 10.0 + k)
    s = summarize(table, node(999), now=20.0, now_ms=1_000)
    assert len(s.entries) == MAX_PEERS
    assert min(e.samples for e in s.entries) == 5  # the most-measured were kept
    wire = to_wire(s)
    assert len(packb(wire)) <= MAX_SUMMARY_BYTES
    back = from_wire(wire, node(999))
    assert [e.peer for e in back.entries] == sorted(e.peer for e in s.entries)
    for a, b in zip(back.entries, s.entries):
        assert a.bandwidth == pytest.approx(b.bandwidth, rel=1e-6, abs=1)
        assert a.log_sd == pytest.approx(b.log_sd, abs=1e-3)


def test_longest_peer_ids_still_fit() -> None:
    table = LinkTable()
    for i in range(MAX_PEERS + 3):
        table.observe("x" * 60 + f"{i:04d}", 10**6, 1e-6, 1.0)  # 64 chars, 10^12 B/s
        table.rtt("x" * 60 + f"{i:04d}", 1000.0, 1.0)
    wire = to_wire(summarize(table, "me", now=10**9, now_ms=2**62))
    assert len(packb(wire)) <= MAX_SUMMARY_BYTES


GOOD_ROW = [node(1), 1, 1, 1, 1, 1, 0]


def _row(**change: object) -> list[object]:
    names = ("peer", "bw", "sd", "rtt", "samples", "age", "fitted")
    return [change.get(n, v) for n, v in zip(names, GOOD_ROW)]


def test_a_good_row_reads() -> None:
    s = from_wire([1, 0, [GOOD_ROW]], node(0))
    assert s.entries[0].peer == node(1) and not s.entries[0].fitted


@pytest.mark.parametrize("bad", [
    None, [], [2, 0, []], [1, -1, []], [1, 0, "rows"], [1, 0, [GOOD_ROW] * 2],
    [1, 0, [_row(bw=0)]], [1, 0, [_row(samples=0)]], [1, 0, [_row(bw=1.5)]],
    [1, 0, [_row(peer="x" * 65)]], [1, 0, [_row(peer=node(0))]],  # a link to itself
    [1, 0, [_row(peer=node(i)) for i in range(1, MAX_PEERS + 2)]],
    [1, 0, [GOOD_ROW[:6]]], [1, 0, [_row(bw=True)]], [1, 0, [_row(fitted=2)]],
    [1, 0, [_row(sd=-1)]], [1, 0, [_row(rtt=-2)]],
])
def test_a_malformed_summary_is_refused(bad: object) -> None:
    with pytest.raises(MalformedMessage):
        from_wire(bad, node(0))


def test_republished_only_when_a_reader_would_notice() -> None:
    base = fed({node(1): 1e6, node(2): 5e5})
    s1 = summarize(base, "me", 110.0, 0)
    assert changed(None, s1)
    assert not changed(s1, summarize(base, "me", 110.0, 5_000))
    assert not changed(None, summarize(LinkTable(), "me", 0.0, 0))  # nothing to say
    more = fed({node(1): 1e6, node(2): 5e5, node(3): 1e6})
    assert changed(s1, summarize(more, "me", 110.0, 0))  # a new peer
    slower = fed({node(1): 2e5, node(2): 5e5}, transfers=10)
    assert changed(s1, summarize(slower, "me", 110.0, 0))  # throughput moved


def test_predicted_from_the_direction_itself_else_the_other_end() -> None:
    a, b, c = node(1), node(2), node(3)
    sa = summarize(fed({b: 2e6}, transfers=8), a, 110.0, 1_000_000)  # a fetched from b
    sb = summarize(fed({a: 4e5}, transfers=2), b, 110.0, 1_000_000)  # b fetched from a
    summaries = {a: sa, b: sb}
    p = predict(summaries, b, a, 1_000_000)  # data from b to a: a measured that direction
    assert p is not None and p.source == a and p.bandwidth == pytest.approx(2e6, rel=0.05)
    q = predict(summaries, a, b, 1_000_000)  # from a to b: b's own measurement, though fewer
    assert q is not None and q.source == b and q.bandwidth == pytest.approx(4e5, rel=0.05)
    assert p.low < p.bandwidth and p.rtt_s == pytest.approx(0.05)
    assert predict(summaries, a, c, 1_000_000) is None
    only_a = predict({a: sa}, a, b, 1_000_000)  # b published nothing: the reverse direction
    assert only_a is not None and only_a.source == a
    # a day-old summary is less sure: its spread and conservative figure say so
    old = predict({a: LinkSummary(a, 1_000_000 - 86_400_000, sa.entries)}, b, a, 1_000_000)
    assert old is not None and old.age_s >= 86_400 and old.log_sd > p.log_sd
    assert old.low < p.low and math.isfinite(old.low)


def test_latency_and_throughput_fitted_apart_when_sizes_differ() -> None:
    """A busy LAN: every request pays 0.4 s whatever its size, the bytes cost nothing. The
    log-throughput of one size reads that as a slow link; the fit over sizes does not."""
    from daemon.links.estimate import fit_latency

    rng = random.Random(3)
    table = LinkTable()
    for k in range(12):
        n = rng.choice([1_500, 5_200, 9_800, 30_000])
        table.observe("lan", n, 0.4 + rng.uniform(-0.05, 0.05), float(k))
    latency, bandwidth = table.fit("lan")  # type: ignore[misc]
    assert 0.3 < latency < 0.5 and bandwidth > 1e6
    s = summarize(table, "me", 12.0, 0)
    (e,) = s.entries
    assert e.fitted and e.bandwidth > 1e6 and 0.3 < e.rtt_s < 0.5  # type: ignore[operator]
    # a slow uplink with a 50 ms round trip: the fit finds both
    slow = [(n, 0.05 + n / 60e3) for n in (2_000, 5_000, 20_000, 64_000, 5_000)]
    latency, bandwidth = fit_latency(slow)  # type: ignore[misc]
    assert latency == pytest.approx(0.05, abs=1e-6) and bandwidth == pytest.approx(60e3)
    assert fit_latency(slow[:3]) is None  # too few
    assert fit_latency([(5_000, 0.1)] * 8) is None  # one size: latency and bytes inseparable


def test_the_direction_itself_is_read_before_a_fitted_reverse_entry() -> None:
    """A volunteer a on a home line (1 Mbit/s up, 8 down) fitted its entry for the submitter b
    from b's files it fetched (its downlink); b measured a's uplink from one output size, not
    fitted. Data from a to b travels a's uplink: b's entry is read, its per-request cost errs
    low (safe for a plan) where the reverse entry errs high by the line's down/up ratio."""
    a, b = node(1), node(2)
    forward = LinkSummary(b, 0, (LinkEntry(a, 110e3, 0.3, 0.05, 3, 0.0, False),))
    reverse = LinkSummary(a, 0, (LinkEntry(b, 1e6, 0.2, 0.05, 9, 0.0, True),))
    p = predict({a: reverse, b: forward}, a, b, 0)
    assert p is not None and p.source == b and not p.fitted and p.low < 125e3
    p = predict({a: reverse}, a, b, 0)  # b measured nothing: the reverse, with its doubt
    assert p is not None and p.source == a and p.fitted and p.low < 1e6 / 3


def test_a_quiet_link_is_not_republished_as_its_spread_ages() -> None:
    """Readers add ``DRIFT`` per hour themselves: a summary a day later, with no new samples,
    says nothing a reader of the old one did not work out."""
    base = fed({node(1): 1e6, node(2): 5e5})
    s1 = summarize(base, "me", 110.0, 0)
    day = 86_400
    assert not changed(s1, summarize(base, "me", 110.0 + day, day * 1000))
    # the same aged spread, published as if no time had passed, is news (the spread moved)
    assert changed(s1, replace(summarize(base, "me", 110.0 + day, day * 1000), at_ms=0))


def test_the_least_interval_between_rewrites_grows_with_the_network() -> None:
    from daemon.links.summary import MIN_INTERVAL_S, min_interval
    assert min_interval(0) == min_interval(100) == MIN_INTERVAL_S
    assert min_interval(1000) == 300 and min_interval(10_000) == 3000
