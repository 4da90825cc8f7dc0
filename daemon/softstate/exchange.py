"""Peer exchange: a full node tells a peer it hangs up on where else to go.

Theory of operation
-------------------
A node keeps its connections within a budget (``daemon.p2p.overlay``). When it closes an
inbound connection for that reason, the peer had dialled it for a reason: most often a
newcomer that knows nothing but its seed, or a node that picked it for its view. Closing
without a word leaves the first with nowhere to go and makes the second dial again. So,
like GossipSub v1.1's PRUNE with peer exchange, the node first sends
``/novacron/px/1``: up to ``MAX_PEERS`` capability records of random peers it knows, each
as its writer signed it in the registry (``twins.SignedRecord``), then hangs up. The peer
checks each signature, learns the listen addresses (``P2PHost.exchanged``), and takes the
sender for full: out of its view, not picked again for a while.

Signed records, not bare addresses: a peer can only pass on addresses their own nodes
published, and the dial then proves the node's key (Noise), so a hostile node cannot point a
newcomer at addresses of its own making under other nodes' names. (It can choose whom it
names, as a seed can anyway by what it relays.)

Bounded on both sides: at most ``MAX_PEERS`` records and ``MAX_BYTES`` a frame; a node
learns from an exchange only from a peer it dialled itself (the one that hangs up on it),
once per connection.
"""

from __future__ import annotations

from typing import Any

from crdt.auth import DotVerifier
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage
from daemon.softstate.twins import SignedRecord

PROTOCOL = "/novacron/px/1"
MAX_PEERS = 16
"""Records in one exchange: enough to fill a view of 8 twice over."""
MAX_BYTES = 64 * 1024
"""One exchange's frame, at most (a record is ~650 bytes; a large one is cut out)."""


def encode(records: list[SignedRecord]) -> bytes:
    """The exchange frame for ``records``: as many as fit ``MAX_PEERS`` and ``MAX_BYTES``."""
    out: list[Any] = []
    size = 8
    for r in records[:MAX_PEERS]:
        need = len(r.node) + len(r.value) + len(r.sig) + 48
        if size + need > MAX_BYTES:
            continue
        size += need
        out.append([r.node, r.to_wire()])
    return packb(out, maps=False)


def decode(frame: bytes) -> list[SignedRecord]:
    """The records of an exchange (signatures not yet checked: ``verified``)."""
    if len(frame) > MAX_BYTES:
        raise MalformedMessage(f"peer exchange of {len(frame)} bytes, over {MAX_BYTES}")
    v = unpackb(frame, max_size=MAX_BYTES, max_items=8 * MAX_PEERS)
    if type(v) is not list or len(v) > MAX_PEERS:
        raise MalformedMessage(f"a peer exchange is a list of at most {MAX_PEERS} records")
    out = []
    for item in v:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
            raise MalformedMessage("a peer exchange entry is [node id, signed record]")
        out.append(SignedRecord.from_wire(item[0], item[1]))
    return out


def verified(records: list[SignedRecord], verifier: DotVerifier, caps: str,
             sender: str, me: str) -> tuple[list[tuple[str, tuple[str, ...]]], int]:
    """``(node, listen addresses)`` of the records signed by their own nodes, and how many
    were not (or named the sender or us, which an exchange has no reason to)."""
    good: list[tuple[str, tuple[str, ...]]] = []
    bad = 0
    seen: set[str] = set()
    for r in records:
        if r.node in (sender, me) or r.node in seen or not r.verify(verifier, caps):
            bad += 1
            continue
        seen.add(r.node)
        good.append((r.node, tuple(r.record.listen_addrs)))
    return good, bad


__all__ = ["MAX_BYTES", "MAX_PEERS", "PROTOCOL", "decode", "encode", "verified"]
