"""An in-process network of hosts for testing the daemon's trio shells in virtual time.

``MemoryNet`` hands out ``MemoryHost``s with the part of ``daemon.p2p.host.P2PHost`` the
services use (``handle``, ``send``, ``on_peer``, ``connected_peers``, ``report_fault``,
``listen_addrs``). A frame sent is delivered, in order per (sender, receiver), by a task in the
net's nursery, so under ``trio.testing.MockClock(autojump_threshold=0)`` a service's timers
run in virtual time and nothing waits on a real socket. Faults a handler raises (a peer's
garbage: ``RemoteProtocolError``) are counted against the sender, as the real host does.

Links can be cut (``partition``) and healed; a cut drops frames and disconnects the pair.
``request`` calls the peer's request handler and returns its answer to the asking host.

``twin(node_id)`` adds a second host with the same peer id, as a copied data directory gives
(``daemon.softstate.twins``): the two are never linked to each other (libp2p does not dial its
own id), every other host sees one peer id, frames sent to it go to the newer of the two it is
linked to (libp2p's preferred connection), and each host's own requests are answered to it.
Hosts are named by a *key* (the node id, or ``node_id + TWIN``) in ``hosts``, ``partition``
and ``heal``; handlers and hooks see node ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from protocol.errors import RemoteProtocolError

from daemon.p2p.errors import RequestFailed

Handler = Callable[[str, bytes], Awaitable[None]]
RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
QUEUE = 4096
TWIN = "#twin"


class MemoryHost:
    def __init__(self, net: "MemoryNet", node_id: str, key: str | None = None) -> None:
        self.net = net
        self.node_id = node_id
        self.key = key or node_id
        self.handlers: dict[str, Handler] = {}
        self.request_handlers: dict[str, RequestHandler] = {}
        self.peer_hooks: list[tuple[Callable[[str], Any], Callable[[str], Any]]] = []
        self.faults: dict[str, list[str]] = {}
        self.sent = 0
        self.dropped = 0
        self.max_frame = 512 * 1024
        """The payload cap of a frame, as ``P2PConfig.max_frame`` by default."""

    def handle(self, protocol: str, handler: Handler) -> None:
        self.handlers[protocol] = handler

    def handle_request(self, protocol: str, handler: RequestHandler) -> None:
        self.request_handlers[protocol] = handler

    async def request(self, peer: str, protocol: str, frame: bytes, timeout: float) -> bytes:
        dst = self.net.route(self.key, peer)
        handler = None if dst is None else self.net.hosts[dst].request_handlers.get(protocol)
        if handler is None:
            raise RequestFailed(f"no {protocol} at {peer[:16]}", "open")
        with trio.move_on_after(timeout):
            return await handler(self.node_id, frame)
        raise RequestFailed(f"{protocol} to {peer[:16]} timed out", "timeout")

    def on_peer(self, connected: Callable[[str], Any], disconnected: Callable[[str], Any]) -> None:
        self.peer_hooks.append((connected, disconnected))

    def set_peer_exchange(self, protocol: str, offer: Callable[[list[Any]], bytes | None]
                          ) -> None:
        """No budget here, so nobody is hung up on for it: nothing to exchange."""

    def exchanged(self, sender: str, peers: Any) -> bool:
        return False

    def warm_kept(self, protocol: str) -> None:
        """No streams to open here: a frame is delivered as it is sent."""

    def connected_peers(self) -> list[str]:
        return sorted({h.node_id for k, h in self.net.hosts.items()
                       if h.node_id != self.node_id and self.net.linked(self.key, k)})

    def round_trip(self, peers: Any) -> float | None:
        """No round trips are measured in memory: timers keep their base values."""
        return None

    def listen_addrs(self) -> list[str]:
        return [f"/memory/{self.node_id}"]

    def report_fault(self, peer: str, reason: str) -> None:
        self.faults.setdefault(peer, []).append(reason)

    def send(self, peer: str, protocol: str, frame: bytes) -> bool:
        dst = self.net.route(self.key, peer)
        if dst is None:
            self.dropped += 1
            return False
        try:
            self.net.queues[(self.key, dst)][0].send_nowait((protocol, frame))
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

    def twin(self, node_id: str) -> MemoryHost:
        """A second host holding ``node_id``'s key (add it before ``run``)."""
        h = self.hosts[node_id + TWIN] = MemoryHost(self, node_id, node_id + TWIN)
        return h

    def linked(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self.cut and \
            self.hosts[a].node_id != self.hosts[b].node_id

    def route(self, src: str, peer: str) -> str | None:
        """The host a frame from host ``src`` to peer id ``peer`` reaches: the newer one."""
        for key in (peer + TWIN, peer):
            if key in self.hosts and self.linked(src, key):
                return key
        return None

    def partition(self, a: str, b: str) -> None:
        before = self._sees(a, b)
        self.cut.add(frozenset((a, b)))
        self._hooks(a, b, before, connected=False)

    def heal(self, a: str, b: str) -> None:
        before = self._sees(a, b)
        self.cut.discard(frozenset((a, b)))
        self._hooks(a, b, before, connected=True)

    def _sees(self, a: str, b: str) -> tuple[bool, bool]:
        """Whether host ``a`` has some link to ``b``'s peer id, and ``b`` to ``a``'s (a twin
        may hold the other link: a peer id is up while one of its connections is)."""
        ida, idb = self.hosts[a].node_id, self.hosts[b].node_id
        return (any(h.node_id == idb and self.linked(a, k) for k, h in self.hosts.items()),
                any(h.node_id == ida and self.linked(b, k) for k, h in self.hosts.items()))

    def _hooks(self, a: str, b: str, before: tuple[bool, bool] = (False, False),
               connected: bool = True) -> None:
        if self.hosts[a].node_id == self.hosts[b].node_id:
            return
        after = self._sees(a, b)
        for (x, y), was, now in zip(((a, b), (b, a)), before, after):
            if was == now:
                continue  # the peer id stays up (or down) through another connection
            for up, down in self.hosts[x].peer_hooks:
                (up if connected else down)(self.hosts[y].node_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver frames until cancelled; every host pair is connected at start."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for a in self.hosts:
                for b in self.hosts:
                    if a != b:
                        self.queues[(a, b)] = trio.open_memory_channel(QUEUE)
                        nursery.start_soon(self._deliver, a, b)
            told: set[tuple[str, str]] = set()  # a peer id is up once, however many hosts
            for a, ha in self.hosts.items():
                for b, hb in self.hosts.items():
                    if self.linked(a, b) and (a, hb.node_id) not in told:
                        told.add((a, hb.node_id))
                        for up, _ in ha.peer_hooks:
                            up(hb.node_id)
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
                await handler(self.hosts[src].node_id, frame)
            except RemoteProtocolError as err:
                self.hosts[dst].report_fault(src, str(err))
