"""Streams to the peers a node works with are opened as they connect and kept while they are
kept: a committee's first request pays no stream set-up, nor one after a quiet spell."""

from __future__ import annotations

import trio

from tests.daemon.p2p.conftest import (Inbox, make_host, port_of, restartable_listen, running,
                                       start_stoppable, wait_until)

PROTO = "/novacron/warm-test/1"


async def test_a_kept_peers_stream_is_open_before_the_first_frame_and_stays_open_when_idle():
    a = make_host("warm-a", stream_idle=0.2)
    kept, other = make_host("warm-kept"), make_host("warm-other")
    inbox = Inbox()
    kept.handle(PROTO, inbox)
    other.handle(PROTO, inbox)
    a.set_keep_source(lambda: [kept.node_id])
    a.warm_kept(PROTO)
    async with running(a, kept, other):
        a.add_peer(kept.listen_addrs()[0])
        a.add_peer(other.listen_addrs()[0])
        await wait_until(lambda: a.metrics()["dials"].get("streams_warmed") == 1, timeout=10)
        dials = a.metrics()["dials"]
        assert dials["streams_opened"] == 1 and a.metrics()["frames_out"] == {}
        assert a.send(kept.node_id, PROTO, b"first") and a.send(other.node_id, PROTO, b"first")
        await inbox.wait_for(2)
        assert a.metrics()["dials"]["streams_opened"] == 2  # the other's, at its first frame
        # Past the idle close (0.2 s here): the kept peer's stream stays, the other's closes.
        await trio.sleep(0.8)  # real sockets: time itself is what is tested
        assert a.send(kept.node_id, PROTO, b"again") and a.send(other.node_id, PROTO, b"again")
        await inbox.wait_for(4)
        assert a.metrics()["dials"]["streams_opened"] == 3  # only the other's, once more
        assert a.metrics()["dials"]["streams_warmed"] == 1


async def test_a_kept_peer_that_comes_back_gets_a_fresh_warm_stream_before_the_next_frame():
    """Its old stream died with its connection: the frame after it comes back would have
    failed on it and paid the stream set-up the warming is there to save."""
    holder: list[str] = []
    inbox = Inbox()
    async with trio.open_nursery() as outer:
        kept = make_host("warm-back", listen=restartable_listen())
        kept.handle(PROTO, inbox)
        gone = await start_stoppable(outer, kept)
        holder.append(kept.listen_addrs()[0])
        # Redials back off up to 2 s (not 30): the wait below is for the warm stream, not for
        # a backoff grown while the peer was away (under load it outgrew the 10 s wait).
        a = make_host("warm-a2", bootstrap=holder, reconnect_max=2.0)
        a.set_keep_source(lambda: [kept.node_id])
        a.warm_kept(PROTO)
        await outer.start(a.run)
        await wait_until(lambda: a.metrics()["dials"].get("streams_warmed") == 1, timeout=10)
        await gone.stop()
        await wait_until(lambda: a.connected_peers() == [])
        back = make_host("warm-back", listen=[f"/ip4/127.0.0.1/tcp/{port_of(holder[0])}"])
        back.handle(PROTO, inbox)
        await outer.start(back.run)
        await wait_until(lambda: a.metrics()["dials"].get("streams_warmed") == 2, timeout=10)
        assert a.send(back.node_id, PROTO, b"welcome back")
        await inbox.wait_for(1)
        dials = a.metrics()["dials"]
        assert dials["streams_opened"] == 2 and not a.metrics()["drops"].get("send_failed")
        outer.cancel_scope.cancel()
