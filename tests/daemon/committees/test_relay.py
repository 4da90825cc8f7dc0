"""The relay's pure parts (``daemon/committees/relay.py``): the bounded seen set, whom a
member forwards to, and routes along the mesh that reach their member within the hop budget."""

from __future__ import annotations

import random

import pytest

from consensus.committee import max_faulty
from consensus.mesh import MESH_ABOVE
from daemon.committees.relay import (
    ROUTE_HEADER, ROUTE_HOPS, MeshPlace, Route, SeenFrames, parse_route, place_on,
)
from protocol.errors import MalformedMessage
from protocol.identity import node_id_from_public_key


def members(n: int, seed: int) -> tuple[bytes, ...]:
    rng = random.Random(seed)
    return tuple(rng.randbytes(32) for _ in range(n))


def test_seen_frames_drop_repeats_within_the_ttl_and_forget_after_it() -> None:
    seen = SeenFrames(cap=100, ttl=10.0)
    assert seen.first(b"a", 0.0)
    assert not seen.first(b"a", 9.9)
    assert seen.first(b"a", 10.0)  # a re-broadcast after the TTL travels again
    assert not seen.first(b"a", 12.0)


def test_seen_frames_stay_within_their_cap() -> None:
    seen = SeenFrames(cap=50, ttl=1e9)
    for i in range(500):
        assert seen.first(i.to_bytes(4, "big"), float(i))
    assert len(seen) == 50
    assert not seen.first((499).to_bytes(4, "big"), 500.0)
    assert seen.first((0).to_bytes(4, "big"), 500.0)  # the oldest went first


def test_a_member_forwards_to_its_other_neighbours_only_what_came_the_mesh_way() -> None:
    committee = members(MESH_ABOVE + 8, 1)
    me = committee[3]
    place = place_on(committee, 4, 0, me)
    assert place is not None
    relay, origin = place.neighbours[0], place.neighbours[1]
    targets = place.targets(origin, node_id_from_public_key(relay))
    assert set(targets) == set(place.neighbours) - {relay, origin}
    stranger = next(pk for pk in committee if pk not in place.neighbours and pk != me)
    assert place.targets(origin, node_id_from_public_key(stranger)) == ()  # not its way
    assert place.targets(b"\x01" * 32, node_id_from_public_key(relay)) == ()  # not a member


def test_small_committees_and_strangers_have_no_place() -> None:
    assert place_on(members(MESH_ABOVE, 1), 0, 0, members(MESH_ABOVE, 1)[0]) is None
    assert place_on(members(50, 1), 0, 0, b"\x02" * 32) is None


@pytest.mark.parametrize("n", (33, 100, 220, 400))
def test_routes_reach_every_member_within_the_hop_budget(n: int) -> None:
    """Each hop is taken by the member holding the frame, from its own place; a route ends at
    its destination, one hop nearer each time."""
    for seed in range(5):
        committee = members(n, seed)
        places = {pk: place_on(committee, seed, 1, pk) for pk in committee}
        rng = random.Random(seed)
        for _ in range(40):
            src, dest = rng.sample(committee, 2)
            frame, at, hops = rng.randbytes(64), src, 0
            via = places[src].via(dest, frame)  # type: ignore[union-attr]
            assert via is not None
            while at != dest:
                place = places[at]
                assert isinstance(place, MeshPlace)
                nxt = place.toward(dest, via, frame)
                assert nxt is not None and nxt in place.neighbours, f"seed {seed}"
                at, hops = nxt, hops + 1
            assert hops <= ROUTE_HOPS, f"seed {seed}: {hops} hops"


@pytest.mark.parametrize("n", (50, 220))
def test_a_resent_message_goes_around_the_members_that_drop_it(n: int) -> None:
    """Frames differ (a re-sent message is sealed anew), so routes differ, in the middle and
    at the last hop: with f members dropping all they relay, every message between honest
    members arrives within a few re-sends (the shortest paths alone leave some pairs cut)."""
    for seed in range(3):
        committee = members(n, seed)
        places = {pk: place_on(committee, 0, 0, pk) for pk in committee}
        rng = random.Random(seed)
        byzantine = set(rng.sample(committee, max_faulty(n)))
        honest = [pk for pk in committee if pk not in byzantine]
        tries = []
        for _ in range(100):
            src, dest = rng.sample(honest, 2)
            for attempt in range(1, 31):
                frame, at = rng.randbytes(64), src
                via = places[src].via(dest, frame)  # type: ignore[union-attr]
                while at != dest and at not in byzantine:
                    place = places[at]
                    assert place is not None and via is not None
                    nxt = place.toward(dest, via, frame)
                    assert nxt is not None, f"seed {seed}"
                    at = nxt
                if at == dest:
                    tries.append(attempt)
                    break
            else:
                raise AssertionError(f"seed {seed}: never arrived in 30 tries")
        assert sum(t == 1 for t in tries) >= 30, f"seed {seed}: {sorted(tries)}"
        assert sorted(tries)[94] <= 10, f"seed {seed}: {sorted(tries)}"


def test_a_routed_frame_round_trips_and_a_short_one_is_refused() -> None:
    route = Route(0xFFFFFFFF, 7, 3, b"\x05" * 32, b"\x06" * 32)
    frame = route.frame(b"envelope")
    assert parse_route(frame) == (route, b"envelope")
    with pytest.raises(MalformedMessage):
        parse_route(frame[:ROUTE_HEADER.size])
