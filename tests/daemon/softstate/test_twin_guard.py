"""A copy of a node's soft state started as a second daemon with the node's key, where the two
have no link to each other and only share neighbours (``testnet.memnet`` twin hosts: every
neighbour sees one peer id, and its frames to that id reach only the newer daemon). Real
signed CRDT replicas, real SQLite, virtual time: the copy steps aside with one line, the
original keeps its record in every registry and says in ``status`` that it saw the copy, and
the neighbours hold evidence. A plain restart (the old daemon gone first) is no twin."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from daemon.clock import TrioClock
from daemon.duplicate import DuplicateIdentity
from daemon.softstate.service import SoftStateService, _NS
from daemon.storage.db import Database
from protocol.identity import NodeIdentity
from testnet.memnet import TWIN, MemoryNet

WALL_START = 1_750_000_000.0


def service(net: MemoryNet, host, ident: NodeIdentity, db: Database) -> SoftStateService:
    return SoftStateService(ident, "memnet", host, db, slots=2, memory_mib=1024, domain="",
                            load=lambda: 0, clock=TrioClock(WALL_START + trio.current_time()))


@pytest.mark.parametrize("seed,shared", [(1, True), (2, True), (3, True), (4, False),
                                         (5, False)])
async def test_a_copy_that_only_shares_neighbours_steps_aside_and_the_original_keeps_its_seat(
        tmp_path: Path, autojump_clock: object, seed: int, shared: bool) -> None:
    """``shared``: both daemons link to both neighbours; else the original links only to the
    first neighbour and the copy only to the second (two sides of the network)."""
    rng = random.Random(seed)
    orig, *others = [NodeIdentity(rng.randbytes(32)) for _ in range(3)]
    net = MemoryNet()
    hosts = [net.host(i.node_id) for i in (orig, *others)]
    copy_host = net.twin(orig.node_id)
    svcs = [service(net, h, i, Database(tmp_path / f"{k}.db"))
            for k, (h, i) in enumerate(zip(hosts, (orig, *others)))]
    for o in others:
        net.partition(copy_host.key, o.node_id)  # the copy is not up yet
    stepped: list[str] = []

    async def run_copy(task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await copy.run(task_status=task_status)
        except DuplicateIdentity as err:
            stepped.append(str(err))

    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in svcs:
            await nursery.start(svc.run)
        await trio.sleep(rng.uniform(5, 400))  # the original ran a while, wrote its record
        copied = Database(tmp_path / "copy.db")
        copied.put(_NS, "replica", svcs[0].replica.snapshot())
        await trio.sleep(rng.uniform(0, 30))  # and went on writing after the copy was taken
        svcs[0].publish("refresh")
        copy = service(net, copy_host, orig, copied)
        started = trio.current_time()
        await nursery.start(run_copy)
        if not shared:
            net.partition(orig.node_id, others[1].node_id)
        for o in (others if shared else others[1:]):
            net.heal(copy_host.key, o.node_id)  # never meets the original
        while not stepped:
            await trio.sleep(1)
            assert trio.current_time() - started < 60, "the copy did not step aside"
        for o in others:
            net.partition(copy_host.key, o.node_id)  # its process ended: connections close
        net.heal(orig.node_id, others[1].node_id)
        await trio.sleep(35)  # a digest round: the neighbours' streams to the id recover
        assert stepped[0].startswith(f"node {orig.node_id} also runs at /memory/{orig.node_id}")
        assert "this one steps aside" in stepped[0]
        assert copy.status()["health"].startswith("stopping:")

        st = svcs[0].status()
        assert st["health"].startswith("degraded: another daemon with this node's key started "
                                       f"later at /memory/{orig.node_id}")
        assert st["twins"]["later_daemons_with_this_key"][0]["instance"] == \
            f"{copy.twins.instance:016x}"
        for svc in svcs:  # every registry holds the original's record, naming the copy
            r = svc.record_of(orig.node_id)
            assert r is not None and r.instance == svcs[0].twins.instance
            assert copy.twins.instance in r.rivals
        assert sum(s.twins.book.evidence for s in svcs[1:]) >= 1
        assert all(s.twins.rejected == 0 for s in svcs)
        nursery.cancel_scope.cancel()


async def test_a_restart_is_no_twin(tmp_path: Path, autojump_clock: object) -> None:
    """The same data directory started again after its daemon stopped (with records of the
    old run still travelling): it runs, nobody reports a twin."""
    rng = random.Random(13)
    ids = [NodeIdentity(rng.randbytes(32)) for _ in range(3)]
    net = MemoryNet()
    hosts = [net.host(i.node_id) for i in ids]
    again = net.twin(ids[0].node_id)
    for i in ids[1:]:
        net.partition(again.key, i.node_id)
    dbs = [Database(tmp_path / f"{k}.db") for k in range(3)]
    svcs = [service(net, h, i, db) for h, i, db in zip(hosts, ids, dbs)]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        first = trio.CancelScope()

        async def run_first(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with first:
                await svcs[0].run(task_status=task_status)

        await nursery.start(run_first)
        for svc in svcs[1:]:
            await nursery.start(svc.run)
        await trio.sleep(120)
        first.cancel()  # stopped (its snapshot persisted on the way out)
        for i in ids[1:]:
            net.partition(hosts[0].key, i.node_id)
        await trio.sleep(2)
        second = service(net, again, ids[0], dbs[0])
        await nursery.start(second.run)
        for i in ids[1:]:
            net.heal(again.key, i.node_id)
        await trio.sleep(120)
        assert second.status()["health"] == "ok"
        assert second.twins.step_aside is None and not second.twins.rivals
        assert all(s.twins.book.evidence == 0 for s in svcs[1:])
        for svc in svcs[1:]:
            assert svc.record_of(ids[0].node_id).instance == second.twins.instance  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


def test_twin_key_names_the_second_host() -> None:
    net = MemoryNet()
    ident = NodeIdentity(random.Random(5).randbytes(32))
    net.host(ident.node_id)
    assert net.twin(ident.node_id).key == ident.node_id + TWIN
