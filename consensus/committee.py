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
is member v mod c). Each shard draws independently, so the hypergeometric model holds for
each committee; a node may sit on several when N < shards * c.
"""

from __future__ import annotations

import hashlib
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
    """The committee of ``shard``: ``size`` members (all, if fewer) in ranking order."""
    ranked = sorted(set(members), key=lambda pk: _rank(randomness, shard, pk))
    return tuple(ranked[:size])


def assign_committees(randomness: bytes, members: Sequence[bytes], shards: int,
                      size: int) -> dict[int, tuple[bytes, ...]]:
    """Every shard's committee, plus the directory committee under ``DIRECTORY_SHARD``."""
    out = {s: sortition(randomness, members, s, size) for s in range(shards)}
    out[DIRECTORY_SHARD] = sortition(randomness, members, DIRECTORY_SHARD, size)
    return out
