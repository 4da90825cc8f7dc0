"""The mesh over real libp2p hosts on 127.0.0.1: three committee services of a 36-member
committee, linked A - B - C where A and C are not mesh neighbours. A's broadcast reaches C
through B's forwarding, and C's message for A reaches it along the mesh, with no connection
between A and C. (Real sockets need real time: waits are bounded.)"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import trio

from consensus.actions import Broadcast
from consensus.committee import DIRECTORY_SHARD
from daemon.committees.relay import place_on
from daemon.committees.service import CommitteeService
from daemon.genesis import make_genesis
from daemon.ledger.shard import LedgerShards
from daemon.p2p import P2PConfig, P2PHost
from daemon.storage.db import Database
from protocol.identity import NodeIdentity
from protocol.messages.pbft import Checkpoint

N = 36


class Opened:
    """The service's real verifier, noting the bytes of every envelope it opens."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.raws: set[bytes] = set()

    def open(self, raw: bytes) -> Any:
        env = self.real.open(raw)
        self.raws.add(raw)
        return env


async def wait_until(condition: object, timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await trio.sleep(0.01)


def a_line_of_three(committee: tuple[bytes, ...],
                    directory: tuple[bytes, ...]) -> tuple[bytes, bytes, bytes]:
    """Members a, b, c of shard 0's mesh with a-b and b-c neighbours and a-c not, on the
    directory's mesh either (the same members: a-c neighbours there would talk direct)."""
    for a in committee:
        pa, da = place_on(committee, 0, 0, a), place_on(directory, 0, DIRECTORY_SHARD, a)
        assert pa is not None and da is not None
        for b in pa.neighbours:
            pb = place_on(committee, 0, 0, b)
            assert pb is not None
            for c in pb.neighbours:
                if c != a and c not in pa.neighbours and c not in da.neighbours:
                    return a, b, c
    raise AssertionError("no line of three on the mesh")


async def test_broadcasts_and_messages_to_one_member_travel_the_mesh_over_libp2p(
        tmp_path: Path) -> None:
    ids = [NodeIdentity(random.Random(7500 + i).randbytes(32)) for i in range(N)]
    genesis = make_genesis("meshnet", ids, {"shards": 1, "difficulty": 0, "min_committee": N})
    by_key = {i.public_key: i for i in ids}
    committees = genesis.epoch0().committees
    committee = committees[0]
    line = [by_key[pk] for pk in a_line_of_three(committee, committees[DIRECTORY_SHARD])]
    hosts = [P2PHost(i, P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",)), random.Random(k))
             for k, i in enumerate(line)]
    services = [CommitteeService(i, genesis, h, Database(tmp_path / f"{k}.db"), LedgerShards())
                for k, (i, h) in enumerate(zip(line, hosts))]
    sa, sb, sc = services
    async with trio.open_nursery() as nursery:
        for h in hosts:
            await nursery.start(h.run)
        for svc in services:
            await nursery.start(svc.run)
        hosts[0].add_peer(hosts[1].listen_addrs()[0])
        hosts[1].add_peer(hosts[2].listen_addrs()[0])
        ida, idb, idc = (i.node_id for i in line)
        await wait_until(lambda: idb in hosts[0].connected_peers()
                         and idc in hosts[1].connected_peers())

        opened_a, opened_c = Opened(sa.verifier), Opened(sc.verifier)
        sa.verifier, sc.verifier = opened_a, opened_c  # type: ignore[assignment]
        runner = sa.replicas[(0, 0)]
        raw = sa.signer.seal(Checkpoint(0, 0, 1_000_000, hashlib.sha256(b"x").digest()), 0.0)
        sa.sink.execute(runner, runner.namespace, committee, line[0].public_key, [Broadcast(raw)])
        await wait_until(lambda: raw in opened_c.raws)
        assert sb.mesh_counts["forwarded"] >= 1

        # C to A: sealed until the route's last relay is B (the one neighbour of A that runs)
        place_c = sc.place(0, 0, committee)
        assert place_c is not None
        for seq in range(1, 500):
            msg = sc.signer.seal(Checkpoint(0, 0, seq, hashlib.sha256(b"y").digest()), 0.0)
            if place_c.via(line[0].public_key, msg) == line[1].public_key:
                break
        sc.send_public(line[0].public_key, msg)
        await wait_until(lambda: msg in opened_a.raws)
        assert sc.mesh_counts["routed"] >= 1 and sb.mesh_counts["routed"] >= 1

        assert idc not in hosts[0].connected_peers() and ida not in hosts[2].connected_peers()
        assert all(not h.metrics()["faults"] for h in hosts)
        nursery.cancel_scope.cancel()
