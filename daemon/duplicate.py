"""One key, one daemon, across machines: before a node takes part, check that its identity is
not already live somewhere else.

A copy of a data directory (a backup restored while the node runs, a VM cloned, a directory
copied to start "another" volunteer) holds the same key. Started, it would take the original's
seat in its committees: peers cannot tell the two apart, both sign as the node, and their votes
and sequence numbers collide, so the committee stalls for both. The data directory's lock
(``daemon.storage.claim``) only sees a second daemon on the *same* directory.

So before the node's own host listens or dials anyone, ``find_live_twin`` dials the addresses
where this identity was last seen live (its own capability record, as the soft state
persisted it, plus the configured listen addresses) from a throwaway key, expecting the peer
id to be this node's. The Noise handshake proves the far end holds the private key, so a
handshake that completes means another daemon with this key is up: this one refuses to run,
in one line, and the original keeps its seat undisturbed (it saw only a stranger connect and
leave). Addresses where nothing answers, or where another peer answers, prove nothing and
cost one failed dial each, within ``PROBE_TIMEOUT`` each and twice that in all.

Not covered: an original that cannot be dialled at any address it announced (behind a NAT
with no relay); it is then caught by the lock only when on the same directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from daemon.errors import DaemonError
from daemon.p2p import libp2p_fixes
from daemon.p2p.config import P2PConfig
from daemon.p2p.factory import build_swarm_and_host
from protocol.identity import NodeIdentity

if TYPE_CHECKING:
    from daemon.node import Node

log = logging.getLogger("novacron.duplicate")

PROBE_TIMEOUT = 3.0
MAX_PROBES = 8


class DuplicateIdentity(DaemonError):
    """Another daemon with this node's key is live; the message says where and what to do."""


def probe_targets(addrs: Iterable[str]) -> list[str]:
    """Dialable TCP addresses from ``addrs``: ``/p2p/..`` dropped, wildcard hosts as loopback
    (a daemon listening on all interfaces answers there too), ports 0 left out, no repeats."""
    out: list[str] = []
    for addr in addrs:
        parts = addr.split("/p2p/")[0].split("/")
        if len(parts) != 5 or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp" or parts[4] in ("", "0"):
            continue
        if parts[2] in ("0.0.0.0", "::"):
            parts[2] = "127.0.0.1" if parts[1] == "ip4" else "::1"
        target = "/".join(parts)
        if target not in out:
            out.append(target)
    return out[:MAX_PROBES]


async def find_live_twin(identity: NodeIdentity, addrs: Iterable[str],
                         timeout: float = PROBE_TIMEOUT) -> str | None:
    """The first of ``addrs`` where a daemon holding ``identity``'s key answers, or None."""
    targets = probe_targets(addrs)
    if not targets:
        return None
    libp2p_fixes.route_libp2p_logging(logging.CRITICAL)  # failed dials are the normal answer
    throwaway = NodeIdentity.generate(os.urandom(32))
    swarm, host = build_swarm_and_host(throwaway, P2PConfig())  # never listens
    me = ID.from_base58(identity.node_id)
    found: list[str] = []
    async with host.run(listen_addrs=[]):
        # One address at a time, each dial on its own: py-libp2p 0.8.1 dials every address its
        # peerstore holds for the id, and a failed dial puts the id on a blocklist that fails
        # the next dial at once.
        with trio.move_on_after(2 * timeout):
            for target in targets:
                swarm.unblock_peer(me)
                host.get_peerstore().clear_addrs(me)
                try:
                    with trio.fail_after(timeout):
                        await host.connect(PeerInfo(me, [Multiaddr(target)]))
                except Exception as err:  # noqa: BLE001 - a failed dial only means "not there"
                    log.debug("no twin at %s: %r", target, err)
                    continue
                found.append(target)
                break
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await libp2p_fixes.close_connections(swarm)
            await host.close()
    return found[0] if found else None


def last_seen_addresses(node: Node) -> list[str]:
    """Where this identity was last live: the addresses in its own capability record (as the
    soft state persisted it in the data directory), then the configured listen addresses."""
    soft = next((s for s in node.services if s.name == "softstate"), None)
    record = soft.record_of(node.identity.node_id) if soft is not None else None  # type: ignore[attr-defined]
    return [*(record.listen_addrs if record is not None else ()), *node.config.listen]


def refuse_if_live(identity: NodeIdentity, addrs: Iterable[str]) -> None:
    """Raise ``DuplicateIdentity`` (one line) if ``identity`` is live at one of ``addrs``."""
    addrs = list(addrs)
    log.info("checking that no other daemon holds this key at %s", ", ".join(probe_targets(addrs)))
    where = trio.run(find_live_twin, identity, addrs)
    if where is not None:
        raise DuplicateIdentity(
            f"node {identity.node_id} is already running at {where}: one key runs one daemon. "
            "If this data directory is a copy, stop the original first, or start this one "
            "from an empty data directory (a new key)")
