"""The committee mesh (``consensus/mesh.py``): bounded degree, small diameter, connected
among the honest members with f Byzantine ones removed, the same on every member."""

from __future__ import annotations

import math
import random

import pytest

from consensus.committee import max_faulty
from consensus.mesh import MESH_ABOVE, MESH_DEGREE, build_mesh, mesh_for

SIZES = (4, 5, 7, 10, 16, 33, 50, 64, 100, 150, 220, 300, 400)
SEEDS = range(60)


def keys(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def randomness(seed: int) -> bytes:
    return random.Random(10_000 + seed).randbytes(32)


@pytest.mark.parametrize("n", SIZES)
def test_every_member_has_at_most_the_degree_and_at_least_two_neighbours(n: int) -> None:
    for seed in SEEDS:
        mesh = build_mesh(keys(n, seed), randomness(seed), shard=seed % 3)
        degrees = [len(s) for s in mesh.links]
        assert max(degrees) <= MESH_DEGREE, f"seed {seed}"
        assert min(degrees) >= min(2, n - 1), f"seed {seed}"
        assert all(i not in s for i, s in enumerate(mesh.links)), f"seed {seed}: a self link"
        assert all(i in mesh.links[j] for i, s in enumerate(mesh.links) for j in s), \
            f"seed {seed}: a link one way only"


@pytest.mark.parametrize("n", SIZES)
def test_the_diameter_grows_as_log_n(n: int) -> None:
    bound = max(2, math.ceil(math.log2(n)) - 1)
    for seed in SEEDS[:10]:
        mesh = build_mesh(keys(n, seed), randomness(seed), shard=0)
        diameter = max(max(mesh.hops(i).values()) for i in range(n))
        assert diameter <= bound, f"seed {seed}: diameter {diameter} > {bound} at n={n}"


@pytest.mark.parametrize("n", SIZES)
def test_the_honest_members_stay_connected_with_f_byzantine_removed(n: int) -> None:
    """f = (n-1)//3 members, chosen at random (they are fixed before the epoch's randomness
    that draws the mesh), forward nothing: every honest member still reaches every other,
    within a few hops more than the whole mesh's diameter."""
    f = max_faulty(n)
    bound = max(3, math.ceil(math.log2(n)) + 1)
    for seed in SEEDS:
        rng = random.Random(seed)
        mesh = build_mesh(keys(n, seed), randomness(seed), shard=1)
        byzantine = set(rng.sample(range(n), f))
        honest = [i for i in range(n) if i not in byzantine]
        for source in honest[:3]:  # undirected: one source shows connectivity, a few the depth
            reached = mesh.hops(source, without=byzantine)
            assert len(reached) == len(honest), \
                f"seed {seed}: member {source} reaches {len(reached)} of {len(honest)} (n={n})"
            assert max(reached.values()) <= bound, f"seed {seed}: {max(reached.values())} hops"


def test_every_member_computes_the_same_mesh_and_the_epoch_changes_it() -> None:
    members = keys(100, 3)
    a = build_mesh(members, randomness(3), shard=2)
    assert a == build_mesh(list(members), bytes(randomness(3)), shard=2)
    assert a.links != build_mesh(members, randomness(4), shard=2).links
    assert a.links != build_mesh(members, randomness(3), shard=3).links


def test_neighbours_are_by_key_and_symmetric() -> None:
    members = keys(40, 5)
    mesh = build_mesh(members, randomness(5), shard=0)
    for pk in members:
        for other in mesh.neighbours(pk):
            assert pk in mesh.neighbours(other) and mesh.are_neighbours(pk, other)
    assert mesh.neighbours(b"\x00" * 32) == ()
    assert not mesh.are_neighbours(members[0], b"\x00" * 32)


def test_committees_up_to_the_threshold_stay_all_to_all() -> None:
    assert mesh_for(keys(MESH_ABOVE, 1), 7, 0) is None
    members = keys(MESH_ABOVE + 1, 1)
    mesh = mesh_for(members, 7, 0)
    assert mesh is not None and mesh.max_degree <= MESH_DEGREE
    assert mesh == mesh_for(tuple(members), 7, 0)
    assert mesh.links != mesh_for(members, 8, 0).links  # a new epoch, a new mesh


def test_a_member_listed_twice_is_refused() -> None:
    members = keys(10, 1)
    with pytest.raises(ValueError):
        build_mesh(members + members[:1], randomness(1), 0)
