"""NAT traversal on py-libp2p 0.8.1: AutoNAT, circuit relay v2 (both roles) and DCUtR.

The decisions (whom to ask, what to believe, which relays to hold) are in the pure
``daemon.p2p.reachability.Traversal``; this shell runs the libp2p services and carries out its
intents:

- **AutoNAT server and client** (``libp2p_fixes.NovaAutoNAT``: a real dial-back). We ask peers
  we are directly connected to, sending the addresses we would advertise.
- **Circuit relay v2.** Every node runs the STOP side (it accepts relayed connections). A node
  with ``relay_service`` also runs the HOP side for others, capped by ``RelayLimits`` built
  from ``P2PConfig`` (reservations held, circuits per reserved peer, bytes and seconds per
  circuit): a volunteer lends a bounded share of its link, never all of it. A private node
  reserves slots on peers it dialled directly (they are dialable) and advertises
  ``<relay addr>/p2p/<relay>/p2p-circuit`` instead of its own unreachable addresses; dialling
  such an address goes through ``libp2p_fixes.enable_circuit_dialing``.
- **DCUtR** runs py-libp2p's service, which tries a hole punch on every relayed connection
  (its own auto-drive loop); we watch connections and report which relayed peers became
  direct.

``TICK`` paces the loop; relay and AutoNAT round trips have their own timeouts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import trio
from libp2p.host.autonat.pb.autonat_pb2 import Message as AutoNatMessage
from libp2p.host.basic_host import BasicHost
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from daemon.p2p import libp2p_fixes
from daemon.p2p.config import P2PConfig
from daemon.p2p.reachability import AskAutoNat, Reserve, Traversal, Unreserve
from protocol.identity import NodeId

log = logging.getLogger("novacron.p2p.traversal")

TICK = 2.0
"""Seconds between decisions (and between looks at which connections are relayed)."""


def relay_limits(config: P2PConfig) -> RelayLimits:
    return RelayLimits(
        duration=config.relay_circuit_seconds,
        data=config.relay_circuit_bytes,
        max_circuit_conns=config.relay_circuits_per_peer,
        max_reservations=config.relay_max_reservations,
        reservation_ttl=config.relay_reservation_ttl,
    )


def conn_kinds(swarm: Swarm, peer: ID) -> tuple[bool, bool, bool]:
    """(any direct connection, any relayed connection, a direct one we dialled)."""
    direct = relayed = dialled = False
    for conn in swarm.get_connections(peer):
        if conn.is_closed:
            continue
        try:
            addrs = conn.get_transport_addresses()
        except Exception:  # a connection half torn down
            continue
        if addrs and all(libp2p_fixes.is_circuit(a) for a in addrs):
            relayed = True
        else:
            direct = True
            muxed = conn.muxed_conn
            if bool(getattr(muxed, "is_initiator_value", getattr(muxed, "is_initiator", False))):
                dialled = True
    return direct, relayed, dialled


class NatTraversal:
    """Runs the traversal services for one host and keeps ``core`` informed."""

    def __init__(self, host: BasicHost, swarm: Swarm, config: P2PConfig, core: Traversal,
                 rng: random.Random, *, own_addrs: Callable[[], list[str]],
                 relay_addrs: Callable[[NodeId], Iterable[str]]) -> None:
        self.host, self.swarm, self.config, self.core, self.rng = host, swarm, config, core, rng
        self._own_addrs = own_addrs
        self._relay_addrs = relay_addrs
        self.autonat = libp2p_fixes.NovaAutoNAT(host, swarm, timeout=config.dial_timeout)
        self.relay = CircuitV2Protocol(host, limits=relay_limits(config),
                                       allow_hop=config.relay_service)
        self.transport = CircuitV2Transport(host, self.relay, RelayConfig(
            roles=RelayRole.STOP, limits=relay_limits(config)))
        self.dcutr = DCUtRProtocol(host, dial_timeout=int(max(1, config.dial_timeout)))
        libp2p_fixes.enable_circuit_dialing(swarm, self.transport)
        self._relayed_seen: set[NodeId] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with (background_trio_service(self.relay), background_trio_service(self.dcutr)):
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    self.step(trio.current_time())
                    await trio.sleep(TICK)

    def step(self, now: float) -> None:
        connected, dialable = [], []
        for pid in list(self.swarm.connections):
            node = NodeId(str(pid))
            direct, relayed, dialled = conn_kinds(self.swarm, pid)
            if relayed and not direct:
                self._relayed_seen.add(node)
                if libp2p_fixes.dcutr_gave_up(self.dcutr, pid):
                    self.core.hole_punch(node, False)
            if direct:
                connected.append(node)
                if node in self._relayed_seen:
                    self._relayed_seen.discard(node)
                    self.core.hole_punch(node, True)
            if dialled:
                dialable.append(node)
        up = set(connected)
        for relay in self.core.relays():
            if relay not in up:
                self.core.relay_lost(relay)
        nursery = self._nursery
        for action in self.core.tick(now, connected, dialable, self.rng):
            if nursery is None:
                break
            if isinstance(action, AskAutoNat):
                nursery.start_soon(self._ask, action.peer)
            elif isinstance(action, Reserve):
                nursery.start_soon(self._reserve, action.relay)
            elif isinstance(action, Unreserve):
                log.info("public now: no longer using relay %s", action.relay)

    async def _ask(self, peer: NodeId) -> None:
        addrs = [Multiaddr(a).to_bytes() for a in self._own_addrs()
                 if not libp2p_fixes.is_circuit(a)]
        try:
            status, _ = await self.autonat.query_server(
                ID.from_base58(peer), addrs=addrs, timeout=2 * self.config.dial_timeout + 5)
        except Exception as err:  # task boundary: no answer is no verdict
            self.core.verdict(peer, None, trio.current_time(), f"{type(err).__name__}")
            return
        verdict = {int(AutoNatMessage.OK): True, int(AutoNatMessage.E_DIAL_ERROR): False}
        self.core.verdict(peer, verdict.get(status), trio.current_time(),
                          "" if status in verdict else f"status {status}")

    async def _reserve(self, relay: NodeId) -> None:
        ok, ttl, detail = await libp2p_fixes.reserve_slot(
            self.host, ID.from_base58(relay), timeout=2 * self.config.dial_timeout)
        addrs = [f"{a}/p2p/{relay}/p2p-circuit" for a in self._relay_addrs(relay)
                 if not libp2p_fixes.is_circuit(a)]
        if ok and not addrs:
            ok, detail = False, "no direct address of the relay known"
        self.core.reserved(relay, ok, trio.current_time(), ttl=ttl, addrs=addrs, detail=detail)
        if ok:
            log.info("reserved a relay slot on %s for %.0f s", relay, ttl)
