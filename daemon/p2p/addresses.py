"""Peer addresses as users and records write them: ``/ip4/../tcp/N/p2p/<node id>``.

A bootstrap address names the peer it dials; the peer book keeps only the dialable part
(``transport_addr``), and the address source (the signed capability records) gives each
node's listen addresses (``AddressList``, ``AddressLookup``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from daemon.p2p.errors import P2PError
from protocol.identity import NodeId

AddressList = Callable[[], Iterable[tuple[str, Sequence[str]]]]
AddressLookup = Callable[[str], Sequence[str]]


class BadAddress(P2PError, ValueError):
    """A peer address that is not a multiaddr ending in /p2p/<node id>."""


def parse_peer_addr(text: str) -> tuple[NodeId, str]:
    """``/ip4/1.2.3.4/tcp/5/p2p/12D3...`` -> (node id, ``/ip4/1.2.3.4/tcp/5``)."""
    try:
        info = info_from_p2p_addr(Multiaddr(text))
    except Exception as err:  # multiaddr and libp2p raise many unrelated types
        raise BadAddress(f"{text!r} is not a multiaddr ending in /p2p/<node id>: {err}") from None
    return NodeId(info.peer_id.to_base58()), str(info.addrs[0])


def transport_addr(addr: str, node: str) -> str:
    """``/ip4/../tcp/5/p2p/<node>`` -> ``/ip4/../tcp/5``: the peer book keeps dialable parts."""
    suffix = f"/p2p/{node}"
    return addr[: -len(suffix)] if addr.endswith(suffix) else addr
