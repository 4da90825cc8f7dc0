"""``P2PHost``: the one object the daemon uses for all networking.

It owns a py-libp2p host built by ``daemon.p2p.factory`` (Noise only, yamux, tuned GossipSub),
keeps a bounded random partial view of the network connected and trims idle work connections
(``daemon.p2p.overlay`` decides which peers; ``daemon.p2p.peers`` when to redial; this shell
dials and hangs up), learns peers' addresses from an address source (the signed capability
records: ``set_address_source``) and dials them on demand when a service sends, carries framed
streams (``daemon.p2p.streams``) and gossip (``daemon.p2p.gossip``), counts faults and bans peers
past a threshold, and closes everything when ``run`` is cancelled.

Lifecycle::

    host = P2PHost(identity, config, random.Random(seed))
    host.handle("/novacron/pbft/2", on_pbft_frame)      # register before or after start
    host.subscribe("novacron/crdt/1", on_delta_batch)
    await nursery.start(host.run)                      # returns once listening
    host.send(peer, "/novacron/pbft/2", frame)
    ...
    nursery.cancel_scope.cancel()                      # closes sockets within close_timeout

Connection events (``on_peer``) and metrics are plain synchronous callbacks and dicts; handlers
for frames, requests and gossip are async and run one at a time per stream / per topic.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.host.basic_host import BasicHost
from libp2p.network.swarm import Swarm
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from daemon.p2p import libp2p_fixes
from daemon.p2p.compat import Mismatch, compare
from daemon.p2p.config import P2PConfig
from daemon.p2p.errors import P2PError
from daemon.p2p.addresses import AddressList, AddressLookup, parse_peer_addr, transport_addr
from daemon.p2p.factory import GossipParts, build_gossip, build_swarm_and_host
from daemon.p2p.gossip import Gossip, GossipHandler
from daemon.p2p.metrics import P2PMetrics
from daemon.p2p.overlay import Close, Overlay, OverlayPolicy, Unwant, Want
from daemon.p2p.peers import BackoffPolicy, KnownPeer, PeerBook
from daemon.p2p.reachability import Reachability, Traversal, TraversalPolicy
from daemon.p2p.probing import RttProber, muxer_round_trip
from daemon.p2p.rtt import DEAD_AFTER_MISSES, RttTable, dial_wait
from daemon.p2p.traversal import NatTraversal
from daemon.p2p.streams import NETWORK_ERRORS, FrameHandler, FramedStreams, RequestHandler
from protocol.identity import NodeId, NodeIdentity

log = logging.getLogger("novacron.p2p.host")

EXCHANGE_TIMEOUT_S = 5.0
"""How long a peer exchange may take before the hang-up goes ahead without it."""
OVERLAY_TICK = 1.0
"""How often the overlay decides (view, shuffles, idle trimming)."""
LEARN_EVERY = 5.0
"""How often the address source (every known record) is read into the overlay."""

ADDRS_TTL = 2.0
"""Seconds our own listen addresses are reused before libp2p is asked again."""


def _now() -> float:
    """The trio clock (the PeerBook's time base); 0.0 outside a trio run (nothing is due)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0


def _peer_id(node: str) -> ID | None:
    try:
        return ID.from_base58(node)
    except Exception:  # base58 and multihash errors come in several types
        return None


class _Events(INotifee):
    """Swarm notifee: connection opened/closed -> P2PHost."""

    def __init__(self, owner: P2PHost) -> None:
        self._owner = owner

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        muxed = conn.muxed_conn
        outbound = bool(getattr(muxed, "is_initiator_value", getattr(muxed, "is_initiator", True)))
        self._owner._on_connection(NodeId(str(muxed.peer_id)), outbound=outbound)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._owner._on_disconnection(NodeId(str(conn.muxed_conn.peer_id)))

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass


class P2PHost:
    """A NovaCron node's libp2p host: streams, gossip, peers, faults, metrics."""

    def __init__(self, identity: NodeIdentity, config: P2PConfig, rng: random.Random) -> None:
        self.identity = identity
        self.node_id: NodeId = identity.node_id
        self.config = config
        self._metrics = P2PMetrics()
        self._book = PeerBook(
            self_id=self.node_id,
            backoff=BackoffPolicy(config.reconnect_min, config.reconnect_max),
            fault_threshold=config.fault_threshold,
            fault_decay=config.fault_decay,
            ban_seconds=config.ban_seconds,
            rng=rng,
        )
        self._bootstrap = [parse_peer_addr(a) for a in config.bootstrap]
        seeds: dict[NodeId, tuple[str, ...]] = {}
        for peer, addr in self._bootstrap:
            if peer != self.node_id:
                seeds[peer] = (*seeds.get(peer, ()), addr)
        self._overlay = Overlay(
            self.node_id,
            OverlayPolicy(
                degree=config.view_degree,
                max_connections=config.max_connections,
                idle_close=config.idle_close,
                shuffle_every=config.view_shuffle,
            ),
            rng,
            seeds=seeds,
        )
        self._address_list: AddressList = lambda: ()
        self._address_lookup: AddressLookup = lambda node: ()
        self._keep_source: Callable[[], Iterable[str]] = lambda: ()
        self._exchange: tuple[str, Callable[[list[NodeId]], bytes | None]] | None = None
        self._warm: list[str] = []
        """Protocols whose streams are opened to kept peers as they connect (``warm_kept``)."""
        self._exchanged_from: set[NodeId] = set()
        """Connected peers whose peer exchange we took (one per connection)."""
        self._pending_remember: list[tuple[NodeId, str, bool]] = []
        self._streams = FramedStreams(
            self_id=self.node_id,
            config=config,
            metrics=self._metrics,
            fault=self.report_fault,
            is_banned=self._is_banned,
            can_reach=self._can_reach,
            used=self._used,
            keep_open=lambda peer: self._overlay.is_kept(peer),
        )
        self._gossip = Gossip(
            self_id=self.node_id,
            config=config,
            metrics=self._metrics,
            fault=self.report_fault,
            is_banned=self._is_banned,
        )
        self._on_up: list[Callable[[str], None]] = []
        self._on_down: list[Callable[[str], None]] = []
        self._connected: set[NodeId] = set()
        self._heard: dict[NodeId, float] = {}
        """Connected peer -> when a frame last came from it (a slow ping is no miss then)."""
        self._user_remembered: set[NodeId] = set()
        self.rtts = RttTable()
        self._blacklisted: set[NodeId] = set()
        self._host: BasicHost | None = None
        self._addrs_cache: tuple[float, BasicHost | None, list[str]] = (-1e18, None, [])
        self._swarm: Swarm | None = None
        self._gossip_parts: GossipParts | None = None
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._started = False
        self.traversal = Traversal(self.node_id, TraversalPolicy(
            confirmations=config.autonat_confirmations, relays_wanted=config.relays_wanted))
        self._rng = rng
        self._prober = RttProber(
            self.rtts, config.dial_timeout,
            targets=lambda: (self._overlay.view() | self._overlay.kept()) & self._connected,
            open_stream=self._open_ping, muxer_rtt=self._muxer_rtt,
            heard_since=lambda peer, t: self._heard.get(peer, float("-inf")) >= t or
            self._streams.line_busy(peer, t),
            on_dead=self._ping_dead, running=lambda: self._nursery is not None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, start GossipSub, keep remembered peers connected; close everything on exit.

        ``task_status.started()`` once listening. Runs until cancelled; on cancellation all
        connections and listeners are closed within ``config.close_timeout`` seconds, then every
        task of the host ends. A host runs once: make a new ``P2PHost`` to restart.
        """
        if self._started:
            raise P2PError("a P2PHost runs once; create a new one to restart")
        self._started = True
        libp2p_fixes.route_libp2p_logging(self.config.libp2p_log_level.upper())
        try:
            libp2p_fixes.check_ports_free(self.config.listen_multiaddrs)
        except libp2p_fixes.PortInUse as err:
            raise P2PError(str(err.strerror)) from None
        swarm, host = build_swarm_and_host(self.identity, self.config)
        libp2p_fixes.release_scopes_of_failed_dials(swarm)
        parts = build_gossip(
            host, self.config, deliver=self._gossip.deliver, on_drop=self._gossip.on_drop
        )
        swarm.register_notifee(_Events(self))
        self._swarm, self._host, self._gossip_parts = swarm, host, parts
        # py-libp2p cleans up in ``finally`` blocks that await; run under a cancelled scope they
        # stop at their first await, marking connections closed without closing their sockets.
        # So the machinery runs shielded, and only after we have closed the host explicitly do
        # we cancel it.
        machinery = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await nursery.start(self._run_machinery, machinery, swarm, host, parts)
                    log.info("p2p host %s listening on %s", self.node_id, self.listen_addrs())
                    task_status.started()
                    await trio.sleep_forever()
                finally:
                    self._nursery = None
                    self._streams.detach()
                    self._gossip.detach()
                    try:
                        with trio.CancelScope(shield=True):
                            with trio.move_on_after(self.config.close_timeout) as scope:
                                await libp2p_fixes.close_listeners(swarm)
                                await libp2p_fixes.close_connections(swarm)
                                await host.close()
                            if scope.cancelled_caught:
                                log.warning(
                                    "p2p host close took over %.1f s", self.config.close_timeout
                                )
                    finally:  # a close that raised must not leave the shielded tasks running
                        machinery.cancel()
        finally:
            libp2p_fixes.stop_pubsub_threads(parts.pubsub)
            self._connected.clear()
            self._host = None
            log.info("p2p host %s stopped", self.node_id)

    async def _run_machinery(
        self,
        machinery: trio.CancelScope,
        swarm: Swarm,
        host: BasicHost,
        parts: GossipParts,
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with machinery:
            async with host.run(listen_addrs=list(self.config.listen_multiaddrs)):
                await libp2p_fixes.disable_auto_connector(swarm)
                async with (
                    background_trio_service(parts.pubsub),
                    background_trio_service(parts.router),
                ):
                    await parts.pubsub.wait_until_ready()
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        self._streams.attach(host, nursery)
                        await self._gossip.attach(parts.pubsub, nursery)
                        for peer, addr, bootstrap in self._pending_remember:
                            self._remember(peer, addr, bootstrap=bootstrap)
                        self._pending_remember.clear()
                        nursery.start_soon(self._keep_connected, nursery)
                        nursery.start_soon(self._run_overlay)
                        nursery.start_soon(self._prober.run)
                        if self.config.nat_traversal:
                            nat = NatTraversal(host, swarm, self.config, self.traversal,
                                               self._rng, own_addrs=self._direct_addrs,
                                               relay_addrs=self._book.addrs)
                            await nursery.start(nat.run)
                        task_status.started()
                        await trio.sleep_forever()

    # -- addresses and peers -------------------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Our full multiaddrs, ``/ip4/.../tcp/<port>/p2p/<node id>``. Empty until running.

        Behind NAT (AutoNAT says nobody can dial us) with relay slots held, these are our
        relayed addresses (``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<node id>``) only: our own
        would only make peers wait for dials that cannot succeed.

        A wildcard listen address (``/ip4/0.0.0.0``, a volunteer's default) is advertised as
        the machine's interface addresses, loopback last: nobody can dial 0.0.0.0, and these
        go into our signed record, from which other nodes learn how to reach us."""
        if self._host is None:
            return []
        if self.traversal.state is Reachability.PRIVATE:
            relayed = self.traversal.relayed_addrs()
            if relayed:
                return [f"{a}/p2p/{self.node_id}" for a in relayed]
        return self._direct_addrs()

    def _direct_addrs(self) -> list[str]:
        """Our dialable addresses, recomputed at most every ``ADDRS_TTL`` s: the soft state
        reads them on every tick, and libp2p builds them anew each time (observed addresses,
        netaddr parsing): 3% of a busy daemon's CPU at 30 daemons."""
        if self._host is None:
            return []
        at, host, cached = self._addrs_cache
        now = _now()
        if host is self._host and now - at < ADDRS_TTL:
            return list(cached)
        out: list[str] = []
        for addr in self._host.get_addrs():
            text = str(addr)
            if "/ip4/0.0.0.0/" in text or "/ip6/::/" in text:
                out += libp2p_fixes.expand_wildcard(addr)
            else:
                out.append(text)
        addrs = list(dict.fromkeys(out))
        self._addrs_cache = (now, self._host, addrs)
        return list(addrs)

    def connected_peers(self) -> list[str]:
        return sorted(self._connected)

    def known_peers(self) -> list[KnownPeer]:
        return self._book.snapshot(_now())

    def add_peer(self, multiaddr: str) -> None:
        """Remember a peer (``.../p2p/<node id>``) and keep it connected, redialling with backoff.

        Raises ``addresses.BadAddress`` for text that is not such a multiaddr.
        """
        peer, addr = parse_peer_addr(multiaddr)
        self._user_remembered.add(peer)
        self._overlay.learn(peer, [addr], _now())
        if self._nursery is None:
            self._pending_remember.append((peer, addr, False))
        else:
            self._remember(peer, addr, bootstrap=False)

    def set_address_source(self, all_addrs: AddressList, lookup: AddressLookup) -> None:
        """Where peers' addresses come from: ``all_addrs()`` yields (node id, multiaddrs) for
        every node we know of (read every ``LEARN_EVERY`` s into the overlay); ``lookup(node)``
        answers for one node when a service sends to a peer we have no address for yet."""
        self._address_list, self._address_lookup = all_addrs, lookup

    def set_keep_source(self, keep: Callable[[], Iterable[str]]) -> None:
        """The peers the services work with now (e.g. our committees): never trimmed as idle."""
        self._keep_source = keep

    def overlay_summary(self) -> dict[str, Any]:
        return self._overlay.summary()

    def overlay_view(self) -> set[str]:
        """The peers of our partial view (kept connected for the soft state)."""
        return set(self._overlay.view())

    def overlay_kept(self) -> set[str]:
        """The peers the services work with now (our committees)."""
        return set(self._overlay.kept())

    def forget_peer(self, peer: str) -> None:
        """Stop redialling a peer added with ``add_peer`` (or a bootstrap peer)."""
        self._book.forget(NodeId(peer))

    def _remember(self, peer: NodeId, addr: str, *, bootstrap: bool) -> None:
        if not self._book.remember(peer, [addr], bootstrap=bootstrap, now=_now()):
            return
        host = self._host
        if host is not None:  # permanent (ttl 0): libp2p's own connect() uses a 120 s ttl
            host.get_peerstore().add_addrs(ID.from_base58(peer), [Multiaddr(addr)], 0)
        self._wake.set()

    def _can_reach(self, peer: NodeId) -> bool:
        """Can a stream to ``peer`` be opened? Yes if connected or an address is known (then
        py-libp2p dials it on demand); the address source is asked for peers we never met."""
        if peer in self._connected or self._book.addrs(peer):
            return True
        host = self._host
        if host is None:
            return False
        pid = _peer_id(peer)
        if pid is None:
            return False
        try:
            if host.get_peerstore().addrs(pid):
                return True
        except Exception:  # py-libp2p raises for a peer it has no record of
            pass
        addrs = self._overlay.addrs(peer)
        if not addrs:
            try:
                found = [transport_addr(a, peer) for a in self._address_lookup(peer)]
            except Exception:  # the source is another service: never let it break a send
                log.exception("address lookup for %s failed", peer)
                return False
            if self._overlay.learn(peer, found, _now()):
                addrs = self._overlay.addrs(peer)
        if not addrs:
            return False
        try:
            host.get_peerstore().add_addrs(pid, [Multiaddr(a) for a in addrs], 0)
        except Exception:  # a malformed address in a record: unreachable, not a crash
            return False
        self._metrics.dials["on_demand"] += 1
        return True

    def _used(self, peer: NodeId, inbound: bool = False) -> None:
        now = _now()
        self._overlay.used(peer, now)
        if inbound:
            self._heard[peer] = now

    def on_peer(
        self, connected: Callable[[str], None], disconnected: Callable[[str], None]
    ) -> None:
        """Call ``connected(node_id)`` / ``disconnected(node_id)`` as peers come and go.

        Once per peer transition (not per connection); not called while the host shuts down.
        Callbacks must not block; exceptions are logged and ignored.
        """
        self._on_up.append(connected)
        self._on_down.append(disconnected)

    def _on_connection(self, peer: NodeId, *, outbound: bool) -> None:
        if self._nursery is None:  # shutting down
            return
        now = _now()
        if self._book.is_banned(peer, now):
            self._disconnect_soon(peer)
            return
        for close in self._overlay.connected(peer, now, outbound=outbound):
            self._close(close)  # the budget, kept as connections arrive
        if peer in self._connected:
            return
        self._connected.add(peer)
        self._book.connected(peer, now)
        if self._overlay.is_kept(peer):
            for protocol in self._warm:
                self._streams.warm(peer, protocol)
        log.debug("connected to %s", peer)
        self._fire(self._on_up, peer)
        self._wake.set()

    def _on_disconnection(self, peer: NodeId) -> None:
        if self._nursery is None:  # our own shutdown: no events, the daemon is stopping too
            return
        swarm = self._swarm
        if swarm is not None:
            if any(not c.is_closed for c in swarm.get_connections(ID.from_base58(peer))):
                return  # another connection to the same peer is still up
        if peer not in self._connected:
            return
        self._connected.discard(peer)
        self._heard.pop(peer, None)
        self._exchanged_from.discard(peer)
        self._overlay.disconnected(peer)
        self._book.disconnected(peer, _now())
        log.debug("disconnected from %s", peer)
        self._fire(self._on_down, peer)
        self._wake.set()

    def _fire(self, callbacks: list[Callable[[str], None]], peer: NodeId) -> None:
        for callback in callbacks:
            try:
                callback(peer)
            except Exception:
                log.exception("on_peer callback raised for %s", peer)

    def _close(self, action: Close) -> None:
        """Hang up as the overlay decided; first, for a peer that dialled us and that we close
        for the budget, a peer exchange (``set_peer_exchange``)."""
        log.debug("closing connection to %s (%s)", action.node, action.reason)
        self._metrics.dials[f"closed_{action.reason.split()[0]}"] += 1
        exchange = self._exchange
        frame = None
        if action.exchange and exchange is not None:
            try:
                frame = exchange[1](self._overlay.exchange_sample(action.node))
            except Exception:  # another service's callback: log, hang up without it
                log.exception("peer exchange source failed")
        if frame is None or exchange is None or self._nursery is None:
            self._disconnect_soon(action.node)
            return
        self._nursery.start_soon(self._exchange_then_close, action.node, exchange[0], frame)

    async def _exchange_then_close(self, peer: NodeId, protocol: str, frame: bytes) -> None:
        try:
            await self._streams.request(peer, protocol, frame, EXCHANGE_TIMEOUT_S)
            self._metrics.dials["exchanges_sent"] += 1
        except Exception as err:  # an older peer, a lost line: it just learns nothing
            log.debug("peer exchange to %s failed: %r", peer, err)
        host = self._host
        if host is not None:
            await self._disconnect(host, peer)

    def warm_kept(self, protocol: str) -> None:
        """Keep ``protocol``'s outbound stream open to every peer a service works with now
        (``set_keep_source``: its committees' members), from when it connects: a committee's
        first request after forming, or after a quiet spell, then pays no stream set-up. Such
        streams are not closed when idle while the peer stays kept."""
        if protocol not in self._warm:
            self._warm.append(protocol)

    def set_peer_exchange(self, protocol: str, offer: Callable[[list[NodeId]], bytes | None]
                          ) -> None:
        """``offer(nodes)``: the frame that tells a peer of ``nodes`` (their signed records),
        sent on ``protocol`` to a peer we hang up on for being full. Unset: no exchange."""
        self._exchange = (protocol, offer)

    def exchanged(self, sender: str, peers: Iterable[tuple[str, Iterable[str]]]) -> bool:
        """``sender`` told us of ``peers`` (node id, addresses; signatures checked by the
        caller) before hanging up on us for being full. Taken only from a peer we dialled,
        once per connection: we learn the peers and stop picking the sender for our view."""
        node = NodeId(sender)
        now = _now()
        if not self._overlay.dialled(node) or node in self._exchanged_from:
            return False
        self._exchanged_from.add(node)
        for peer, addrs in peers:
            self._overlay.learn(NodeId(peer), list(addrs), now)
        self._overlay.full(node, now)
        self._metrics.dials["exchanges_received"] += 1
        if self._nursery is not None:
            self._decide(now)  # out of the view now, before the book redials it
        return True

    def _disconnect_soon(self, peer: NodeId) -> None:
        if self._nursery is not None and self._host is not None:
            self._nursery.start_soon(self._disconnect, self._host, peer)

    async def _disconnect(self, host: BasicHost, peer: NodeId) -> None:
        try:
            await host.disconnect(ID.from_base58(peer))
        except Exception as err:  # task boundary: a failed hang-up must not end the node
            log.debug("disconnecting %s failed: %r", peer, err)

    # -- keeping remembered peers connected ----------------------------------------------------

    async def _keep_connected(self, nursery: trio.Nursery) -> None:
        while self._nursery is not None:  # None once closing has begun
            now = trio.current_time()
            self._lift_expired_bans(now)
            for peer in self._book.due(now):
                nursery.start_soon(self._dial, peer)
            # Sleep until the next dial is due or something changes (a dial ends, a peer comes
            # or goes, a peer is added); at least every reconnect_max, for bans that expire.
            deadline = now + self.config.reconnect_max
            wake_at = self._book.next_wakeup()
            if wake_at is not None:
                deadline = min(deadline, wake_at)
            self._wake = trio.Event()
            with trio.move_on_at(deadline):
                await self._wake.wait()

    async def _dial(self, peer: NodeId) -> None:
        host, swarm = self._host, self._swarm
        if host is None or swarm is None or self._nursery is None:
            return
        pid = ID.from_base58(peer)
        addrs = [Multiaddr(a) for a in self._book.addrs(peer)]
        host.get_peerstore().add_addrs(pid, addrs, 0)
        swarm.unblock_peer(pid)  # our backoff decides when to retry, not libp2p's 60 s blocklist
        self._metrics.dials["attempts"] += 1
        try:
            with trio.fail_after(dial_wait(self.rtts, peer, self._connected, self.config)):
                await host.connect(PeerInfo(pid, addrs))
        except Exception as err:  # task boundary: any failed dial just backs off
            delay = self._book.dial_failed(peer, trio.current_time())
            self._metrics.dials["failures"] += 1
            expected = isinstance(err, (*NETWORK_ERRORS, trio.TooSlowError))
            log.log(
                logging.DEBUG if expected else logging.WARNING,
                "dial %s failed (%r); next try in %.2f s", peer, err, delay,
                exc_info=not expected,
            )
        else:
            host.get_peerstore().add_addrs(pid, addrs, 0)  # connect() re-set a 120 s ttl
            self._book.dial_succeeded(peer, trio.current_time())
            self._metrics.dials["succeeded"] += 1
            self._on_connection(peer, outbound=True)
        finally:
            self._wake.set()

    # -- the partial view ----------------------------------------------------------------------

    async def _run_overlay(self) -> None:
        """Carry out the overlay's decisions: view peers join the book (kept connected, redialled
        with backoff) or leave it; idle and surplus connections are closed."""
        next_learn = 0.0
        while self._nursery is not None:
            now = trio.current_time()
            if now >= next_learn:
                next_learn = now + LEARN_EVERY
                self._learn_all(now)
            self._decide(now)
            await trio.sleep(OVERLAY_TICK)

    def _decide(self, now: float) -> None:
        """One overlay decision, carried out: at each tick, and at once when a peer said it is
        full (its connection is gone; the book must not redial it meanwhile)."""
        try:
            self._overlay.keep([*self._keep_source(), *self.traversal.relays()])
        except Exception:  # another service's callback: log, keep the old set
            log.exception("keep source failed")
        if self._warm:
            for peer in self._overlay.kept() & self._connected:
                for protocol in self._warm:  # a no-op for a stream open or opening
                    self._streams.warm(peer, protocol)
        failures = {p.node_id: p.failures for p in self._book.snapshot(now)}
        actions = self._overlay.tick(
            now, lambda n: failures.get(n, 0), lambda n: self._book.is_banned(n, now)
        )
        for action in actions:
            if isinstance(action, Want):
                boot = action.node in self._overlay.seeds
                for addr in action.addrs:
                    self._remember(action.node, addr, bootstrap=boot)
            elif isinstance(action, Unwant):
                if action.node not in self._user_remembered:
                    self._book.forget(action.node)
            elif isinstance(action, Close):
                self._close(action)

    def _ping_dead(self, peer: NodeId, timeout: float) -> None:
        log.info("%s answered no ping for %.1f s x %d: hanging up to redial", peer, timeout,
                 DEAD_AFTER_MISSES)
        self._metrics.dials["closed_dead"] += 1
        self._disconnect_soon(peer)

    def _muxer_rtt(self, peer: NodeId, since: float) -> float | None:
        """The freshest round trip a connection to ``peer`` timed itself since ``since``."""
        swarm = self._swarm
        if swarm is None:
            return None
        for conn in swarm.get_connections(ID.from_base58(peer)):
            if not conn.is_closed:
                rtt = muxer_round_trip(conn.muxed_conn, since)
                if rtt is not None:
                    return rtt
        return None

    async def _open_ping(self, peer: NodeId) -> INetStream | None:
        host = self._host
        return None if host is None else await host.new_stream(ID.from_base58(peer),
                                                               [PING_PROTOCOL])

    @property
    def max_frame(self) -> int:
        """The largest payload a frame, request or response may carry."""
        return self.config.max_frame

    def round_trip(self, peers: Iterable[str]) -> float | None:
        """The median conservative round trip (s) to those of ``peers`` we have measured."""
        return self.rtts.group(peers)

    def _learn_all(self, now: float) -> None:
        try:
            entries = list(self._address_list())
        except Exception:  # another service's callback: log, learn nothing this round
            log.exception("address source failed")
            return
        learned = False
        for node, addrs in entries:
            learned |= self._overlay.learn(NodeId(node), [transport_addr(a, node) for a in addrs], now)
        if learned:
            self._streams.address_learned()

    # -- faults --------------------------------------------------------------------------------

    def report_fault(self, peer: str, reason: str) -> None:
        """Count a fault against ``peer`` (a bad envelope, a broken frame, ...).

        Past ``fault_threshold`` (a leaky bucket; see ``daemon.p2p.peers``) the peer is banned
        for ``ban_seconds``: disconnected, its connections closed as they open, its streams
        reset, its gossip ignored, and ``send``/``request`` to it refused.
        """
        node = NodeId(peer)
        self._metrics.fault(node, reason)
        if _peer_id(node) is None:  # not a peer id at all: nobody to ban
            log.warning("fault %r reported against %r, which is not a peer id", reason, peer)
            return
        if self._book.fault(node, _now()):
            self._metrics.bans[node] += 1
            log.warning(
                "banning peer %s for %.0f s (last fault: %s)", node, self.config.ban_seconds, reason
            )
            parts = self._gossip_parts
            if parts is not None and self._nursery is not None:
                parts.pubsub.add_to_blacklist(ID.from_base58(node))
                self._blacklisted.add(node)
            self._disconnect_soon(node)

    def _is_banned(self, peer: NodeId) -> bool:
        return self._book.is_banned(peer, _now())

    def _lift_expired_bans(self, now: float) -> None:
        parts = self._gossip_parts
        for peer in [p for p in self._blacklisted if not self._book.is_banned(p, now)]:
            self._blacklisted.discard(peer)
            if parts is not None:
                parts.pubsub.remove_from_blacklist(ID.from_base58(peer))

    # -- streams and gossip (see daemon.p2p.streams / daemon.p2p.gossip for the semantics) ------

    def handle(self, protocol: str, handler: FrameHandler) -> None:
        """Frames a peer sends on ``protocol`` go to ``handler(peer, frame)``, in order."""
        self._streams.handle(protocol, handler)

    def handle_request(self, protocol: str, handler: RequestHandler) -> None:
        """Each request on ``protocol`` is answered with ``await handler(peer, frame)``."""
        self._streams.handle_request(protocol, handler)

    def send(self, peer: str, protocol: str, frame: bytes) -> bool:
        """Queue a frame for ``peer``; False (and a counted drop) if it cannot be queued."""
        return self._streams.send(NodeId(peer), protocol, frame)

    async def request(self, peer: str, protocol: str, frame: bytes, timeout: float) -> bytes:
        """One request/response on a fresh stream; raises ``RequestFailed`` (with ``reason``)."""
        return await self._streams.request(NodeId(peer), protocol, frame, timeout)

    def incompatible_peers(self) -> dict[str, Mismatch]:
        """Connected peers that identify says speak other versions of our protocols (they
        cannot open our streams, nor we theirs: ``daemon.p2p.compat``)."""
        host = self._host
        if host is None:
            return {}
        ours = self._streams.protocols()
        out: dict[str, Mismatch] = {}
        for peer in sorted(self._connected):
            pid = _peer_id(peer)
            try:
                theirs = host.get_peerstore().get_protocols(pid) if pid is not None else []
            except PeerStoreError:  # not identified yet: nothing known to compare
                continue
            mismatch = compare(ours, theirs)
            if mismatch is not None:
                out[peer] = mismatch
        return out

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        self._gossip.subscribe(topic, handler)

    async def publish(self, topic: str, data: bytes) -> None:
        await self._gossip.publish(topic, data)

    # -- metrics -------------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        now = _now()
        parts = self._gossip_parts
        return self._metrics.snapshot(
            connected_peers=len(self._connected),
            known_peers=len(self._book.snapshot(now)),
            banned_peers=len(self._book.banned(now)),
            # peers in our mesh per topic, and peers known to be subscribed per topic
            gossip_mesh={t: len(p) for t, p in parts.router.mesh.items()} if parts else {},
            gossip_peers={t: len(p) for t, p in parts.pubsub.peer_topics.items()} if parts else {},
            round_trips=dict(self._prober.counts),
        )
