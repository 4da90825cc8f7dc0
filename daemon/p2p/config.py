"""Settings of the libp2p host wrapper, with defaults chosen for a NovaCron network of 5-50 nodes.

Every value that py-libp2p 0.8.1 gets wrong for us by default is a field here, with the reason in
its comment; ``daemon.p2p.libp2p_fixes`` says how each one is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from multiaddr import Multiaddr

from daemon.p2p.errors import P2PConfigError

# GossipSub refuses RPCs of 1 MiB or more (go-libp2p-pubsub's limit, which py-libp2p copies).
# A published message carries our payload plus libp2p's envelope (from, seqno, topic, key,
# signature: ~200 bytes); keep a margin so a payload at our cap always fits.
GOSSIP_RPC_LIMIT = 1024 * 1024
GOSSIP_ENVELOPE_MARGIN = 16 * 1024


@dataclass(frozen=True)
class P2PConfig:
    """How a node's libp2p host listens, dials, gossips and bounds its queues."""

    # Multiaddrs to listen on, e.g. ("/ip4/127.0.0.1/tcp/0",). A setting, not a constant: tests
    # and the local testnet use 127.0.0.1 only; a volunteer's daemon may listen more widely.
    listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",)
    # Full multiaddrs with /p2p/<node id>; dialled at start and redialled with backoff forever.
    bootstrap: Sequence[str] = ()
    # Addresses to advertise instead of the listen addresses (behind a port forward); empty:
    # advertise exactly what we listen on.
    announce: Sequence[str] = ()

    # GossipSub. py-libp2p's heartbeat is 120 s (a mesh takes minutes to form); 1 s is the spec's.
    gossip_heartbeat: float = 1.0
    # Mesh degree D / D_low / D_high: the spec's 6/4/12 are right for 5-50 nodes (a 5-node network
    # is a full mesh; at 50 nodes a message reaches everyone in ~3 hops).
    gossip_degree: int = 6
    gossip_degree_low: int = 4
    gossip_degree_high: int = 12
    # Messages per second per forwarding peer per topic before forwarding is refused (py-libp2p:
    # 10, which silently dropped even our own publishes). A mesh peer forwards every node's
    # batches, so this bounds network size x batch rate; our own publishes are never limited.
    gossip_rate_limit: float = 200.0
    # Outbound RPCs queued per gossip peer (py-libp2p: 32) before drops, which are counted.
    gossip_peer_queue: int = 256
    # Received messages queued per subscribed topic for the handler (py-libp2p: 32).
    gossip_delivery_queue: int = 256
    # How long a message id is remembered, so a duplicate is neither delivered nor re-forwarded.
    gossip_seen_ttl: int = 120

    # Direct framed streams.
    max_frame: int = 512 * 1024  # payload cap for frames, requests, responses and gossip
    send_queue: int = 256  # frames per (peer, protocol) outbound queue before drops (counted)
    stream_idle: float = 120.0  # an outbound stream with nothing to send for this long is closed
    # Frames for a peer whose address is not known yet wait this long for it (its signed record
    # is usually on its way from the seed) before they are dropped as "unknown_peer".
    address_wait: float = 10.0

    # Dialling and reconnection: exponential backoff with jitter from the caller's seeded rng.
    # A dial waits ``dial_timeout``, or ``DIAL_RTTS`` measured round trips when the peer (or,
    # before it is measured, the network we see) is farther, at most ``dial_timeout_ceiling``
    # (``daemon.p2p.rtt.dial_wait``): a TCP, Noise and Yamux set-up is ~5 round trips, and
    # on 300 ms links with loaded peers a fixed 5 s failed most dials, each a wasted handshake
    # on both sides, redialled soon after.
    dial_timeout: float = 5.0
    dial_timeout_ceiling: float = 30.0
    # A connection must finish its security and muxer handshake within this, or it is dropped
    # (so a peer that connects and sends garbage or nothing holds a socket this long at most).
    # Above a dial's wait on a far, loaded network (~8 round trips of 1-2 s), or the dialler's
    # patience is cut short here.
    handshake_timeout: float = 20.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0

    # The partial view (``daemon.p2p.overlay``): peers we dial and keep for the soft state,
    # the cap on all connections, when an outbound work connection counts as idle, how often
    # one view member is swapped for a random known peer. 8 / 48 keep a volunteer's machine at
    # a few dozen connections whatever the network's size; ~2 x 8 links per node make the
    # overlay an expander, so soft state reaches N nodes in O(log N) rounds.
    view_degree: int = 8
    max_connections: int = 48
    idle_close: float = 60.0
    view_shuffle: float = 30.0

    # NAT traversal (``daemon.p2p.traversal``): AutoNAT asks peers to dial us back, a node that
    # cannot be dialled holds circuit-relay slots on ``relays_wanted`` dialable peers and tries
    # DCUtR hole punching. ``nat_traversal`` off: none of it runs (a node with a known public
    # address, or a test that wants a bare host).
    nat_traversal: bool = True
    autonat_confirmations: int = 3
    relays_wanted: int = 2
    # Serving as a relay for others (a volunteer lends a capped share of its link): slots held
    # for NATed peers, circuits open per peer, and bytes / seconds per circuit before the relay
    # resets it (the two ends redial, or have upgraded to direct by then). Our own traffic over
    # a relay is consensus and soft state, a few KB/s; blobs go direct where they can.
    relay_service: bool = True
    relay_max_reservations: int = 16
    relay_circuits_per_peer: int = 8
    relay_circuit_bytes: int = 128 * 1024 * 1024
    relay_circuit_seconds: int = 1800
    relay_reservation_ttl: int = 900

    # Faults: each counted fault adds 1 to a peer's score, which leaks away at fault_decay per
    # second; at fault_threshold the peer is disconnected and banned for ban_seconds.
    fault_threshold: float = 20.0
    fault_decay: float = 0.1
    ban_seconds: float = 300.0

    # Budget for closing the host (connections, listeners) when run() is cancelled.
    close_timeout: float = 1.5

    # Level of py-libp2p's own log records, re-rooted under "novacron.p2p.libp2p".
    libp2p_log_level: str = "WARNING"

    _parsed_listen: tuple[Multiaddr, ...] = field(init=False, repr=False, compare=False)
    _parsed_bootstrap: tuple[Multiaddr, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("listen", "bootstrap", "announce"):
            if isinstance(getattr(self, name), str):
                raise P2PConfigError(f"{name} is a list of multiaddrs, not one string")
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for text in self.announce:
            _parse(text, "announce")
        if not self.listen:
            raise P2PConfigError("listen is empty; give at least one, e.g. /ip4/127.0.0.1/tcp/0")
        object.__setattr__(self, "_parsed_listen", tuple(_parse(a, "listen") for a in self.listen))
        boot = tuple(_parse(a, "bootstrap") for a in self.bootstrap)
        for text, addr in zip(self.bootstrap, boot):
            if "p2p" not in {p.name for p in addr.protocols()}:
                raise P2PConfigError(
                    f"bootstrap address {text!r} has no /p2p/<node id>; add the peer's node id"
                )
        object.__setattr__(self, "_parsed_bootstrap", boot)

        cap = GOSSIP_RPC_LIMIT - GOSSIP_ENVELOPE_MARGIN
        if not 0 < self.max_frame <= cap:
            raise P2PConfigError(f"max_frame must be in 1..{cap} (gossip drops RPCs >= 1 MiB)")
        positive = {
            "gossip_heartbeat": self.gossip_heartbeat,
            "gossip_rate_limit": self.gossip_rate_limit,
            "dial_timeout": self.dial_timeout,
            "handshake_timeout": self.handshake_timeout,
            "reconnect_min": self.reconnect_min,
            "stream_idle": self.stream_idle,
            "fault_threshold": self.fault_threshold,
            "close_timeout": self.close_timeout,
            "idle_close": self.idle_close,
            "address_wait": self.address_wait,
            "view_shuffle": self.view_shuffle,
        }
        for name, value in positive.items():
            if not value > 0:
                raise P2PConfigError(f"{name} must be > 0, got {value}")
        for name in ("send_queue", "gossip_peer_queue", "gossip_delivery_queue", "gossip_seen_ttl",
                     "autonat_confirmations", "relay_max_reservations", "relay_circuits_per_peer",
                     "relay_circuit_bytes", "relay_circuit_seconds", "relay_reservation_ttl"):
            if getattr(self, name) < 1:
                raise P2PConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.relays_wanted < 0:
            raise P2PConfigError(f"relays_wanted must be >= 0, got {self.relays_wanted}")
        if self.dial_timeout_ceiling < self.dial_timeout:
            raise P2PConfigError("dial_timeout_ceiling must be >= dial_timeout")
        if self.reconnect_max < self.reconnect_min:
            raise P2PConfigError("reconnect_max must be >= reconnect_min")
        if self.fault_decay < 0 or self.ban_seconds < 0:
            raise P2PConfigError("fault_decay and ban_seconds must be >= 0")
        if not 1 <= self.gossip_degree_low <= self.gossip_degree <= self.gossip_degree_high:
            raise P2PConfigError(
                "need 1 <= gossip_degree_low <= gossip_degree <= gossip_degree_high"
            )
        if not 1 <= self.view_degree <= self.max_connections:
            raise P2PConfigError("need 1 <= view_degree <= max_connections")
        if self.libp2p_log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise P2PConfigError(
                f"libp2p_log_level {self.libp2p_log_level!r} is not one of "
                "DEBUG/INFO/WARNING/ERROR/CRITICAL"
            )

    @property
    def listen_multiaddrs(self) -> tuple[Multiaddr, ...]:
        return self._parsed_listen

    @property
    def bootstrap_multiaddrs(self) -> tuple[Multiaddr, ...]:
        return self._parsed_bootstrap


def _parse(text: str, what: str) -> Multiaddr:
    try:
        return Multiaddr(text)
    except Exception as err:  # multiaddr raises several unrelated types for bad text
        raise P2PConfigError(f"{what} address {text!r} is not a multiaddr: {err}") from None
