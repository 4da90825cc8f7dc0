"""Assembling a py-libp2p host the way NovaCron needs it, from public constructors only.

- Identity: the node's NovaCron Ed25519 seed is the libp2p key, so the peer id is the node id.
- Security: Noise only. ``new_swarm``'s default also offers TLS, SECIO and *plaintext*; passing
  ``sec_opt`` with only Noise means a peer that proposes anything else is refused in negotiation.
- Muxer: yamux only (no mplex), crediting its window at half, not on every read
  (``libp2p_fixes.credit_windows_at_half``).
- Dialling: ``max_connections_per_peer=1`` makes ``Swarm.dial_peer`` return as soon as the first
  connection is up, instead of waiting out its fixed 250 ms "happy eyeballs" head start
  (``_HAPPY_EYEBALLS_DELAY``); ``RetryConfig(max_retries=0)`` leaves retrying to our own backoff
  (``daemon.p2p.peers``), which uses our seeded rng rather than module-level ``random``.
- No mDNS, UPnP, AutoTLS, QUIC, WebSocket, relay, DHT or libp2p "bootstrap": nothing multicasts,
  nothing listens beyond ``config.listen``.
- GossipSub 1.2 (falling back to 1.1): heartbeat ``config.gossip_heartbeat`` (py-libp2p: 120 s);
  adaptive gossip off (it stretches the heartbeat to >= 30 s on a node with no mesh yet); spam
  limit ``config.gossip_rate_limit`` per forwarder per topic (py-libp2p: 10/s), with our own
  publishes exempt (``libp2p_fixes.NovaGossipSub``).
- Message signing stays strict and message ids stay ``from || seqno``. Our payloads are signed
  NovaCron envelopes already, but libp2p's signature is what authenticates ``from`` (the origin
  we hand to subscribers and blame for faults) and the seqno that de-duplicates; it costs ~0.1 ms
  per message against GossipSub's ~15 ms of Python per message. Content-based ids would be nicer
  for re-published envelopes, but py-libp2p 0.8.1's ``MessageCache`` keys by ``from || seqno``
  regardless, so with any other id function IHAVE ids never match the seen-cache and every gossip
  round re-fetches messages already delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nacl.signing
from libp2p import create_yamux_muxer_option, new_swarm
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.host.basic_host import BasicHost
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12
from libp2p.pubsub.pb import rpc_pb2
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from daemon.p2p.config import GOSSIP_RPC_LIMIT, P2PConfig
from daemon.p2p.libp2p_fixes import (
    DropCallback, NovaGossipSub, NovaPubsub, credit_windows_at_half,
)
from daemon.p2p.quick_io import quicken
from protocol.identity import NodeIdentity

GOSSIP_PROTOCOLS = (PROTOCOL_ID_V12, PROTOCOL_ID_V11)


def key_pair_for(identity: NodeIdentity) -> KeyPair:
    """The libp2p key pair of a NovaCron identity (same seed, so peer id == node id)."""
    private = Ed25519PrivateKey(nacl.signing.SigningKey(identity.seed))
    return KeyPair(private, private.get_public_key())


def build_swarm_and_host(identity: NodeIdentity, config: P2PConfig) -> tuple[Swarm, BasicHost]:
    key_pair = key_pair_for(identity)
    credit_windows_at_half()
    quicken()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    swarm = new_swarm(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt=create_yamux_muxer_option(),
        listen_addrs=list(config.listen_multiaddrs),
        retry_config=RetryConfig(max_retries=0),
        connection_config=ConnectionConfig(
            max_connections_per_peer=1,
            # Our own dial timer (``rtt.dial_wait``, up to the ceiling) decides when an
            # outbound attempt is given up, not libp2p's fixed per-step ones.
            dial_timeout=config.dial_timeout_ceiling,
            inbound_upgrade_timeout=config.handshake_timeout,
            outbound_upgrade_timeout=config.dial_timeout_ceiling,
        ),
    )
    if not isinstance(swarm, Swarm):  # new_swarm is typed as returning the interface
        raise TypeError(f"new_swarm returned {type(swarm).__name__}, expected Swarm")
    announce = [Multiaddr(a) for a in config.announce] or None

    def listen_only(candidates: Sequence[Multiaddr]) -> list[Multiaddr]:
        # Advertise what we listen on (or config.announce), never addresses that peers say they
        # saw us dial from: on a shared host those are ephemeral ports nobody can dial. The
        # observations are still recorded: DCUtR predicts our address behind a NAT from them
        # (the router's public IP with our listen port) when it punches a hole.
        return [a for listener in swarm.listeners.values() for a in listener.get_addrs()]

    host = BasicHost(
        network=swarm,
        enable_mDNS=False,
        enable_upnp=False,
        bootstrap=None,
        announce_addrs=announce,
        addrs_factory=None if announce else listen_only,
        disable_identify_address_discovery=False,
    )
    return swarm, host


@dataclass(frozen=True)
class GossipParts:
    pubsub: NovaPubsub
    router: NovaGossipSub


def build_gossip(
    host: BasicHost,
    config: P2PConfig,
    *,
    deliver: Callable[[rpc_pb2.Message], None],
    on_drop: DropCallback,
) -> GossipParts:
    router = NovaGossipSub(
        protocols=list(GOSSIP_PROTOCOLS),
        degree=config.gossip_degree,
        degree_low=config.gossip_degree_low,
        degree_high=config.gossip_degree_high,
        # typed int in py-libp2p, but only ever passed to trio.sleep: a float works
        heartbeat_interval=config.gossip_heartbeat,  # type: ignore[arg-type]
        adaptive_gossip_enabled=False,
        spam_protection_enabled=True,
        max_messages_per_topic_per_second=config.gossip_rate_limit,
        on_drop=on_drop,
    )
    pubsub = NovaPubsub(
        host,
        router,
        strict_signing=True,
        seen_ttl=config.gossip_seen_ttl,
        max_inbound_rpc_size=GOSSIP_RPC_LIMIT,
        deliver=deliver,
        peer_queue=config.gossip_peer_queue,
        on_drop=on_drop,
    )
    return GossipParts(pubsub=pubsub, router=router)
