"""The committee mesh: who forwards a large committee's consensus messages to whom.

Theory of operation
-------------------
PBFT is all-to-all: every member sends every vote to every other member. Over direct
connections that costs a member of an n-member committee n-1 connections, and the sortition
sizes committees for 20% Byzantine nodes at a 1e-6 failure probability (about 220 members at
10,000 nodes): too many for a volunteer's machine. CometBFT does not send its votes to every
validator either; it gossips them to its peers. Here, a committee larger than ``MESH_ABOVE``
lays its members on a *mesh* of bounded degree, and a member's broadcast travels over it:
it goes to the member's mesh neighbours, and each member that receives a message it has not
seen forwards it once to its other neighbours (``daemon.committees.relay`` keeps the seen
set). Every message is still signed by its origin, so a relay cannot forge or alter one;
it can only drop it, which is why the mesh must stay connected with the Byzantine members
taken out.

The mesh is the union of ``degree // 2`` Hamiltonian cycles, each the committee's members
ordered by a keyed hash (``blake2b`` over the epoch's randomness, the shard, the cycle's
number and the member's key). Every member computes the same mesh from public data, without
talking (so each knows who forwards to whom), and no member chooses its place. A union of
random Hamiltonian cycles is a random regular graph for practical purposes: an expander with
high probability, so its diameter is O(log n) and it stays connected when a minority of
nodes is removed at random. Removal "at random" is what the Byzantine members are here: they
are fixed before the epoch's randomness is known, and the cycles are drawn from it.

Why ``MESH_DEGREE = 12``: an honest member is cut off only if all its neighbours are
Byzantine; with f = (n-1)//3 of them (the most PBFT tolerates) that is about (1/3)^12 = 2e-6
per member, and at the sortition's expected 20%, 0.2^12 = 4e-9: in line with the committee
sizing's own 1e-6 target. Eight neighbours would give 1.5e-4 per member at n/3, several
percent per 220-member committee. The price is traffic: a message crosses every mesh link,
so each member sends about ``degree`` copies of each broadcast instead of its origin
sending n-1.

Why ``MESH_ABOVE = 32``: at or below it, all-to-all needs at most 31 connections, half the
per-node budget of 64, and keeps PBFT's one-hop latency (a vote through the mesh takes up
to its diameter in hops, 2-4 at these sizes). The local and WAN testnets (12 and 30 nodes)
and every small network stay all-to-all, exactly as before.

Pure: no I/O, no clock, no module-level randomness.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

MESH_ABOVE = 32
"""Committees with more members than this use the mesh; smaller ones stay all-to-all."""
MESH_DEGREE = 12
"""Most neighbours a member has on one committee's mesh (two per cycle)."""


@dataclass(frozen=True)
class Mesh:
    """One committee's mesh: ``links[i]`` are the indexes (into ``members``) of member i's
    neighbours."""

    members: tuple[bytes, ...]
    links: tuple[frozenset[int], ...]
    _where: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_where", {pk: i for i, pk in enumerate(self.members)})

    def index(self, public_key: bytes) -> int | None:
        return self._where.get(public_key)

    def neighbours(self, public_key: bytes) -> tuple[bytes, ...]:
        """The members ``public_key`` exchanges this committee's broadcasts with, in committee
        order; () for a key that is not a member."""
        i = self.index(public_key)
        return () if i is None else tuple(self.members[j] for j in sorted(self.links[i]))

    def are_neighbours(self, a: bytes, b: bytes) -> bool:
        i, j = self.index(a), self.index(b)
        return i is not None and j is not None and j in self.links[i]

    @property
    def max_degree(self) -> int:
        return max((len(s) for s in self.links), default=0)

    def hops(self, source: int, without: Collection[int] = ()) -> dict[int, int]:
        """Hops from member ``source`` to every member it reaches when the members in
        ``without`` forward nothing (breadth first)."""
        dist = {source: 0}
        queue = deque([source])
        while queue:
            a = queue.popleft()
            for b in self.links[a]:
                if b not in dist and b not in without:
                    dist[b] = dist[a] + 1
                    queue.append(b)
        return dist


def build_mesh(members: Sequence[bytes], randomness: bytes, shard: int,
               degree: int = MESH_DEGREE) -> Mesh:
    """The union of ``degree // 2`` keyed-hash Hamiltonian cycles over ``members`` (their
    order is the committee's; duplicates are a caller's bug)."""
    ordered = tuple(members)
    if len(set(ordered)) != len(ordered):
        raise ValueError("a committee lists a member twice")
    if degree < 2:
        raise ValueError(f"a mesh needs degree >= 2, not {degree}")
    n = len(ordered)
    links: list[set[int]] = [set() for _ in range(n)]
    for cycle in range(degree // 2):
        salt = randomness + struct.pack(">IH", shard & 0xFFFFFFFF, cycle)
        order = sorted(range(n), key=lambda i: _rank(salt, ordered[i]))
        for k in range(n):
            a, b = order[k], order[(k + 1) % n]
            if a != b:
                links[a].add(b)
                links[b].add(a)
    return Mesh(ordered, tuple(frozenset(s) for s in links))


def mesh_for(members: Sequence[bytes], epoch: int, shard: int,
             above: int = MESH_ABOVE) -> Mesh | None:
    """The mesh a committee's broadcasts travel on, or None when it is small enough for
    all-to-all (``above``, ``MESH_ABOVE`` but in a benchmark's baseline). Its randomness is a hash of the epoch and the committee in
    its sortition order, which the epoch's randomness decides (``consensus.committee``): as
    unpredictable before the epoch as the committee itself, and known to every member
    without a lookup (a retiring replica's epoch, one replayed after a restart)."""
    if len(members) <= above:
        return None
    seed = hashlib.blake2b(struct.pack(">Q", epoch) + b"".join(members), digest_size=32,
                           person=b"nc-mesh-seed").digest()
    return build_mesh(members, seed, shard)


def _rank(salt: bytes, public_key: bytes) -> bytes:
    return hashlib.blake2b(salt + public_key, digest_size=16, person=b"nc-mesh").digest()
