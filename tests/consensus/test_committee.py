"""Committee size from the exact hypergeometric tail, deterministic sortition, the seat cap."""

import random
from math import comb

import pytest

from consensus.committee import (
    DIRECTORY_SHARD, MAX_SEATS, assign_committees, committee_size, failure_fraction,
    failure_probability, seat_cap, sortition,
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


def _seats(committees: dict[int, tuple[bytes, ...]]) -> dict[bytes, int]:
    held: dict[bytes, int] = {}
    for c in committees.values():
        for pk in c:
            held[pk] = held.get(pk, 0) + 1
    return held


def _passed_over_only_at_the_cap(rand, members, committees, cap):
    """Every member ranked above a committee's last seat but not seated on it holds the cap:
    the cap is the only reason anyone is passed over, and the seats keep the ranking order."""
    held = _seats(committees)
    for shard, c in committees.items():
        ranking = sortition(rand, members, shard, len(members))
        last = ranking.index(c[-1])
        assert tuple(pk for pk in ranking[: last + 1] if pk in set(c)) == c
        assert all(held[pk] == cap for pk in ranking[: last + 1] if pk not in set(c))


def test_no_node_holds_more_than_three_seats_at_ten_thousand_nodes_and_every_seat_is_filled():
    rng = random.Random(5)
    members = [rng.randbytes(32) for _ in range(10_000)]
    rand = rng.randbytes(32)
    size = committee_size(10_000, 0.2, 1e-6)
    assert seat_cap(10_000, 21, size) == MAX_SEATS == 3
    capped = assign_committees(rand, members, shards=20, size=size)
    alone = {s: sortition(rand, members, s, size) for s in capped}
    # Each shard drawn alone puts some nodes on 4+ of the 21 committees (about 11 of 10,000)...
    assert max(_seats(alone).values()) >= 4
    # ...the draft seats nobody more than 3 times, and still fills every seat.
    assert max(_seats(capped).values()) == 3
    assert all(len(c) == len(set(c)) == size for c in capped.values())
    _passed_over_only_at_the_cap(rand, members, capped, 3)
    # Only the seats of those over the cap moved: everyone else keeps what they drew.
    over = {pk for pk, n in _seats(alone).items() if n > 3}
    for s in capped:
        assert set(alone[s]) - set(capped[s]) <= over
    moved = sum(len(set(alone[s]) - set(capped[s])) for s in capped)
    assert moved == sum(n - 3 for pk, n in _seats(alone).items() if n > 3)


def test_small_networks_are_seated_exactly_as_each_shard_draws_alone():
    rng = random.Random(6)
    # The WAN testnet: 30 nodes, committees of 19, two shards and the directory; and others
    # where the cap could never bind or would leave seats empty.
    for population, shards, size in ((30, 2, 19), (12, 4, 12), (50, 2, 10), (100, 20, 61)):
        assert seat_cap(population, shards + 1, size) is None
        members = [rng.randbytes(32) for _ in range(population)]
        rand = rng.randbytes(32)
        a = assign_committees(rand, members, shards, size)
        assert a == {s: sortition(rand, members, s, size) for s in a}


def test_the_cap_never_leaves_a_seat_empty():
    """Networks with few nodes and many shards raise the cap just enough (module docstring);
    any other mix of sizes keeps every committee full and every member within the cap."""
    rng = random.Random(7)
    binding = 0
    for trial in range(400):
        population = rng.randint(1, 60)
        shards = rng.randint(0, 12)
        size = rng.randint(1, population + 3)
        max_seats = rng.randint(1, 4)
        members = [rng.randbytes(8) for _ in range(population)]
        rand = rng.randbytes(32)
        a = assign_committees(rand, members, shards, size, max_seats)
        cap = seat_cap(population, shards + 1, size, max_seats)
        where = f"trial {trial}: N={population} shards={shards} size={size} K={max_seats}"
        assert all(len(c) == len(set(c)) == min(size, population) for c in a.values()), where
        if cap is None:
            assert a == {s: sortition(rand, members, s, size) for s in a}, where
            continue
        assert cap >= max_seats and max(_seats(a).values()) <= cap, where
        _passed_over_only_at_the_cap(rand, members, a, cap)
        binding += a != {s: sortition(rand, members, s, size) for s in a}
    assert binding > 50  # the cap moved seats in many of these draws


def test_capped_assignment_is_independent_of_input_order():
    rng = random.Random(8)
    members = [rng.randbytes(32) for _ in range(40)]
    rand = rng.randbytes(32)
    a = assign_committees(rand, members, shards=7, size=12)
    assert seat_cap(40, 8, 12) == 3 and max(_seats(a).values()) == 3
    assert a != {s: sortition(rand, members, s, 12) for s in a}  # the cap binds here
    for _ in range(5):
        rng.shuffle(members)
        assert assign_committees(rand, members + members[:5], shards=7, size=12) == a


def test_capped_committees_are_still_uniform_samples_so_the_failure_model_holds():
    """Where the cap binds on most draws, a committee's Byzantine count is still exactly
    hypergeometric: the failure probability ``committee_size`` is built on is unchanged.
    The Byzantine nodes are the lowest keys, so a draft that leaked the members' order into
    who takes a freed seat would show here."""
    rng = random.Random(9)
    population, byzantine, shards, size, draws = 30, 9, 5, 9, 3000
    assert seat_cap(population, shards + 1, size) == 3
    counts = {0: [0] * (size + 1), DIRECTORY_SHARD: [0] * (size + 1)}
    binding = fails = 0
    for _ in range(draws):
        members = sorted(rng.randbytes(32) for _ in range(population))
        bad = set(members[:byzantine])
        rand = rng.randbytes(32)
        a = assign_committees(rand, members, shards, size)
        binding += a != {s: sortition(rand, members, s, size) for s in a}
        for s in counts:
            counts[s][len(bad & set(a[s]))] += 1
        fails += len(bad & set(a[DIRECTORY_SHARD])) > (size - 1) // 3
    assert binding > 0.8 * draws, binding
    total = comb(population, size)
    for s, seen in counts.items():
        for x, n in enumerate(seen):
            p = comb(byzantine, x) * comb(population - byzantine, size - x) / total
            sigma = (draws * p * (1 - p)) ** 0.5
            assert abs(n - draws * p) <= 4 * sigma + 1, (s, x, n, draws * p)
    p_fail = failure_probability(population, byzantine, size)
    assert abs(fails - draws * p_fail) <= 4 * (draws * p_fail * (1 - p_fail)) ** 0.5
