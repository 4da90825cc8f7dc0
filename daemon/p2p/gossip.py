"""Gossip: publish to a topic, deliver a topic's messages to one handler, count every loss.

For soft state only (CRDT delta batches): GossipSub costs ~15 ms of Python per message per node,
so callers batch. Delivery is at most once per message id, best effort; anti-entropy between two
peers on (re)connect belongs on a request/response protocol, not here.

Each subscribed topic has a bounded queue (``gossip_delivery_queue``) between libp2p and one
task that calls the handler with ``(origin node id, data)``, one message at a time. A full queue
drops the new message and counts ``delivery_queue_full``. The origin is the libp2p ``from`` field,
authenticated by libp2p's message signature (strict signing). Our own publishes are not echoed
back to our handler. A handler raising ``RemoteProtocolError`` counts ``err.reason`` against the
origin; any other exception is logged and counted in ``handler_errors["gossip:<topic>"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from daemon.p2p.config import P2PConfig
from daemon.p2p.errors import NotRunning, P2PError
from daemon.p2p.metrics import P2PMetrics
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeId

log = logging.getLogger("novacron.p2p.gossip")

GossipHandler = Callable[[NodeId, bytes], Awaitable[None]]
_Item = tuple[NodeId, bytes]
_Queue = tuple[trio.MemorySendChannel[_Item], trio.MemoryReceiveChannel[_Item]]


class Gossip:
    """The gossip half of ``P2PHost``. ``attach`` (inside ``run``) before publishing."""

    def __init__(
        self,
        *,
        self_id: NodeId,
        config: P2PConfig,
        metrics: P2PMetrics,
        fault: Callable[[NodeId, str], None],
        is_banned: Callable[[NodeId], bool],
    ) -> None:
        self.self_id = self_id
        self.config = config
        self.metrics = metrics
        self._fault = fault
        self._is_banned = is_banned
        self._pubsub: Pubsub | None = None
        self._nursery: trio.Nursery | None = None
        self._handlers: dict[str, GossipHandler] = {}
        self._queues: dict[str, _Queue] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    async def attach(self, pubsub: Pubsub, nursery: trio.Nursery) -> None:
        self._pubsub, self._nursery = pubsub, nursery
        for topic in list(self._handlers):
            await self._join(topic)

    def detach(self) -> None:
        self._pubsub = self._nursery = None

    def on_drop(self, cause: str, count: int) -> None:
        """Called by the libp2p fixes for every message GossipSub drops."""
        self.metrics.gossip_dropped[cause] += count

    # -- subscribing ---------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        if topic in self._handlers:
            raise P2PError(f"topic {topic!r} already has a handler")
        self._handlers[topic] = handler
        self._queues[topic] = trio.open_memory_channel[_Item](self.config.gossip_delivery_queue)
        if self._nursery is not None:
            self._nursery.start_soon(self._join, topic)

    async def _join(self, topic: str) -> None:
        pubsub, nursery = self._pubsub, self._nursery
        if pubsub is None or nursery is None:
            return
        nursery.start_soon(self._deliver_loop, topic)
        await pubsub.subscribe(topic)  # announces the subscription to every connected peer

    def deliver(self, msg: rpc_pb2.Message) -> None:
        """Every new, valid message libp2p accepted (``NovaPubsub.notify_subscriptions``)."""
        origin = NodeId(ID(msg.from_id).to_base58())
        if origin == self.self_id:
            return
        for topic in msg.topicIDs:
            queue = self._queues.get(topic)
            if queue is None:
                continue
            try:
                queue[0].send_nowait((origin, msg.data))
            except trio.WouldBlock:
                self.metrics.gossip_dropped["delivery_queue_full"] += 1

    async def _deliver_loop(self, topic: str) -> None:
        handler = self._handlers[topic]
        receive = self._queues[topic][1]
        label = f"gossip:{topic}"
        while True:
            origin, data = await receive.receive()
            if self._is_banned(origin):
                self.metrics.gossip_dropped["banned_origin"] += 1
                continue
            self.metrics.gossip_received[topic] += 1
            try:
                await handler(origin, data)
            except RemoteProtocolError as err:
                log.info("gossip from %s on %s rejected: %s", origin, topic, err)
                self._fault(origin, err.reason)
            except Exception:
                log.exception("gossip handler for %s raised on a message from %s", topic, origin)
                self.metrics.handler_errors[label] += 1

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes) -> None:
        if len(data) > self.config.max_frame:
            raise P2PError(
                f"gossip payload of {len(data)} bytes is over max_frame={self.config.max_frame}"
            )
        if self._pubsub is None:
            raise NotRunning("publish() before P2PHost.run() started or after it ended")
        if not self._pubsub.peer_topics.get(topic):
            # Nobody we know of is on the topic: GossipSub sends it nowhere. Not an error (a lone
            # node, or a mesh still forming), but counted so it is never a silent loss.
            self.metrics.gossip_dropped["no_peers"] += 1
        await self._pubsub.publish(topic, data)
        self.metrics.gossip_published[topic] += 1
