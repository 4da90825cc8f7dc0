"""A committee above ``MESH_ABOVE`` members commits through its mesh: real committee services
(real PBFT replicas, Ed25519, SQLite) over the in-process network, in virtual time. Every
consensus frame a member sends goes to one of its mesh neighbours, and blame for bad frames
lands on the right node."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest
import trio

from consensus.mesh import MESH_ABOVE, MESH_DEGREE
from daemon.clock import TrioClock
from daemon.committees.relay import MESH_PROTOCOL, ROUTE_PROTOCOL
from daemon.committees.service import PROTOCOL, CommitteeService
from daemon.genesis import make_genesis
from daemon.ledger.shard import KV, LedgerShards
from daemon.storage.db import Database
from protocol.canonical import packb
from protocol.envelope import peek_type
from protocol.identity import NodeIdentity
from protocol.messages.crdt import CrdtSummaryWant
from testnet.memnet import MemoryHost, MemoryNet

WALL_START = 1_750_000_000.0
N = MESH_ABOVE + 4
CONSENSUS = (PROTOCOL, MESH_PROTOCOL, ROUTE_PROTOCOL)
ANNOUNCEMENTS = ("pbft.epoch_have",)
"""Sent to every peer a node is connected to (how far it has followed the epoch chain): they
need no connection of their own, so they are not what a member must be connected to."""


def large_committee(tmp_path: Path, n: int = N) -> tuple[MemoryNet, list[CommitteeService],
                                                         dict[str, set[tuple[str, str, str]]]]:
    ids = [NodeIdentity(random.Random(7300 + i).randbytes(32)) for i in range(n)]
    genesis = make_genesis("memnet", ids, {"shards": 1, "difficulty": 0, "min_committee": n})
    net = MemoryNet()
    sent: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    services = []
    for k, i in enumerate(ids):
        host = net.host(i.node_id)
        _record_sends(host, sent[i.node_id])
        services.append(CommitteeService(i, genesis, host, Database(tmp_path / f"{k}.db"),
                                         LedgerShards(), clock=TrioClock(WALL_START)))
    return net, services, sent


def _record_sends(host: MemoryHost, into: set[tuple[str, str, str]]) -> None:
    """Note (peer, protocol, message type) of every frame the host sends; the real send still
    carries it."""
    real = host.send

    def send(peer: str, protocol: str, frame: bytes) -> bool:
        into.add((peer, protocol, peek_type(frame) if protocol != ROUTE_PROTOCOL else "route"))
        return real(peer, protocol, frame)
    host.send = send  # type: ignore[method-assign]


def neighbours(svc: CommitteeService) -> set[str]:
    near: set[str] = set()
    for (shard, epoch), runner in svc.replicas.items():
        place = svc.place(shard, epoch, runner.config.committee)
        assert place is not None, "a committee above the threshold has a mesh"
        near |= set(place.by_node)
    return near


async def test_a_committee_above_the_threshold_commits_through_its_mesh(
        tmp_path: Path, autojump_clock: object) -> None:
    net, services, sent = large_committee(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        assert await services[5].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        assert await services[17].submit(0, KV + packb(["get", "k"])) == b"v"
        while not all(svc.replicas[(0, 0)].machine.kv.data == {"k": "v"} for svc in services):
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert all(not h.faults for h in net.hosts.values())
    for svc in services:
        me = svc.identity.node_id
        near = neighbours(svc)
        assert len(near) <= 2 * MESH_DEGREE  # the shard's mesh and the directory's
        peers = {peer for peer, protocol, kind in sent[me]
                 if protocol in CONSENSUS and kind not in ANNOUNCEMENTS}
        assert peers <= near, f"{me[:12]} sent to {len(peers - near)} non-neighbours"
        assert svc.mesh_counts["sent"] > 0 and svc.mesh_counts["forwarded"] > 0
        assert svc.peers_to_keep() == near
    assert sum(svc.mesh_counts["duplicates"] for svc in services) > 0
    assert sum(svc.mesh_counts["routed"] for svc in services) > 0  # replies to the clients


async def test_a_small_committee_stays_all_to_all(tmp_path: Path, autojump_clock: object) -> None:
    net, services, sent = large_committee(tmp_path, n=6)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        assert await services[1].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        nursery.cancel_scope.cancel()
    primary = {peer for peer, _, _ in sent[services[0].identity.node_id]}
    assert len(primary) == 5 and all(p == PROTOCOL for _, p, _ in sent[services[0].identity.node_id])
    assert all(svc.place(0, 0, svc.epoch.committees[0]) is None for svc in services)


async def test_blame_goes_to_the_relay_for_garbage_and_to_the_origin_for_a_bad_message(
        tmp_path: Path, autojump_clock: object) -> None:
    """A neighbour relays a frame that does not open: the neighbour is at fault. It relays a
    message its origin signed whose content is refused: the origin is at fault, and the
    relay is not."""
    net, services, _ = large_committee(tmp_path)
    victim = services[0]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        relay_id = sorted(neighbours(victim))[0]
        origin = next(s for s in services if s.identity.node_id not in neighbours(victim)
                      and s is not victim)
        relay = net.hosts[relay_id]
        relay.send(victim.identity.node_id, MESH_PROTOCOL, b"\x93not an envelope")
        # Signed by the origin, but not a consensus message: refused on arrival.
        bad = origin.signer.seal(CrdtSummaryWant(1, {}), 0.0)
        relay.send(victim.identity.node_id, MESH_PROTOCOL, bad)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    faults = net.hosts[victim.identity.node_id].faults
    assert len(faults.get(relay_id, [])) == 1, faults
    assert faults.get(origin.identity.node_id) == ["consensus"], faults
    assert victim.misbehaviour == {origin.identity.node_id: 1}


@pytest.mark.parametrize("primary_silent", [False, True])
async def test_the_committee_commits_through_its_mesh_with_f_members_silent(
        tmp_path: Path, autojump_clock: object, primary_silent: bool) -> None:
    """f members never start (their frames go nowhere, they forward nothing): the 2f+1 left
    still commit, the mesh carrying everything around the silent ones; with the primary
    among them, after a view change whose messages travel the mesh too."""
    net, services, _ = large_committee(tmp_path)
    committee = services[0].epoch.committees[0]
    f = (len(committee) - 1) // 3
    primary = committee[0]
    rng = random.Random(11)
    silent = set(rng.sample([s.identity.public_key for s in services
                             if s.identity.public_key != primary], f - primary_silent))
    if primary_silent:
        silent.add(primary)
    live = [s for s in services if s.identity.public_key not in silent]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in live:
            await nursery.start(svc.run)
        client = live[-1]
        assert await client.submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        with trio.fail_after(120):
            while not all(svc.replicas[(0, 0)].machine.kv.data == {"k": "v"} for svc in live):
                await trio.sleep(0.5)
        views = {svc.replicas[(0, 0)].replica.view for svc in live}
        nursery.cancel_scope.cancel()
    assert all(not h.faults for h in net.hosts.values())
    assert (min(views) > 0) == primary_silent, views
