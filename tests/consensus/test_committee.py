"""Committee size from the exact hypergeometric tail, and deterministic sortition."""

import random
from math import comb

import pytest

from consensus.committee import (
    DIRECTORY_SHARD, assign_committees, committee_size, failure_fraction, failure_probability,
    sortition,
)
from protocol.errors import LocalProtocolError


def test_reference_points_from_the_issue():
    # Failure = more than f = floor((c-1)/3) Byzantine members, i.e. X >= f+1.
    assert failure_probability(1000, 250, 100) == pytest.approx(0.021435663, rel=1e-6)
    assert failure_probability(1000, 100, 50) == pytest.approx(1.66846e-6, rel=1e-4)


def test_tail_is_exact_against_brute_force_enumeration():
    n, b, c = 12, 4, 4  # enumerate every committee
    members = range(n)
    byz = set(range(b))
    from itertools import combinations
    fails = sum(1 for com in combinations(members, c) if len(byz & set(com)) > (c - 1) // 3)
    assert failure_fraction(n, b, c) == pytest.approx(fails / comb(n, c))
    assert failure_fraction(n, b, c).denominator * fails == \
        failure_fraction(n, b, c).numerator * comb(n, c)


def test_committee_size_is_the_smallest_3f_plus_1_meeting_the_target():
    c = committee_size(1000, 0.1, 1e-6)
    assert (c - 1) % 3 == 0
    assert failure_probability(1000, 100, c) <= 1e-6 < failure_probability(1000, 100, c - 3)
    assert committee_size(1000, 0.1, 2e-6) <= c
    assert committee_size(1000, 0.0, 1e-9) == 4
    # With a Byzantine fraction below 1/3 the whole population always suffices in the end...
    assert committee_size(20, 0.3, 1e-12) == 19
    # ...unless the population is below the minimum committee.
    with pytest.raises(LocalProtocolError, match="no committee"):
        committee_size(3, 0.1, 0.5)


def test_sortition_is_deterministic_and_independent_of_input_order():
    rng = random.Random(1)
    members = [rng.randbytes(32) for _ in range(50)]
    rand = rng.randbytes(32)
    a = assign_committees(rand, members, shards=3, size=10)
    shuffled = members[:]
    rng.shuffle(shuffled)
    assert assign_committees(rand, shuffled, shards=3, size=10) == a
    assert set(a) == {0, 1, 2, DIRECTORY_SHARD}
    assert all(len(c) == 10 and len(set(c)) == 10 and set(c) <= set(members) for c in a.values())
    assert a[0] != a[1]
    assert sortition(rng.randbytes(32), members, 0, 10) != a[0]  # other randomness, others
    assert sortition(rand, members[:3], 0, 10) == sortition(rand, members[:3], 0, 3)


def test_sortition_samples_uniformly():
    """Each member's chance to sit on a committee is size/population."""
    rng = random.Random(2)
    members = [rng.randbytes(32) for _ in range(20)]
    hits = {m: 0 for m in members}
    for _ in range(2000):
        for m in sortition(rng.randbytes(32), members, 0, 5):
            hits[m] += 1
    assert all(400 < h < 600 for h in hits.values())  # expected 500
