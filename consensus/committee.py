"""Committees: how big, and who - derived by every honest node identically.

Size. A committee of c members runs PBFT with f = floor((c-1)/3), so it *fails* (loses safety or
liveness) when more than f of its members are Byzantine. Members are drawn without
replacement from a population of N nodes of which B are Byzantine, so the number of Byzantine
members X is hypergeometric, and the failure probability is the exact tail

    P[X >= f + 1] = sum_{i=f+1}^{min(B,c)} C(B, i) C(N-B, c-i) / C(N, c)

computed here with exact integers (no floating-point cancellation, no scipy). Checks:
N=1000, B=250, c=100 -> 0.0214; N=1000, B=100, c=50 -> 1.67e-6. ``committee_size`` returns
the smallest c = 3f+1 meeting a target (for a given f, 3f+1 is the best size: more members
tolerate no more faults and only add chances to draw Byzantine ones).

Membership. ``sortition`` ranks the admitted members by BLAKE2b(epoch randomness, shard,
public key) and takes the first c; the order is the committee order (the primary of view v
is member v mod c). ``assign_committees`` seats every shard's committee and the directory's
that way, with one rule more: a node holds at most ``seat_cap`` seats in an epoch.

Why a cap. Each shard ranks everyone independently, so a node's seats are
Binomial(T, c/N) over the T committees: at 10,000 nodes (20 shards and the directory, c about
220) about 1 node in 1,000 lands on 4 or more. Every seat on a committee above
``consensus.mesh.MESH_ABOVE`` members costs 12 mesh neighbours, so such a node kept 48-60
committee links besides its view and went past the 64 connections a volunteer's machine is
budgeted (``scripts/sim_scale.py``). ``MAX_SEATS = 3`` bounds its committee links at 36
whatever the draw, at any N large enough to seat every committee with three seats a node.

How. A draft in one global order: every (shard, member) pair, taken by increasing rank
hash; a pair takes a seat when its committee still has one free and its member holds fewer
than the cap; a member at the cap is passed over and the next in line for that committee
sits instead. Within a committee the seats keep the ranking order. When no member would hold
more than the cap, the draft seats exactly the committees ``sortition`` draws for each shard
alone (until the first pass-over the draft makes the same choices); otherwise only the seats
of the members over the cap move (about 12 per epoch at 10,000 nodes all up, 39 at the 6,300
up in ``sim_scale``), each to the next-ranked member. It depends only on the hashes, so it is
deterministic and independent of the order members are listed in.

The cap never leaves a seat empty. If a committee of c' = min(c, N) ends with m < c' members,
every one of the N - m others was passed over, so each holds ``cap`` seats on the other
T - 1 committees: (N - c' + 1) cap <= (N - m) cap <= (T - 1) c'. ``seat_cap`` therefore
raises the cap to floor((T - 1) c' / (N - c' + 1)) + 1 when ``MAX_SEATS`` is smaller (a
network with few nodes and many shards), and when that reaches T it is no cap at all: small
networks (30 nodes, committees of 19, two shards and the directory) are seated exactly as
before.

Safety. The failure model above needs each committee to be a uniformly random c-subset of
the members, with the Byzantine ones fixed before the randomness is known. The cap keeps
that exactly: the draft looks only at the hash values (ties, at 2^-256, aside), so permuting
the members' labels permutes its outcome the same way; the hashes are independent and
identically distributed (BLAKE2b as a random oracle), so the assignment's distribution is
invariant under every permutation of the members, and a committee that always has exactly
c' members is therefore a uniform c'-subset. Its Byzantine count is hypergeometric, and its
failure probability is exactly ``failure_probability`` -- per committee, as before. What the
cap changes is the joint law: committees are no longer drawn independently (a node on three
cannot be on a fourth), a slight negative correlation in who sits where. A bound on "some
committee fails" is the union bound, T times the target, which needs no independence and
is unchanged. Nor can a Byzantine node hold more than ``cap`` seats: the cap limits what one
corrupted machine is worth. ``tests/consensus/test_committee.py`` checks the uniformity by
simulation where the cap binds on most draws: the Byzantine counts match the
hypergeometric. (Key grinding, the known limit in ``consensus.directory``, breaks the
random-oracle premise with or without the cap.)
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Sequence
from fractions import Fraction
from math import comb

from protocol.errors import LocalProtocolError

DIRECTORY_SHARD = 0xFFFFFFFF


def shard_words(shard: int) -> str:
    """A shard as messages name it: ``shard 3``, or ``the directory`` (never 4294967295)."""
    return "the directory" if shard == DIRECTORY_SHARD else f"shard {shard}"
"""The shard id of the directory committee (membership, epochs)."""


def max_faulty(n: int) -> int:
    """f: how many Byzantine members a committee of ``n`` tolerates (n >= 3f + 1). The one
    place this formula lives; everything that needs f calls it."""
    return (n - 1) // 3


def failure_probability(population: int, byzantine: int, size: int) -> float:
    """Exact P[a uniformly drawn committee of ``size`` has more than floor((size-1)/3)
    Byzantine members]."""
    return float(failure_fraction(population, byzantine, size))


def failure_fraction(population: int, byzantine: int, size: int) -> Fraction:
    if not 0 <= byzantine <= population or not 1 <= size <= population:
        raise LocalProtocolError("need 0 <= byzantine <= population and 1 <= size <= population")
    k = max_faulty(size) + 1
    honest = population - byzantine
    num = sum(comb(byzantine, i) * comb(honest, size - i) for i in range(k, min(byzantine,
                                                                                 size) + 1))
    return Fraction(num, comb(population, size))


def committee_size(population: int, byzantine_fraction: float, target: float,
                   min_size: int = 4) -> int:
    """Smallest committee size 3f+1 (>= ``min_size``) whose failure probability is at most
    ``target``, with floor(fraction * population) Byzantine nodes. Raises if even the whole
    population is not enough (then the network needs more nodes or a lower fraction)."""
    if not 0 <= byzantine_fraction < 1 / 3 or not 0 < target < 1:
        raise LocalProtocolError("need 0 <= byzantine_fraction < 1/3 and 0 < target < 1")
    b = int(byzantine_fraction * population)
    f = max(0, max_faulty(min_size))
    while 3 * f + 1 <= population:
        size = 3 * f + 1
        if size >= min_size and failure_fraction(population, b, size) <= Fraction(target):
            return size
        f += 1
    raise LocalProtocolError(
        f"no committee of at most {population} nodes fails with probability <= {target} when "
        f"{b} are Byzantine"
    )


def _rank(randomness: bytes, shard: int, public_key: bytes) -> bytes:
    return hashlib.blake2b(randomness + struct.pack(">I", shard) + public_key,
                           digest_size=32, person=b"nc-sortition").digest()


def sortition(randomness: bytes, members: Sequence[bytes], shard: int,
              size: int) -> tuple[bytes, ...]:
    """The committee of ``shard`` drawn alone: ``size`` members (all, if fewer) in ranking
    order. ``assign_committees`` seats exactly these unless the seat cap binds."""
    ranked = sorted(set(members), key=lambda pk: _rank(randomness, shard, pk))
    return tuple(ranked[:size])


MAX_SEATS = 3
"""Most seats one node holds in an epoch, unless the network is too small to seat every
committee with so few (``seat_cap``). Three seats on meshed committees are 36 links: with
the view (8), the peers that chose us (about 8) and a few work links, under 64."""


def seat_cap(population: int, committees: int, size: int,
             max_seats: int = MAX_SEATS) -> int | None:
    """Most seats one of ``population`` members may hold across ``committees`` committees of
    ``size``: ``max_seats``, raised to the least cap that still fills every seat (module
    docstring), or None when that is ``committees`` or more (no cap, nothing could bind)."""
    if population < 1 or committees < 1 or size < 1 or max_seats < 1:
        raise LocalProtocolError("need population, committees, size and max_seats >= 1")
    seats = min(size, population)
    cap = max(max_seats, (committees - 1) * seats // (population - seats + 1) + 1)
    return None if cap >= committees else cap


def assign_committees(randomness: bytes, members: Sequence[bytes], shards: int,
                      size: int, max_seats: int = MAX_SEATS) -> dict[int, tuple[bytes, ...]]:
    """Every shard's committee, plus the directory committee under ``DIRECTORY_SHARD``: each
    ``size`` members (all, if fewer) in ranking order, no member on more than
    ``seat_cap(...)`` of them (the module docstring says how and why)."""
    order = [*range(shards), DIRECTORY_SHARD]
    pool = sorted(set(members))
    if not pool or size < 1:
        return {s: () for s in order}
    cap = seat_cap(len(pool), len(order), size, max_seats)
    if cap is None:
        return {s: sortition(randomness, pool, s, size) for s in order}
    seats = min(size, len(pool))
    ranked = [sorted((_rank(randomness, s, pk), k, pk) for pk in pool)
              for k, s in enumerate(order)]
    chosen: list[list[bytes]] = [[] for _ in order]
    held: dict[bytes, int] = {}
    open_ = len(order)
    for _, k, pk in heapq.merge(*ranked):
        if len(chosen[k]) == seats or held.get(pk, 0) == cap:
            continue  # this committee is full, or this member is at the cap: the next sits
        chosen[k].append(pk)
        held[pk] = held.get(pk, 0) + 1
        if len(chosen[k]) == seats:
            open_ -= 1
            if not open_:
                break
    if open_:
        raise LocalProtocolError(f"seat cap {cap} left a committee short: seat_cap is wrong")
    return {s: tuple(c) for s, c in zip(order, chosen)}
