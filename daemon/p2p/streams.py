"""Direct framed streams: one long-lived outbound stream per (peer, protocol), and request/response.

Used for hard state (PBFT messages between committee members) and bulk data (blob fetches), which
must not go through gossip. Frames are ``daemon.p2p.framing`` frames.

Outbound: ``send`` never blocks. It puts the frame on a bounded per-(peer, protocol) queue and
returns False, counting the drop by cause, when it cannot (queue full, unknown or banned peer).
One task per queue opens the stream on first use and writes frames in order, coalescing whatever
is queued into one write of up to ``BATCH_BYTES`` (one yamux/Noise record per batch instead of
per frame). If a write fails it reopens the stream and writes the batch once more; if that fails
too the batch is dropped and counted (``send_failed``). Delivery is therefore best effort and,
around a stream failure, a batch can be lost or (rarely, if the first write got through before
failing) arrive twice: callers on top (PBFT) retransmit and de-duplicate. Order is never broken.
The task exits after ``stream_idle`` seconds without frames.

Inbound: frames from a peer on a protocol go to the protocol's handler one at a time, in order,
even across a stream being replaced (a per-(peer, protocol) lock). A slow handler holds back only
that peer's stream: yamux flow control pushes back on the sender, whose queue then fills and
drops (counted).

Writes never wait for yamux window inside py-libp2p: its ``YamuxStream.write`` gives up after
5 s without window and the caller resets the stream. On a sub-Mbit uplink shared by a
committee's streams, 256 KiB of window takes longer than that to drain, so healthy streams
were reset mid-frame (the receiver counting a fault), their batches dropped and re-sent: a
30-daemon WAN testnet lost hundreds of batches per slow node that way. ``write_paced`` writes
only as much as the window allows and waits for more itself, up to ``WINDOW_WAIT`` (a line
that moves nothing for a minute is dead, and pings hang it up sooner). While a write waits,
``line_busy`` tells the ping check that the line is full rather than dead.

A frame over ``max_frame`` or a stream ending mid-frame resets the stream and counts a fault
against the peer. A handler raising ``RemoteProtocolError`` counts ``err.reason`` against the
peer and the stream goes on; any other exception is our bug: logged with its traceback, counted
in ``handler_errors``, and the stream goes on. Nothing a peer sends can end the node.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.host.basic_host import BasicHost
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.stream.net_stream import INetStream
from libp2p.peer.id import ID

from daemon.p2p.config import P2PConfig
from daemon.p2p.errors import NotRunning, P2PError, RequestFailed
from daemon.p2p.framing import FrameDecoder, encode_frame
from daemon.p2p.metrics import P2PMetrics
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeId

log = logging.getLogger("novacron.p2p.streams")

FrameHandler = Callable[[NodeId, bytes], Awaitable[None]]
RequestHandler = Callable[[NodeId, bytes], Awaitable[bytes]]

READ_CHUNK = 64 * 1024
BATCH_BYTES = 64 * 1024  # queued frames coalesced into one write, up to about this much
WINDOW_WAIT = 60.0
"""Seconds a write may wait for the peer's yamux window before the stream is taken for dead."""
WINDOW_POLL = 0.05
SLOW_WRITE = 1.0
"""A write that took this long (s) shows a full line: the ping check does not count a miss."""
SLOW_KEPT = 1024
"""Peers whose last slow write is remembered before the old ones are dropped."""
# What a network operation can raise when the peer or the connection goes away.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    BaseLibp2pError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


@dataclass
class _Outbox:
    """A (peer, protocol)'s queue; ``None`` in it is a wake-up (``FramedStreams.warm``), not a
    frame. ``stream`` is its writer task's open stream, for ``warm`` to look at."""

    send: trio.MemorySendChannel[bytes | None]
    receive: trio.MemoryReceiveChannel[bytes | None]
    stream: INetStream | None = None


def _dead(stream: INetStream) -> bool:
    """The stream's connection is gone (the peer disconnected): writing on it can only fail."""
    return bool(stream.muxed_conn.is_closed)


@dataclass
class _Inbound:
    """Serialises a (peer, protocol)'s handler calls across its streams."""

    lock: trio.Lock
    streams: int = 0


def peer_of(stream: INetStream) -> NodeId:
    return NodeId(str(stream.muxed_conn.peer_id))


async def read_frame(stream: INetStream, decoder: FrameDecoder) -> bytes | None:
    """Read exactly one frame (request/response); None if the stream ends before its first byte.

    Reads no further than the frame's end. Raises ``RemoteProtocolError`` subclasses for an
    oversized or truncated frame.
    """
    while True:
        try:
            data = await stream.read(max(1, min(READ_CHUNK, decoder.want())))
        except StreamEOF:
            data = b""
        if not data:
            decoder.eof()  # raises TruncatedFrame if we were inside a frame
            return None
        frames = decoder.feed(data)
        if frames:
            return frames[0]


async def write_paced(stream: INetStream, data: bytes) -> None:
    """Write ``data`` in pieces no larger than the yamux send window, waiting for window
    ourselves (up to ``WINDOW_WAIT``) instead of inside py-libp2p's 5 s timeout."""
    muxed = getattr(stream, "muxed_stream", None)
    if not isinstance(getattr(muxed, "send_window", None), int):
        await stream.write(data)  # not yamux: its own flow control
        return
    view = memoryview(data)
    while view:
        if muxed.send_window <= 0:  # type: ignore[union-attr]
            with trio.fail_after(WINDOW_WAIT):
                while muxed.send_window <= 0:  # type: ignore[union-attr]
                    if muxed.closed or muxed.send_closed:  # type: ignore[union-attr]
                        raise trio.ClosedResourceError("stream closed while waiting for window")
                    await trio.sleep(WINDOW_POLL)
        n = min(len(view), muxed.send_window)  # type: ignore[union-attr]
        await stream.write(bytes(view[:n]))  # only we write here: the window only grows
        view = view[n:]


async def close_quietly(stream: INetStream | None, *, reset: bool = False) -> None:
    """Close (or reset) a stream that may already be dead, within a short bounded time."""
    if stream is None:
        return
    with trio.move_on_after(1.0):
        try:
            if reset:
                await stream.reset()
            else:
                await stream.close()
        except NETWORK_ERRORS:
            pass


class FramedStreams:
    """The framed-stream half of ``P2PHost``. Needs ``attach`` (inside ``run``) before I/O."""

    def __init__(
        self,
        *,
        self_id: NodeId,
        config: P2PConfig,
        metrics: P2PMetrics,
        fault: Callable[[NodeId, str], None],
        is_banned: Callable[[NodeId], bool],
        can_reach: Callable[[NodeId], bool],
        used: Callable[[NodeId, bool], None] = lambda peer, inbound: None,
        keep_open: Callable[[NodeId], bool] = lambda peer: False,
    ) -> None:
        self.self_id = self_id
        self.config = config
        self.metrics = metrics
        self._fault = fault
        self._is_banned = is_banned
        self._can_reach = can_reach
        self._used = used  # a frame went to (False) or came from (True) the peer: in use
        self._keep_open = keep_open  # a peer whose outbound streams are not closed when idle
        self._host: BasicHost | None = None
        self._nursery: trio.Nursery | None = None
        self._outboxes: dict[tuple[NodeId, str], _Outbox] = {}
        self._inbound: dict[tuple[NodeId, str], _Inbound] = {}
        self._learned = trio.Event()
        self._writing: dict[tuple[NodeId, str], float] = {}  # write in progress: its start
        self._slow_done: dict[NodeId, float] = {}  # peer: when a slow write to it last ended
        self._handlers: dict[str, FrameHandler] = {}
        self._request_handlers: dict[str, RequestHandler] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def attach(self, host: BasicHost, nursery: trio.Nursery) -> None:
        self._host, self._nursery = host, nursery
        for protocol, handler in self._handlers.items():
            self._register(host, protocol, partial(self._serve_frames, protocol, handler))
        for protocol, rhandler in self._request_handlers.items():
            self._register(host, protocol, partial(self._serve_request, protocol, rhandler))

    def detach(self) -> None:
        self._host = self._nursery = None
        self._outboxes.clear()

    # -- registration --------------------------------------------------------------------------

    def handle(self, protocol: str, handler: FrameHandler) -> None:
        self._check_new_protocol(protocol)
        self._handlers[protocol] = handler
        if self._host is not None:
            self._register(self._host, protocol, partial(self._serve_frames, protocol, handler))

    def handle_request(self, protocol: str, handler: RequestHandler) -> None:
        self._check_new_protocol(protocol)
        self._request_handlers[protocol] = handler
        if self._host is not None:
            self._register(self._host, protocol, partial(self._serve_request, protocol, handler))

    def protocols(self) -> list[str]:
        """The protocol ids this node serves (what identify tells peers, ours among them)."""
        return sorted({*self._handlers, *self._request_handlers})

    @staticmethod
    def _register(
        host: BasicHost, protocol: str, serve: Callable[[INetStream], Awaitable[None]]
    ) -> None:
        host.set_stream_handler(TProtocol(protocol), serve)

    def _check_new_protocol(self, protocol: str) -> None:
        if not protocol.startswith("/"):
            raise P2PError(f"protocol id {protocol!r} must start with '/', e.g. /novacron/pbft/2")
        if protocol in self._handlers or protocol in self._request_handlers:
            raise P2PError(f"protocol {protocol} already has a handler")

    # -- outbound frames -----------------------------------------------------------------------

    def send(self, peer: NodeId, protocol: str, frame: bytes) -> bool:
        if len(frame) > self.config.max_frame:
            raise P2PError(f"frame of {len(frame)} bytes is over max_frame={self.config.max_frame}")
        if self._nursery is None:  # before run() or during shutdown: best effort, like a drop
            self.metrics.drops["not_running"] += 1
            return False
        if peer == self.self_id:
            self.metrics.drops["self"] += 1
            return False
        if self._is_banned(peer):
            self.metrics.drops["banned"] += 1
            return False
        key = (peer, protocol)
        box = self._outboxes.get(key)
        if box is None:
            if not self._can_reach(peer) and not _is_peer_id(peer):
                self.metrics.drops["unknown_peer"] += 1
                return False
            # A peer whose address we do not know *yet* (its signed record is on its way: we
            # started from one seed) gets a queue too; ``_outbound`` waits for the address.
            box = self._new_outbox(self._nursery, peer, protocol, eager=False)
        try:
            box.send.send_nowait(frame)
            self._used(peer, False)
        except trio.WouldBlock:
            self.metrics.drops["queue_full"] += 1
            return False
        return True

    def warm(self, peer: NodeId, protocol: str) -> None:
        """Open ``protocol``'s outbound stream to ``peer`` now, before anything is sent on it,
        so the first frame pays no stream set-up (multistream-select: a round trip or two,
        1.2 s for a fresh committee's first ``kv put`` on ``planet`` against 0.3 s for the
        next). A no-op if that stream is open or opening, or the peer unreachable. A queue
        whose stream died with its connection (a kept peer that reconnected) is woken to open
        a fresh one now, not at its next frame."""
        if (self._nursery is None or peer == self.self_id or self._is_banned(peer)
                or not self._can_reach(peer)):
            return
        box = self._outboxes.get((peer, protocol))
        if box is None:
            self._new_outbox(self._nursery, peer, protocol, eager=True)
        elif box.stream is not None and _dead(box.stream):
            try:
                box.send.send_nowait(None)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass  # frames are queued (they open it) or the task is ending

    def _new_outbox(self, nursery: trio.Nursery, peer: NodeId, protocol: str, *,
                    eager: bool) -> _Outbox:
        """The queue for ``peer`` on ``protocol`` and the task that writes it out."""
        send_ch, recv_ch = trio.open_memory_channel[bytes | None](self.config.send_queue)
        box = self._outboxes[(peer, protocol)] = _Outbox(send_ch, recv_ch)
        nursery.start_soon(partial(self._outbound, self._require_host(), peer, protocol, box,
                                   eager=eager))
        return box

    def address_learned(self) -> None:
        """New peer addresses are known: queues waiting for one look again."""
        self._learned.set()
        self._learned = trio.Event()

    async def _wait_reachable(self, peer: NodeId) -> bool:
        """Wait up to ``address_wait`` for an address of ``peer`` (or a connection to it)."""
        deadline = trio.current_time() + self.config.address_wait
        while not self._can_reach(peer):
            now = trio.current_time()
            if now >= deadline:
                return False
            with trio.move_on_after(min(0.1, deadline - now)):  # records also arrive unannounced
                await self._learned.wait()
        return True

    async def _outbound(self, host: BasicHost, peer: NodeId, protocol: str, box: _Outbox,
                        eager: bool = False) -> None:
        """Write what is queued for ``peer`` on ``protocol``, opening the stream at the first
        frame (or at once if ``eager``, or when woken after its connection died); close it when
        idle, unless ``keep_open(peer)``. A stream whose connection is gone is dropped before a
        write is tried on it."""
        key = (peer, protocol)
        try:
            if eager:
                await self._warm_open(host, peer, protocol, box)
            if not await self._wait_reachable(peer):
                box.send.close()
                unknown = 0
                while True:
                    try:
                        box.receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    unknown += 1
                self.metrics.drops["unknown_peer"] += unknown
                log.debug("no address for %s after %.0f s: %d frames on %s dropped", peer,
                          self.config.address_wait, unknown, protocol)
                return
            while True:
                frame: bytes | None = None
                with trio.move_on_after(self.config.stream_idle) as wait:
                    frame = await box.receive.receive()
                if wait.cancelled_caught:  # idle; no await since, so nothing can be queued
                    if self._keep_open(peer):
                        continue  # a peer we work with now (a committee's): ready when needed
                    break
                if box.stream is not None and _dead(box.stream):
                    await close_quietly(box.stream, reset=True)
                    box.stream = None
                if frame is None:  # woken by ``warm``
                    if box.stream is None:
                        await self._warm_open(host, peer, protocol, box)
                    continue
                batch = [frame]
                size = len(frame)
                while size < BATCH_BYTES:
                    try:
                        frame = box.receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if frame is not None:  # a wake-up: this batch opens the stream anyway
                        batch.append(frame)
                        size += len(frame)
                if self._is_banned(peer):
                    self.metrics.drops["banned"] += len(batch)
                    continue
                data = b"".join(encode_frame(f, self.config.max_frame) for f in batch)
                for attempt in (1, 2):
                    try:
                        if box.stream is None:
                            box.stream = await self._open(host, peer, protocol)
                        await self._write(box.stream, peer, protocol, data)
                    except (*NETWORK_ERRORS, trio.TooSlowError) as err:
                        await close_quietly(box.stream, reset=True)
                        box.stream = None
                        if attempt == 2:
                            self.metrics.drops["send_failed"] += len(batch)
                            log.debug(
                                "%d frames to %s on %s dropped: %r", len(batch), peer, protocol, err
                            )
                    else:
                        self.metrics.frames_out[protocol] += len(batch)
                        self.metrics.bytes_out[protocol] += size
                        break
        except Exception:  # our bug: log it, drop this queue, keep the node (next send restarts)
            log.exception("outbound stream task for %s on %s failed", peer, protocol)
            self.metrics.handler_errors[f"outbound:{protocol}"] += 1
        finally:
            if self._outboxes.get(key) is box:
                del self._outboxes[key]
            box.send.close()
            abandoned = 0
            while True:
                try:
                    box.receive.receive_nowait()
                    abandoned += 1
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if abandoned:  # queued when the task failed or the host shut down
                self.metrics.drops["abandoned"] += abandoned
            await close_quietly(box.stream)
            box.stream = None

    async def _warm_open(self, host: BasicHost, peer: NodeId, protocol: str, box: _Outbox) -> None:
        """Open ``box``'s stream before anything is sent on it (``warm``); a failure is left to
        the first frame, which tries again."""
        try:
            box.stream = await self._open(host, peer, protocol)
            self.metrics.dials["streams_warmed"] += 1
        except (*NETWORK_ERRORS, trio.TooSlowError) as err:
            log.debug("warming %s to %s failed: %r", protocol, peer, err)

    async def _write(self, stream: INetStream, peer: NodeId, protocol: str, data: bytes) -> None:
        started = trio.current_time()
        self._writing[(peer, protocol)] = started
        try:
            await write_paced(stream, data)
        finally:
            del self._writing[(peer, protocol)]
            now = trio.current_time()
            if now - started >= SLOW_WRITE:
                self._slow_done[peer] = now
                if len(self._slow_done) > SLOW_KEPT:  # bounded: old ones prove nothing now
                    self._slow_done = {p: t for p, t in self._slow_done.items()
                                       if now - t < WINDOW_WAIT}

    def line_busy(self, peer: NodeId, since: float) -> bool:
        """Our frames to ``peer`` were moving slowly at some time after ``since``: a write to it
        is waiting (for at most ``WINDOW_WAIT``) or a slow one ended since. Its line is full,
        not dead: a ping queued behind those frames proves nothing."""
        now = trio.current_time()
        if self._slow_done.get(peer, float("-inf")) >= since:
            return True
        return any(p == peer and now - t < WINDOW_WAIT for (p, _), t in self._writing.items())

    async def _open(self, host: BasicHost, peer: NodeId, protocol: str) -> INetStream:
        with trio.fail_after(self.config.dial_timeout):
            stream = await host.new_stream(ID.from_base58(peer), [TProtocol(protocol)])
        self.metrics.dials["streams_opened"] += 1
        return stream

    def _require_host(self) -> BasicHost:
        if self._host is None:
            raise NotRunning("the host is not running")
        return self._host

    # -- inbound frames ------------------------------------------------------------------------

    async def _serve_frames(self, protocol: str, handler: FrameHandler, stream: INetStream) -> None:
        peer = peer_of(stream)
        if self._is_banned(peer):
            await close_quietly(stream, reset=True)
            return
        decoder = FrameDecoder(self.config.max_frame)
        key = (peer, protocol)
        inbound = self._inbound.get(key)
        if inbound is None:
            inbound = self._inbound[key] = _Inbound(trio.Lock())
        inbound.streams += 1
        try:
            while True:
                try:
                    data = await stream.read(READ_CHUNK)
                except StreamEOF:
                    data = b""
                if not data:
                    decoder.eof()
                    await close_quietly(stream)
                    return
                for frame in decoder.feed(data):
                    self._used(peer, True)
                    self.metrics.frames_in[protocol] += 1
                    self.metrics.bytes_in[protocol] += len(frame)
                    async with inbound.lock:
                        await self._call(handler, peer, frame, protocol)
                if self._is_banned(peer):
                    await close_quietly(stream, reset=True)
                    return
        except RemoteProtocolError as err:
            log.info("peer %s broke framing on %s: %s", peer, protocol, err)
            self._fault(peer, err.reason)
            await close_quietly(stream, reset=True)
        except NETWORK_ERRORS as err:  # the peer went away or reset the stream: not a fault
            log.debug("inbound %s stream from %s ended: %r", protocol, peer, err)
            await close_quietly(stream, reset=True)
        finally:
            inbound.streams -= 1
            if inbound.streams == 0 and self._inbound.get(key) is inbound:
                del self._inbound[key]

    async def _call(self, handler: FrameHandler, peer: NodeId, frame: bytes, label: str) -> None:
        try:
            await handler(peer, frame)
        except RemoteProtocolError as err:
            log.info("peer %s sent a bad frame on %s: %s", peer, label, err)
            self._fault(peer, err.reason)
        except Exception:
            log.exception("handler for %s raised on a frame from %s", label, peer)
            self.metrics.handler_errors[label] += 1

    # -- request / response --------------------------------------------------------------------

    async def request(self, peer: NodeId, protocol: str, frame: bytes, timeout: float) -> bytes:
        if len(frame) > self.config.max_frame:
            raise P2PError(
                f"request of {len(frame)} bytes is over max_frame={self.config.max_frame}"
            )
        host = self._require_host()
        if peer == self.self_id:
            raise RequestFailed("cannot send a request to ourselves", "self")
        if self._is_banned(peer):
            raise RequestFailed(f"peer {peer} is banned", "banned")
        self.metrics.requests["sent"] += 1
        self._can_reach(peer)  # looks up an address for a peer we never met (dialled on open)
        self._used(peer, False)
        stream: INetStream | None = None
        reason, detail = "", ""
        try:
            with trio.fail_after(timeout):
                try:
                    stream = await host.new_stream(ID.from_base58(peer), [TProtocol(protocol)])
                except (*NETWORK_ERRORS, ValueError) as err:
                    reason, detail = "open", repr(err)
                else:
                    try:
                        await write_paced(stream, encode_frame(frame, self.config.max_frame))
                        response = await read_frame(stream, FrameDecoder(self.config.max_frame))
                    except RemoteProtocolError as err:
                        self._fault(peer, err.reason)
                        reason, detail = err.reason, str(err)
                    except NETWORK_ERRORS as err:
                        reason, detail = "stream", repr(err)
                    else:
                        if response is None:
                            reason, detail = "no_response", "the peer closed the stream unanswered"
                        else:
                            self.metrics.frames_in[protocol] += 1
                            self.metrics.bytes_in[protocol] += len(response)
                            return response
        except trio.TooSlowError:
            reason, detail = "timeout", f"no answer within {timeout} s"
        finally:
            await close_quietly(stream, reset=bool(reason))
        self.metrics.requests[f"failed:{reason}"] += 1
        raise RequestFailed(f"request to {peer} on {protocol} failed ({reason}): {detail}", reason)

    async def _serve_request(
        self, protocol: str, handler: RequestHandler, stream: INetStream
    ) -> None:
        peer = peer_of(stream)
        if self._is_banned(peer):
            await close_quietly(stream, reset=True)
            return
        try:
            with trio.fail_after(self.config.dial_timeout):
                frame = await read_frame(stream, FrameDecoder(self.config.max_frame))
        except RemoteProtocolError as err:
            self._fault(peer, err.reason)
            await close_quietly(stream, reset=True)
            return
        except (*NETWORK_ERRORS, trio.TooSlowError):
            await close_quietly(stream, reset=True)
            return
        if frame is None:  # opened and closed without asking anything: odd, harmless
            await close_quietly(stream)
            return
        self.metrics.frames_in[protocol] += 1
        self.metrics.bytes_in[protocol] += len(frame)
        self._used(peer, True)
        try:
            response = await handler(peer, frame)
            data = encode_frame(response, self.config.max_frame)
        except RemoteProtocolError as err:
            log.info("peer %s sent a bad request on %s: %s", peer, protocol, err)
            self._fault(peer, err.reason)
            await close_quietly(stream, reset=True)
            return
        except Exception:
            log.exception("request handler for %s raised on a request from %s", protocol, peer)
            self.metrics.handler_errors[protocol] += 1
            await close_quietly(stream, reset=True)
            return
        try:
            await write_paced(stream, data)
        except (*NETWORK_ERRORS, trio.TooSlowError):
            await close_quietly(stream, reset=True)
            return
        self.metrics.requests["served"] += 1
        await close_quietly(stream)


def _is_peer_id(text: str) -> bool:
    try:
        ID.from_base58(text)
    except Exception:  # base58 and multihash errors come in several types
        return False
    return True
