"""Timing the links nothing else times: libp2p pings to the peers a node keeps.

``daemon.p2p.rtt`` says whom (``RttTable.due``: a newly connected peer at once, then one
without a sample for ``PROBE_EVERY``) and keeps the samples; this runs the pings, a few at a
time, and tells the host when a peer missed too many (``on_dead``: it hangs up and redials).
A connection's own muxer pings too: yamux sends a ping frame every ``RTT_MEASURE_INTERVAL``
(30 s) on every connection, without a stream. A peer whose muxer had a pong back within that
interval is sampled from it (``muxer_round_trip``), and only a peer without one gets a ping
stream of ours: opening, negotiating and closing a stream for each ping was half of an idle
daemon's busy samples on a 30-node testnet (py-spy, 30 s), and answering its peers' pings
more. (A peer can answer a muxer ping it expects before it arrives and so look nearer than it
is; it can say as much in its own signed link summary anyway, and the timers that read the
table take a committee's median.)

A ping's wait follows the peer's measured round trip (``RttTable.ping_timeout``), so a far
peer is not taken for a dead one and a dead link to a near one is found out in seconds. A
miss does not count while frames came from the peer or its line was busy sending to it: a
loaded link answers a ping late, not never.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import INetStream
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.stream_muxer.yamux.yamux import RTT_MEASURE_INTERVAL

from daemon.p2p.rtt import RttTable
from protocol.identity import NodeId

log = logging.getLogger("novacron.p2p.probing")

PROBE_TICK = 1.0
"""How often the prober looks for peers due a ping (new ones wait at most this)."""
PROBE_CONCURRENCY = 8
"""Pings in flight at once: a few dead peers' timeouts do not delay the live ones' samples."""
MUXER_FRESH_S = RTT_MEASURE_INTERVAL + 5.0
"""A muxer's pong this recent stands for a ping of ours: the muxer of a live connection has
one at most ``RTT_MEASURE_INTERVAL`` plus a round trip old."""


def muxer_round_trip(muxed: object, since: float) -> float | None:
    """The round trip (s) ``muxed``'s own pings measured, if a ping it sent at ``since`` or
    later has had its pong (trio's clock); None otherwise, or for a muxer that does not
    ping. Reads py-libp2p 0.8.1's ``Yamux`` internals: ``_ping_event`` is replaced before
    each ping goes and set by its pong, ``_ping_sent_time`` is stamped once the ping is
    written, and ``_rtt`` averages each new sample with the last."""
    sent = getattr(muxed, "_ping_sent_time", None)
    pong = getattr(muxed, "_ping_event", None)
    rtt = getattr(muxed, "_rtt", None)
    if not isinstance(sent, float) or not isinstance(rtt, float) or pong is None:
        return None
    if sent < since or rtt <= 0.0 or not pong.is_set():
        return None
    return rtt


class RttProber:
    """Pings for ``rtts``; the host gives what it knows as callables (they are read live)."""

    def __init__(self, rtts: RttTable, dial_timeout: float, *,
                 targets: Callable[[], set[NodeId]],
                 open_stream: Callable[[NodeId], Awaitable[INetStream | None]],
                 muxer_rtt: Callable[[NodeId, float], float | None] = lambda peer, since: None,
                 heard_since: Callable[[NodeId, float], bool],
                 on_dead: Callable[[NodeId, float], None],
                 running: Callable[[], bool]) -> None:
        """``targets``: the connected peers we keep (view and committees); ``heard_since(peer,
        t)``: a frame came from it, or our line to it was busy, since ``t``; ``on_dead(peer,
        timeout)``: it missed ``DEAD_AFTER_MISSES`` pings; ``open_stream``: a ping stream to
        the peer (None: the host is closing); ``muxer_rtt(peer, since)``: what the muxer of a
        connection to the peer measured since ``since`` (``muxer_round_trip``), or None;
        ``running``: the host is not closing."""
        self.rtts, self.dial_timeout = rtts, dial_timeout
        self._targets, self._open, self._heard_since = targets, open_stream, heard_since
        self._muxer_rtt = muxer_rtt
        self._on_dead, self._running = on_dead, running
        self.counts = {"pings": 0, "muxer_samples": 0}
        """Ping streams opened, and samples taken from a muxer's pings instead."""

    async def run(self) -> None:
        """Until the host closes: each ``PROBE_TICK``, ping the peers due, at most
        ``PROBE_CONCURRENCY`` at a time."""
        limit = trio.CapacityLimiter(PROBE_CONCURRENCY)

        async def ping(peer: NodeId) -> None:
            async with limit:
                await self.ping(peer)

        async with trio.open_nursery() as pings:
            while self._running():
                now = trio.current_time()
                for peer in self.rtts.due(self._targets(), now):
                    pings.start_soon(ping, peer)
                self.rtts.forget_stale(now)
                await trio.sleep(PROBE_TICK)
            pings.cancel_scope.cancel()

    async def ping(self, peer: NodeId) -> None:
        """One sample of ``peer``'s round trip: its connection's muxer's if fresh, else the
        second of two pings on a new stream (the first pays for the stream's set-up), or one
        miss."""
        now = trio.current_time()
        rtt = self._muxer_rtt(peer, now - MUXER_FRESH_S)
        if rtt is not None:
            self.counts["muxer_samples"] += 1
            self.rtts.sample(peer, rtt, now)
            return
        self.counts["pings"] += 1
        stream = None
        timeout = self.rtts.ping_timeout(peer, self.dial_timeout)
        asked = trio.current_time()
        try:
            with trio.fail_after(timeout):
                stream = await self._open(peer)
                if stream is None:
                    return  # the host is closing: no sample, and no miss
                await perform_ping_roundtrip(stream)
                start = trio.current_time()
                await perform_ping_roundtrip(stream)
                self.rtts.sample(peer, trio.current_time() - start, trio.current_time())
        except Exception as err:  # task boundary: a failed ping is just no sample
            log.debug("ping %s failed: %r", peer, err)
            if self.rtts.missed(peer, trio.current_time(),
                                heard_since=self._heard_since(peer, asked)):
                self._on_dead(peer, timeout)
        finally:
            if stream is not None:
                with trio.move_on_after(1.0):
                    try:
                        await stream.close()
                    except Exception:  # already reset by the peer
                        pass
