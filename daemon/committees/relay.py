"""Relaying a large committee's broadcasts over its mesh (``consensus.mesh``): what to drop
as seen, whom to forward to.

Theory of operation
-------------------
A member's broadcast in a committee above ``MESH_ABOVE`` goes, on its own protocol
(``/novacron/pbft-mesh/2``), to the member's mesh neighbours only. A member receiving a
frame on that protocol:

1. drops it if it saw the same bytes (``SeenFrames``: keyed by the frame's hash, bounded in
   count and age) — before opening it, so the copies that the mesh's redundancy delivers
   cost a hash, not a signature check;
2. opens it (a frame that does not open is the relaying peer's fault: it should have
   checked before forwarding);
3. forwards it once, unchanged, to its other neighbours on that committee's mesh
   (``MeshPlace.targets``), if the message is of a committee it sits on, its origin is a
   member and the relaying peer is a neighbour there; otherwise it only delivers it;
4. hands it to the replica, as a direct frame. A message that opens but is bad (a wrong
   proof inside) is signed by its origin: the origin is blamed, never the relay.

Messages to one member (a reply to a client, state-transfer chunks, a batch or a view
change one replica asks another for, a client's request) go along the mesh when both ends
sit on the same large committee and are not neighbours (protocol
``/novacron/pbft-route/2``): every member submits the ledger's clock reports to its own
shards, and the replies to those alone would otherwise connect it to every member. The
sender picks one of the destination's neighbours as the last relay (``via``), and the frame
travels to it on a shortest path, each relay passing it to a neighbour one hop nearer
(``next_hop``); both choices are made by the frame's hash, so a re-sent message (sealed
anew) takes another path, and arrives from another side. Shortest paths alone would not
do: with a third of the members dropping what they relay, about one pair in seven has all
its shortest paths through them, and no re-send would arrive. Each relay opens the
envelope (garbage is the relaying peer's fault, as above); a hop budget bounds the route.
Messages to a node outside the committee (a client elsewhere) go direct, dialled on demand.

A seen entry is forgotten after ``SEEN_TTL_S``: a replica re-broadcasts the same bytes when
it believes a message was lost (its view change), and after that long the mesh carries it
again. A flood takes the mesh's diameter in hops (2-4 at the sizes the sortition draws),
far less than the TTL, so its own echoes are still remembered.

Pure: time comes in as ``now``.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from consensus.mesh import MESH_ABOVE, Mesh, mesh_for
from protocol.errors import MalformedMessage
from protocol.identity import node_id_from_public_key

MESH_PROTOCOL = "/novacron/pbft-mesh/2"
ROUTE_PROTOCOL = "/novacron/pbft-route/2"
ROUTE_HEADER = struct.Struct(">IQB32s32s")
"""A routed frame: shard, epoch (whose mesh), hops left, the destination's key, the last
relay's key; then the signed envelope."""
ROUTE_HOPS = 12
"""The hop budget of a routed message: a shortest path to the last relay (at most the
mesh's diameter, 2-5 at the sizes drawn) and one more hop, with room; no route goes on."""
SEEN_TTL_S = 10.0
SEEN_MAX = 32_768
"""Frame hashes kept: 220 members' votes, checkpoints and status messages of a busy
committee come to a few thousand a second; a hash forgotten early costs one more signature
check and one more forward, never a wrong decision (replicas de-duplicate themselves)."""


class SeenFrames:
    """The hashes of frames seen in the last ``ttl`` seconds, at most ``cap`` of them."""

    def __init__(self, cap: int = SEEN_MAX, ttl: float = SEEN_TTL_S) -> None:
        self.cap = cap
        self.ttl = ttl
        self._at: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._at)

    def first(self, digest: bytes, now: float) -> bool:
        """Whether ``digest`` is new (not seen within the TTL); it is remembered from now."""
        while self._at:
            oldest, at = next(iter(self._at.items()))
            if now - at < self.ttl:
                break
            del self._at[oldest]
        if digest in self._at:
            return False
        self._at[digest] = now
        if len(self._at) > self.cap:
            self._at.popitem(last=False)
        return True


@dataclass(frozen=True)
class MeshPlace:
    """This node's place on one committee's mesh."""

    mesh: Mesh
    me: bytes
    neighbours: tuple[bytes, ...]
    by_node: dict[str, bytes]
    """The neighbours' node ids (what a frame's relaying peer is named by) to their keys."""
    _nearer: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict, repr=False,
                                                    compare=False)

    @classmethod
    def of(cls, mesh: Mesh, me: bytes) -> MeshPlace:
        near = mesh.neighbours(me)
        return cls(mesh, me, near, {node_id_from_public_key(pk): pk for pk in near})

    def targets(self, origin: bytes, relay: str) -> tuple[bytes, ...]:
        """Whom to forward a message from ``origin`` that ``relay`` brought: the other
        neighbours, or nobody if it did not come the mesh's way."""
        came_from = self.by_node.get(relay)
        if came_from is None or self.mesh.index(origin) is None:
            return ()
        return tuple(pk for pk in self.neighbours if pk != came_from and pk != origin)


    def via(self, dest: bytes, frame: bytes) -> bytes | None:
        """The last relay of a message for ``dest``: one of its neighbours, by the frame's
        hash; None if ``dest`` is not on the mesh."""
        near = self.mesh.neighbours(dest)
        if not near:
            return None
        return near[int.from_bytes(hashlib.sha256(frame).digest()[4:8], "big") % len(near)]

    def toward(self, dest: bytes, via: bytes, frame: bytes) -> bytes | None:
        """The neighbour a message for ``dest`` over ``via`` goes to next from here."""
        if self.me == via:
            return dest if dest in self.by_node.values() else None
        return self.next_hop(via, frame)

    def next_hop(self, dest: bytes, frame: bytes) -> bytes | None:
        """The neighbour to pass a message for member ``dest`` to: one a hop nearer on a
        shortest path, picked by the frame's hash; None if ``dest`` is not on the mesh."""
        nearer = self._nearer.get(dest)
        if nearer is None:
            j, me = self.mesh.index(dest), self.mesh.index(self.me)
            if j is None or me is None:
                return None
            dist = self.mesh.hops(j)  # at most a few hundred members; kept per destination
            mine = dist.get(me)
            where = {pk: self.mesh.index(pk) for pk in self.neighbours}
            nearer = () if mine is None else tuple(
                pk for pk, i in where.items() if i is not None and dist.get(i) == mine - 1)
            self._nearer[dest] = nearer
        if not nearer:
            return None
        pick = int.from_bytes(hashlib.sha256(frame).digest()[:4], "big")
        return nearer[pick % len(nearer)]


@dataclass(frozen=True)
class Route:
    shard: int
    epoch: int
    hops: int
    """Hops left."""
    dest: bytes
    via: bytes

    def frame(self, envelope: bytes) -> bytes:
        return ROUTE_HEADER.pack(self.shard & 0xFFFFFFFF, self.epoch, self.hops, self.dest,
                                 self.via) + envelope


def parse_route(frame: bytes) -> tuple[Route, bytes]:
    """The route and the envelope of a routed frame."""
    if len(frame) <= ROUTE_HEADER.size:
        raise MalformedMessage(f"a routed consensus frame of {len(frame)} bytes")
    return Route(*ROUTE_HEADER.unpack_from(frame)), frame[ROUTE_HEADER.size:]


def place_on(members: tuple[bytes, ...], epoch: int, shard: int, me: bytes,
             above: int = MESH_ABOVE) -> MeshPlace | None:
    """``me``'s place on the committee's mesh; None if the committee is all-to-all (at most
    ``above`` members) or ``me`` is not on it."""
    mesh = mesh_for(members, epoch, shard, above)
    if mesh is None or mesh.index(me) is None:
        return None
    return MeshPlace.of(mesh, me)
