"""Timing the links nothing else times: libp2p pings to the peers a node keeps.

``daemon.p2p.rtt`` says whom (``RttTable.due``: a newly connected peer at once, then one
without a sample for ``PROBE_EVERY``) and keeps the samples; this runs the pings, a few at a
time, and tells the host when a peer missed too many (``on_dead``: it hangs up and redials).
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

from daemon.p2p.rtt import RttTable
from protocol.identity import NodeId

log = logging.getLogger("novacron.p2p.probing")

PROBE_TICK = 1.0
"""How often the prober looks for peers due a ping (new ones wait at most this)."""
PROBE_CONCURRENCY = 8
"""Pings in flight at once: a few dead peers' timeouts do not delay the live ones' samples."""


class RttProber:
    """Pings for ``rtts``; the host gives what it knows as callables (they are read live)."""

    def __init__(self, rtts: RttTable, dial_timeout: float, *,
                 targets: Callable[[], set[NodeId]],
                 open_stream: Callable[[NodeId], Awaitable[INetStream | None]],
                 heard_since: Callable[[NodeId, float], bool],
                 on_dead: Callable[[NodeId, float], None],
                 running: Callable[[], bool]) -> None:
        """``targets``: the connected peers we keep (view and committees); ``heard_since(peer,
        t)``: a frame came from it, or our line to it was busy, since ``t``; ``on_dead(peer,
        timeout)``: it missed ``DEAD_AFTER_MISSES`` pings; ``open_stream``: a ping stream to
        the peer (None: the host is closing); ``running``: the host is not closing."""
        self.rtts, self.dial_timeout = rtts, dial_timeout
        self._targets, self._open, self._heard_since = targets, open_stream, heard_since
        self._on_dead, self._running = on_dead, running

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
        """One sample of ``peer``'s round trip (the second of two pings on a new stream: the
        first pays for the stream's set-up), or one miss."""
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
