"""Every place where we reach into py-libp2p 0.8.1 beyond its public constructors, in one module.

Importing this module refuses any other libp2p version: each fix below was written against
0.8.1's source, and a silent mismatch would turn a counted drop back into a silent one. To move to
a new version, re-read the cited functions, adjust, and change ``SUPPORTED_LIBP2P_VERSION``.

What py-libp2p 0.8.1 does by default, and what we do about it (constructor options are applied in
``daemon.p2p.factory``; the fixes that need more than an option are here):

- Logging: ``libp2p/__init__.py`` calls ``utils.logging.setup_logging()`` at import, which sets the
  ``libp2p`` logger to ``propagate = False`` with no handlers, so its records bypass any logging
  configuration. ``route_libp2p_logging`` re-roots them under ``novacron.p2p.libp2p``.
- GossipSub spam protection (``GossipSub._check_spam_protection``, called from
  ``GossipSub.publish``) counts messages per *forwarder* per topic, including our own publishes
  (forwarder = ourselves), and drops silently over the limit. ``NovaGossipSub`` exempts our own
  publishes and counts every refusal. (Local delivery has already happened by then: the check
  only stops forwarding.)
- GossipSub outbound queues: ``Pubsub._handle_new_peer`` builds ``RpcQueue()`` with the default
  capacity of 32 and ``GossipSub.send_rpc`` drops on a full queue with a debug log. ``NovaPubsub``
  gives each new queue a ``CountingPriorityQueue`` of our capacity that reports rejections; drops
  of oversized RPCs (``GossipSub._handle_dropped_rpc(..., "oversized")``) are counted too.
- Subscription delivery: ``Pubsub.notify_subscriptions`` puts each message on a 32-slot channel
  and drops with a warning when full. ``NovaPubsub`` overrides that public method to hand
  messages to our own bounded, counted per-topic queues (``daemon.p2p.gossip``).
- Adaptive gossip (``_adapt_heartbeat_parameters``) sets the heartbeat to >= 30 s whenever its
  "network health" is low, which it is on any node with no mesh peers yet: turned off by option.
- The seen-message cache (``LastSeenCache``) starts a thread per Pubsub that nothing stops:
  ``stop_pubsub_threads`` stops it when the host closes.
- The swarm's auto-connector dials any peer in the peerstore when below 100 connections; we do
  our own dialling (``daemon.p2p.peers``), so ``disable_auto_connector`` stops it.
- The TCP transport listens with ``SO_REUSEPORT`` (``transport/tcp/tcp.py``, for hole punching),
  so a second node started on a port that is in use shares it silently and the kernel splits
  inbound connections between the two. ``check_ports_free`` refuses such a port up front.
- ``Swarm.close`` closes connections one after another, each spending ~0.2 s in fixed sleeps
  (``SwarmConn._cleanup`` 0.1 s + ``Yamux.close`` 0.1 s): 50 peers would take 10 s.
  ``close_connections`` closes them concurrently first. And it closes listeners last, so a
  closing host still accepts redials and holds its port after its peers saw it go:
  ``close_listeners`` closes them before anything else.
- The resource manager's connection count leaks on every outbound dial cancelled during the
  handshake (our dial timeout, a peer that accepts TCP but never answers: a busy or half-dead
  volunteer). ``Swarm.upgrade_outbound_raw_conn``'s ``except BaseException`` first awaits
  ``raw_conn.close()`` inside the cancelled scope, which raises ``Cancelled`` again past its
  ``except Exception``, so the pre-upgrade scope is never closed. At 1,000 leaked counts (the
  default ``max_connections``) the manager refuses every new connection, and its graceful
  degradation then halves the limit: the node is cut off for good while it keeps "dialling".
  Seen on a 30-node planet testnet: nodes stuck at one peer after a few hundred failed dials.
  ``release_scopes_of_failed_dials`` closes the scopes a failed attempt opened.
- Yamux flow control (``YamuxStream._auto_tune_and_send_window_update``, called on every read)
  sends a WINDOW_UPDATE after every read: its "partial slack" branch fires whenever any consumed
  byte is still uncredited, before the half-window hysteresis is ever reached. So every frame
  we receive costs a frame back (header, Noise encryption, a write, a TCP segment): on a
  30-daemon WAN testnet a fifth of a committee member's CPU during ``kv put``s, on a machine
  those puts saturated. ``credit_windows_at_half`` credits the window once half of it was
  consumed, as go-yamux and rust-yamux (``WindowUpdateMode::OnRead``) do.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from importlib.metadata import version
from typing import Any

import trio

SUPPORTED_LIBP2P_VERSION = "0.8.1"

_installed = version("libp2p")
if _installed != SUPPORTED_LIBP2P_VERSION:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"daemon.p2p needs libp2p=={SUPPORTED_LIBP2P_VERSION}, found {_installed}; its fixes in "
        f"{__name__} were written against that version's internals (reinstall with "
        f"pip install libp2p=={SUPPORTED_LIBP2P_VERSION})"
    )

from libp2p.network.swarm import Swarm  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.pubsub.gossipsub import GossipSub  # noqa: E402
from libp2p.pubsub.pb import rpc_pb2  # noqa: E402
from libp2p.pubsub.pubsub import Pubsub  # noqa: E402
from libp2p.pubsub.rpc_queue import PriorityQueue, RpcQueue  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import YamuxStream  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from daemon.errors import DaemonError

LIBP2P_LOGGER = "libp2p"
ROUTED_LOGGER = "novacron.p2p.libp2p"

DropCallback = Callable[[str, int], None]  # (cause, number of messages) -> None


# -- logging -------------------------------------------------------------------------------------


EXPECTED_FAILURES = ("fail to upgrade mux", "Failed to open TCP stream")
"""py-libp2p logs these at ERROR, yet they are everyday events: the first is how every AutoNAT
dial-back ends on the asker's side (``NovaAutoNAT`` hangs up after the Noise handshake), the
second every dial to a node behind NAT (which our own code already logs where it matters).
They are re-emitted at DEBUG, so a volunteer's log shows real errors only."""


class _RerouteHandler(logging.Handler):
    """Re-emits a ``libp2p.x.y`` record through the ``novacron.p2p.libp2p.x.y`` logger."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(ROUTED_LOGGER + record.name[len(LIBP2P_LOGGER):])
        level = record.levelno
        if level >= logging.ERROR and str(record.msg).startswith(EXPECTED_FAILURES):
            level = logging.DEBUG
        if target.isEnabledFor(level):
            routed = logging.makeLogRecord(record.__dict__)  # other handlers may hold `record`
            routed.levelno, routed.levelname = level, logging.getLevelName(level)
            routed.name = target.name
            target.handle(routed)


def route_libp2p_logging(level: int | str = logging.WARNING) -> None:
    """Send py-libp2p's log records into our logging tree, at ``level`` and above. Idempotent.

    ``level`` gates records at the source (libp2p logs a lot at DEBUG); handlers, filters and
    further levels are whatever the daemon configures on ``novacron.p2p.libp2p`` and above.
    """
    source = logging.getLogger(LIBP2P_LOGGER)
    source.setLevel(level)
    source.propagate = False
    reroute = next((h for h in source.handlers if isinstance(h, _RerouteHandler)), None)
    if reroute is None:
        for handler in list(source.handlers):  # libp2p's own queue handler (LIBP2P_DEBUG set)
            source.removeHandler(handler)
        reroute = _RerouteHandler()
        source.addHandler(reroute)
    # Some libp2p modules set their own logger's level (auto_connector: INFO), which bypasses
    # the gate on "libp2p"; the handler's level applies to all of them.
    reroute.setLevel(level)


# -- gossip --------------------------------------------------------------------------------------


class CountingPriorityQueue(PriorityQueue):
    """py-libp2p's bounded RPC queue, with our capacity, reporting every rejected push."""

    def __init__(self, max_size: int, on_drop: DropCallback) -> None:
        super().__init__(max_size)
        self._on_drop = on_drop

    def push(self, rpc: rpc_pb2.RPC, priority: bool = False) -> bool:
        ok = super().push(rpc, priority)
        if not ok:
            if rpc.publish:
                self._on_drop("peer_queue_full", len(rpc.publish))
            if rpc.HasField("control") or rpc.subscriptions:
                self._on_drop("control_queue_full", 1)
        return ok


class _SizedPeerQueues(dict[ID, RpcQueue]):
    """``Pubsub.peer_queues``: swaps each new queue's store for a ``CountingPriorityQueue``.

    ``Pubsub._handle_new_peer`` creates the queue with capacity 32 and stores it here before any
    RPC is pushed, so replacing its private ``_queue`` at that moment loses nothing.
    """

    def __init__(self, capacity: int, on_drop: DropCallback) -> None:
        super().__init__()
        self._capacity = capacity
        self._on_drop = on_drop

    def __setitem__(self, peer_id: ID, queue: RpcQueue) -> None:
        if len(queue) == 0 and not isinstance(queue._queue, CountingPriorityQueue):
            queue._queue = CountingPriorityQueue(self._capacity, self._on_drop)
        super().__setitem__(peer_id, queue)


class NovaPubsub(Pubsub):
    """Pubsub whose deliveries go to ``deliver`` and whose per-peer queues count their drops."""

    def __init__(
        self,
        *args: Any,
        deliver: Callable[[rpc_pb2.Message], None],
        peer_queue: int,
        on_drop: DropCallback,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._deliver = deliver
        self.peer_queues = _SizedPeerQueues(peer_queue, on_drop)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        """Called for every new valid message (ours included); ``deliver`` queues and counts."""
        self._deliver(publish_message)


class NovaGossipSub(GossipSub):
    """GossipSub that never rate-limits our own publishes and counts what it refuses to forward."""

    def __init__(self, *args: Any, on_drop: DropCallback, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_drop = on_drop

    def _check_spam_protection(self, peer_id: ID, msg: rpc_pb2.Message) -> bool:
        if self.pubsub is not None and peer_id == self.pubsub.my_id:
            return True
        ok = super()._check_spam_protection(peer_id, msg)
        if not ok:
            self._on_drop("rate_limited", 1)
        return ok

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        if reason != "queue_full":  # queue_full is counted by CountingPriorityQueue
            self._on_drop(reason, max(1, len(rpc.publish)))
        super()._handle_dropped_rpc(peer_id, rpc, reason)


def stop_pubsub_threads(pubsub: Pubsub) -> None:
    """Stop the sweeper thread that ``LastSeenCache`` starts and nothing else stops."""
    pubsub.seen_messages.stop()


# -- yamux ---------------------------------------------------------------------------------------


async def _credit_at_half_window(self: YamuxStream, *, bytes_read: int = 0) -> None:
    """0.8.1's ``_auto_tune_and_send_window_update`` without the branches that credit every
    read: bytes consumed are credited once they reach half the target window (its growth by
    the RTT epoch, ``_apply_autotune_epoch``, as before). A sender then always has at least
    half a window (128 KiB at first) once we have read what it sent, so nothing waits on it."""
    total = 0
    async with self.window_lock:
        if bytes_read > 0:
            self._pending_recv_release += bytes_read
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        threshold = self._grow_threshold()
        delta = self.target_recv_window - (self.recv_window + buffered)
        if delta > 0 and delta >= threshold:
            total = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
            self._pending_recv_release = 0
    if total > 0:
        await self.send_window_update(total, skip_lock=True)


def credit_windows_at_half() -> None:
    """Make every yamux stream credit its window at half, not on each read (module docstring).
    Idempotent; applies to streams of every host in this process."""
    YamuxStream._auto_tune_and_send_window_update = _credit_at_half_window  # type: ignore[method-assign]


# -- swarm ---------------------------------------------------------------------------------------


async def disable_auto_connector(swarm: Swarm) -> None:
    """Stop the swarm's background dialler (it would dial every peer the peerstore learns of)."""
    await swarm.auto_connector.stop()


async def close_listeners(swarm: Swarm) -> None:
    """Stop accepting before closing what was accepted: ``Swarm.close`` closes connections
    first and listeners last, so while it closes them one by one a peer's redial is accepted,
    and the port stays taken after peers have seen us go (a restart on it then finds it in
    use). Closing a listener twice is a no-op, so ``Swarm.close`` may still try.

    Its sockets leave the listener's list before they close: py-libp2p's ``close`` closes them
    and clears the list only afterwards, and a task that asked for our addresses meanwhile (a
    gossipsub graft builds a signed record of them) read a closed socket and failed the
    host's nursery with EBADF."""
    for listener in list(swarm.listeners.values()):
        inner = getattr(listener, "listeners", None)
        sockets: list[Any] = []
        if isinstance(inner, list):
            sockets, inner[:] = list(inner), []
        try:
            await listener.close()
            for sock in sockets:
                await sock.aclose()
        except Exception as err:  # one failing listener must not keep the others open
            logging.getLogger(__name__).debug("closing a listener failed: %r", err)


async def close_connections(swarm: Swarm) -> None:
    """Close every connection at once rather than one by one (~0.2 s each in ``Swarm.close``)."""

    async def close_one(conn: Any) -> None:
        try:
            await conn.close()
        except Exception as err:  # a half-dead connection must not stop the others closing
            logging.getLogger(__name__).debug("closing a connection failed: %r", err)

    async with trio.open_nursery() as nursery:
        for conn in swarm.get_connections():
            nursery.start_soon(close_one, conn)


_dial_scopes: ContextVar[list[Any] | None] = ContextVar("novacron_dial_scopes", default=None)


def release_scopes_of_failed_dials(swarm: Swarm) -> None:
    """Close the resource scopes a dial attempt opened when it fails or is cancelled (above).

    The scopes are collected per attempt in a context variable; a successful attempt leaves
    them to the swarm, which hands them over to the connection as it does today."""
    rm = getattr(swarm, "_resource_manager", None)
    if rm is None:
        return
    open_connection = rm.open_connection

    def tracked_open(*args: Any, **kwargs: Any) -> Any:
        scope = open_connection(*args, **kwargs)
        pending = _dial_scopes.get()
        if scope is not None and pending is not None:
            pending.append(scope)
        return scope

    attempt = swarm._dial_addr_single_attempt

    async def attempt_releasing(*args: Any, **kwargs: Any) -> Any:
        opened: list[Any] = []
        token = _dial_scopes.set(opened)
        try:
            return await attempt(*args, **kwargs)
        except BaseException:
            for scope in opened:
                scope.close()  # a no-op for a scope the swarm did close
            raise
        finally:
            _dial_scopes.reset(token)

    rm.open_connection = tracked_open
    swarm._dial_addr_single_attempt = attempt_releasing  # type: ignore[method-assign]


class PortInUse(DaemonError, OSError):
    """A listen address whose TCP port another socket is already listening on."""


def check_ports_free(listen: Iterable[Multiaddr]) -> None:
    """Refuse fixed TCP ports that something already listens on (see ``SO_REUSEPORT`` above).

    The probe binds without ``SO_REUSEPORT``, which the kernel refuses while any socket listens
    on the port, and with ``SO_REUSEADDR``, so that connections of a previous run lingering in
    TIME_WAIT do not count. Port 0 (pick a free port) needs no check.
    """
    for addr in listen:
        protos = {p.name for p in addr.protocols()}
        if "tcp" not in protos:
            continue
        port = int(addr.value_for_protocol("tcp"))
        if port == 0:
            continue
        family = socket.AF_INET6 if "ip6" in protos else socket.AF_INET
        ip = addr.value_for_protocol("ip6" if family == socket.AF_INET6 else "ip4")
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise PortInUse(
                        errno.EADDRINUSE,
                        f"{addr}: TCP port {port} is already in use (another node running?)",
                    ) from None
                raise


def expand_wildcard(addr: Multiaddr) -> list[str]:
    """A wildcard listen address as the concrete interface addresses it stands for (py-libp2p
    0.8.1's ``expand_wildcard_address``), loopback last, the ``/p2p/<id>`` suffix kept."""
    from libp2p.utils.address_validation import expand_wildcard_address

    text = str(addr)
    base, sep, peer = text.partition("/p2p/")
    try:
        expanded = [str(a) for a in expand_wildcard_address(Multiaddr(base))]
    except Exception:  # interface enumeration failed: advertise nothing rather than 0.0.0.0
        return []
    concrete = [a for a in expanded if "/ip4/0.0.0.0/" not in a and "/ip6/::/" not in a]
    concrete.sort(key=lambda a: a.startswith(("/ip4/127.", "/ip6/::1/")))
    return [a + sep + peer for a in concrete]


# -- NAT traversal (AutoNAT, circuit relay v2, DCUtR) -----------------------------------------
#
# - AutoNAT's dial-back (``AutoNATService._try_dial``) calls ``host.connect``, which returns at
#   once when the asker is already connected -- and it always is, since it asked over that
#   connection. So every py-libp2p server answers "dialable", behind NAT or not.
#   ``NovaAutoNAT`` dials back on a fresh socket and completes the Noise handshake (which proves
#   the peer id) without registering the connection, then hangs up; at most
#   ``AUTONAT_DIALBACKS`` dial-backs run at once, so askers cannot make us dial without bound.
#   And where py-libp2p *refuses* (E_DIAL_REFUSED, no verdict) because none of the advertised
#   addresses has the IP the request came from, ``NovaAutoNAT`` answers E_DIAL_ERROR: a node
#   that advertises its private 10.x address and arrives from its router's public IP is exactly
#   a node behind NAT, and the spec's rule (dial only the observed IP) still holds: we dial
#   nothing. (go-libp2p's client would also send its identify-observed address, which fails
#   the dial-back; ours does not collect observed addresses.)
# - ``Swarm.dial_peer`` drops every ``/p2p-circuit`` address ("this node has no relay
#   transport") even with a circuit transport registered, so a peer advertising only relayed
#   addresses could never be dialled. ``enable_circuit_dialing`` falls back to the circuit
#   transport when the direct dial fails and the peerstore holds relayed addresses.
# - ``CircuitV2Transport.dial_peer_info`` makes a reservation on the relay before every
#   CONNECT when the CLIENT role is set; our dialling transport has only the STOP role and
#   reservations are made by ``reserve_slot``, whose lifetime our own planner tracks (the
#   transport's refresher reads the wall clock in its own task).

from libp2p.host.autonat.autonat import AutoNATService  # noqa: E402
from libp2p.network.exceptions import SwarmException  # noqa: E402

AUTONAT_DIALBACKS = 2


class NovaAutoNAT(AutoNATService):
    """AutoNAT whose dial-back really dials (see above)."""

    def __init__(self, host: Any, swarm: Swarm, timeout: float) -> None:
        super().__init__(host, serve=True)
        self._swarm = swarm
        self._timeout = timeout
        self._limit = trio.CapacityLimiter(AUTONAT_DIALBACKS)

    async def _handle_dial(self, message: Any, observed_ip: str | None, is_relayed: bool) -> Any:
        response = await super()._handle_dial(message, observed_ip, is_relayed)
        if (not is_relayed and observed_ip is not None and message.dial.peer.addrs
                and response.dialResponse.status == response.E_DIAL_REFUSED):
            response.dialResponse.status = response.E_DIAL_ERROR
            response.dialResponse.statusText = (
                f"none of your addresses is at {observed_ip}, where you come from: behind NAT")
        return response

    async def _try_dial(self, peer_id: ID, addrs: list[bytes]) -> bytes | None:
        async with self._limit:
            for raw in addrs[:4]:
                try:
                    addr = Multiaddr(raw)
                    if "p2p" in {p.name for p in addr.protocols()}:
                        addr = addr.decapsulate(Multiaddr(f"/p2p/{addr.value_for_protocol('p2p')}"))
                    transport = self._swarm.transport_manager.transport_for_dialing(addr)
                    if transport is None:
                        continue
                    with trio.fail_after(self._timeout):
                        conn = await transport.dial(addr)
                        try:
                            secured = await self._swarm.upgrader.upgrade_security(
                                conn, True, peer_id)
                            await secured.close()
                        finally:
                            await conn.close()
                    return bytes(raw)
                except Exception as err:  # any failure is "could not dial this address"
                    logging.getLogger(__name__).debug("autonat dial-back %s: %r", raw, err)
        return None


def dcutr_gave_up(dcutr: Any, peer: ID) -> bool:
    """DCUtR (``DCUtRProtocol``) spent its attempts on ``peer`` and is not trying now."""
    from libp2p.relay.circuit_v2.dcutr import MAX_HOLE_PUNCH_ATTEMPTS

    return bool(dcutr._hole_punch_attempts.get(peer, 0) >= MAX_HOLE_PUNCH_ATTEMPTS
                and peer not in dcutr._in_progress)


def is_circuit(addr: Multiaddr | str) -> bool:
    return "/p2p-circuit" in str(addr)


def enable_circuit_dialing(swarm: Swarm, transport: Any) -> None:
    """Let ``swarm.dial_peer`` reach a peer through its relayed addresses (see above)."""
    direct_dial = swarm.dial_peer

    async def dial_peer(peer_id: ID) -> list[Any]:
        try:
            return await direct_dial(peer_id)
        except SwarmException:
            try:
                circuit = [a for a in swarm.peerstore.addrs(peer_id) if is_circuit(a)]
            except Exception:  # no record of the peer at all
                circuit = []
            if not circuit:
                raise
        last: Exception | None = None
        for addr in circuit[:4]:
            full = addr if str(addr).endswith(f"/p2p/{peer_id}") else Multiaddr(
                f"{addr}/p2p/{peer_id}")
            try:
                return [await transport.dial(full)]
            except Exception as err:  # try the next relay
                last = err
        raise SwarmException(f"no relay reached {peer_id}: {last!r}")

    swarm.dial_peer = dial_peer  # type: ignore[method-assign]


async def reserve_slot(host: Any, relay: ID, timeout: float) -> tuple[bool, float, str]:
    """RESERVE on ``relay`` (circuit relay v2 hop protocol): (ok, lifetime in s, detail)."""
    import time

    from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeer
    from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
    from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

    stream = None
    try:
        with trio.fail_after(timeout):
            stream = await host.new_stream(relay, [HOP_PROTOCOL])
            await write_delimited_msg(stream, HopMessage(
                type=HopMessage.RESERVE, peer=CircuitPeer(id=host.get_id().to_bytes())))
            resp = await read_delimited_msg(stream, HopMessage)
    except Exception as err:  # stream, protocol or timeout: no slot
        return False, 0.0, f"{type(err).__name__}: {err}"[:120]
    finally:
        if stream is not None:
            with trio.move_on_after(1.0):
                try:
                    await stream.close()
                except Exception:  # already reset
                    pass
    status = resp.status if resp.HasField("status") else 100  # 100: OK in circuit v2
    if status != 100 or not resp.HasField("reservation"):
        return False, 0.0, f"relay refused (status {status})"
    # The voucher's expiry is wall-clock Unix time (the wire format); convert once to a lifetime.
    return True, float(max(0, resp.reservation.expire - int(time.time()))), "ok"
