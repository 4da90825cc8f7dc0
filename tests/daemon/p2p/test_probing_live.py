"""Round trips between two real hosts on loopback: a link its muxer has just timed is
sampled from the muxer's pings; one it has not gets a ping stream."""

from __future__ import annotations

import pytest

from daemon.p2p import probing
from protocol.identity import NodeId
from tests.daemon.p2p.conftest import make_host, running, wait_until


async def test_a_link_the_muxer_timed_is_sampled_without_a_ping_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_host("probe-a"), make_host("probe-b")
    a._prober._targets = set  # the test asks for each sample itself
    async with running(a, b) as nursery:
        b.add_peer(a.listen_addrs()[0])
        bid = NodeId(b.node_id)
        await wait_until(lambda: bid in a.connected_peers(), 10.0, "b connects")
        # yamux pings each connection half a second after it opens, then every 30 s
        await wait_until(lambda: a._muxer_rtt(bid, 0.0) is not None, 10.0, "a muxer pong")
        before = a.rtts.samples(bid)
        await a._prober.ping(bid)
        assert a._prober.counts == {"pings": 0, "muxer_samples": 1}
        assert a.rtts.samples(bid) == before + 1
        assert 0.0 < (a.rtts.srtt(bid) or 0.0) < 1.0

        # Without a fresh pong (the muxer's last ping is older than MUXER_FRESH_S here), a
        # ping stream times the link: the peer answers on it.
        monkeypatch.setattr(probing, "MUXER_FRESH_S", -3600.0)
        await a._prober.ping(bid)
        assert a._prober.counts == {"pings": 1, "muxer_samples": 1}
        assert a.rtts.samples(bid) == before + 2
        assert a.metrics()["round_trips"] == {"pings": 1, "muxer_samples": 1}
        nursery.cancel_scope.cancel()


def test_a_muxer_without_a_pong_or_without_pings_gives_no_sample() -> None:
    import trio

    class Muxer:
        _ping_sent_time = 10.0
        _rtt = 0.02
        _ping_event = trio.Event()
    assert probing.muxer_round_trip(Muxer(), 5.0) is None  # the pong has not come
    Muxer._ping_event.set()
    assert probing.muxer_round_trip(Muxer(), 5.0) == 0.02
    assert probing.muxer_round_trip(Muxer(), 11.0) is None  # older than asked for
    assert probing.muxer_round_trip(object(), 0.0) is None  # a muxer that does not ping
