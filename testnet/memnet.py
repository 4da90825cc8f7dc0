"""An in-process network of hosts for testing the daemon's trio shells in virtual time.

``MemoryNet`` hands out ``MemoryHost``s with the part of ``daemon.p2p.host.P2PHost`` the
services use (``handle``, ``send``, ``on_peer``, ``connected_peers``, ``report_fault``,
``listen_addrs``). A frame sent is delivered, in order per (sender, receiver), by a task in the
net's nursery, so under ``trio.testing.MockClock(autojump_threshold=0)`` a service's timers
run in virtual time and nothing waits on a real socket. Faults a handler raises (a peer's
garbage: ``RemoteProtocolError``) are counted against the sender, as the real host does.

Links can be cut (``partition``) and healed; a cut drops frames and disconnects the pair.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from protocol.errors import RemoteProtocolError

Handler = Callable[[str, bytes], Awaitable[None]]
QUEUE = 4096


class MemoryHost:
    def __init__(self, net: "MemoryNet", node_id: str) -> None:
        self.net = net
        self.node_id = node_id
        self.handlers: dict[str, Handler] = {}
        self.peer_hooks: list[tuple[Callable[[str], Any], Callable[[str], Any]]] = []
        self.faults: dict[str, list[str]] = {}
        self.sent = 0
        self.dropped = 0
        self.max_frame = 512 * 1024
        """The payload cap of a frame, as ``P2PConfig.max_frame`` by default."""

    def handle(self, protocol: str, handler: Handler) -> None:
        self.handlers[protocol] = handler

    def on_peer(self, connected: Callable[[str], Any], disconnected: Callable[[str], Any]) -> None:
        self.peer_hooks.append((connected, disconnected))

    def connected_peers(self) -> list[str]:
        return sorted(p for p in self.net.hosts if p != self.node_id and self.net.linked(self.node_id, p))

    def round_trip(self, peers: Any) -> float | None:
        """No round trips are measured in memory: timers keep their base values."""
        return None

    def listen_addrs(self) -> list[str]:
        return [f"/memory/{self.node_id}"]

    def report_fault(self, peer: str, reason: str) -> None:
        self.faults.setdefault(peer, []).append(reason)

    def send(self, peer: str, protocol: str, frame: bytes) -> bool:
        if peer not in self.net.hosts or not self.net.linked(self.node_id, peer):
            self.dropped += 1
            return False
        try:
            self.net.queues[(self.node_id, peer)][0].send_nowait((protocol, frame))
        except trio.WouldBlock:
            self.dropped += 1
            return False
        self.sent += 1
        return True


class MemoryNet:
    def __init__(self) -> None:
        self.hosts: dict[str, MemoryHost] = {}
        self.queues: dict[tuple[str, str], tuple[trio.MemorySendChannel[tuple[str, bytes]],
                                                 trio.MemoryReceiveChannel[tuple[str, bytes]]]] = {}
        self.cut: set[frozenset[str]] = set()
        self._nursery: trio.Nursery | None = None

    def host(self, node_id: str) -> MemoryHost:
        h = self.hosts[node_id] = MemoryHost(self, node_id)
        return h

    def linked(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self.cut

    def partition(self, a: str, b: str) -> None:
        self.cut.add(frozenset((a, b)))
        self._hooks(a, b, connected=False)

    def heal(self, a: str, b: str) -> None:
        self.cut.discard(frozenset((a, b)))
        self._hooks(a, b, connected=True)

    def _hooks(self, a: str, b: str, connected: bool) -> None:
        for x, y in ((a, b), (b, a)):
            for up, down in self.hosts[x].peer_hooks:
                (up if connected else down)(y)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver frames until cancelled; every host pair is connected at start."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for a in self.hosts:
                for b in self.hosts:
                    if a != b:
                        self.queues[(a, b)] = trio.open_memory_channel(QUEUE)
                        nursery.start_soon(self._deliver, a, b)
            for a in self.hosts:
                for b in self.hosts:
                    if a < b:
                        self._hooks(a, b, connected=True)
            task_status.started()
            await trio.sleep_forever()

    async def _deliver(self, src: str, dst: str) -> None:
        async for protocol, frame in self.queues[(src, dst)][1]:
            if not self.linked(src, dst):
                continue
            handler = self.hosts[dst].handlers.get(protocol)
            if handler is None:
                continue
            try:
                await handler(src, frame)
            except RemoteProtocolError as err:
                self.hosts[dst].report_fault(src, str(err))
