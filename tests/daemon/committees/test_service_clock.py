"""The committees service under ``trio.testing.MockClock``: four real services (real PBFT
replicas, real Ed25519, real SQLite) over an in-process network, in virtual time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from daemon.clock import TrioClock
from consensus.health import Health
from daemon.committees.service import REACH_GRACE_S, REST_TICK_S, TICK_S, CommitteeService
from daemon.genesis import make_genesis
import daemon.ledger.shard as shard_module
from daemon.ledger.shard import KV, LEDGER_TICK_ACTIVE_S, LedgerShards, ledger_operation
from daemon.storage.db import Database
from protocol.canonical import packb, unpackb
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from testnet.memnet import MemoryNet

WALL_START = 1_750_000_000.0


def committee(tmp_path: Path, n: int = 4, shards: int = 2) -> tuple[MemoryNet, list[CommitteeService]]:
    ids = [NodeIdentity(random.Random(7000 + i).randbytes(32)) for i in range(n)]
    genesis = make_genesis("memnet", ids, {"shards": shards, "difficulty": 0, "min_committee": n})
    net = MemoryNet()
    services = [CommitteeService(i, genesis, net.host(i.node_id), Database(tmp_path / f"{k}.db"),
                                 LedgerShards(), clock=TrioClock(WALL_START))
                for k, i in enumerate(ids)]
    return net, services


async def start(nursery: trio.Nursery, net: MemoryNet, services: list[CommitteeService]) -> None:
    """The in-process network, then each service, in ``nursery``."""
    await nursery.start(net.run)
    for svc in services:
        await nursery.start(svc.run)


def a_job(nonce: int) -> ops.Submit:
    inputs = (ops.TaskInput(b"\x01" * 32, 1, b"\x01"),)
    return ops.Submit("busy", b"\x02" * 32, 100, ("t",), inputs, 10**9, 16, 60_000, 1024, 2, 2, 4,
                      0, 86_400, 0, nonce, 1)


def ledger_now_ms(svc: CommitteeService, shard: int) -> int:
    return svc.replicas[(shard, svc.epoch.epoch)].machine.ledger.now_ms


async def test_each_shard_ledger_clock_ticks_while_another_shard_is_busy(
        tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shard 0 has an open job (ticks every 2 s); shard 1 holds only an ended job (each
    member every LEDGER_TICK_IDLE_S times the committee's size, for the job's retention) and
    must still tick: with one last-tick time for all shards it never did."""
    # The rule, not the constant: a shorter idle period keeps the virtual hours few.
    monkeypatch.setattr(shard_module, "LEDGER_TICK_IDLE_S", 7.5)
    monkeypatch.setattr(shard_module, "FIRST_IDLE_TICK_S", 10.0)
    net, services = committee(tmp_path)
    async with trio.open_nursery() as nursery:
        await start(nursery, net, services)
        await trio.sleep(1)  # no clock yet (idle shards tick later): the job starts at the first
        reply = unpackb(await services[0].submit(0, ledger_operation(a_job(1))))
        assert reply["tasks"] == 1 and reply["state"] == "open"
        ended = unpackb(await services[0].submit(1, ledger_operation(a_job(2))))
        await trio.sleep(5)  # its clock read (a job cancelled on a zero clock ends at 0)
        reply = unpackb(await services[0].submit(1, ledger_operation(ops.Cancel(ended["job"]))))
        assert reply["state"] == "cancelled"
        idle_period = 7.5 * len(services[0].replicas[(1, 0)].config.committee)
        await trio.sleep(3 * idle_period + 5)
        elapsed_ms = int(trio.current_time() * 1000)  # the wall clock started with trio's
        for svc in services:
            assert [j.state for j in svc.replicas[(0, 0)].machine.ledger.jobs.values()] == ["open"]
            busy, idle = ledger_now_ms(svc, 0), ledger_now_ms(svc, 1)
            start_ms = int(WALL_START * 1000)
            # f+1 members' reports move a ledger's clock: within one interval of the wall clock.
            assert busy >= start_ms + elapsed_ms - 2 * int(LEDGER_TICK_ACTIVE_S * 1000), busy - start_ms
            assert idle >= start_ms + elapsed_ms - 2 * int(idle_period * 1000), idle - start_ms
        nursery.cancel_scope.cancel()


async def test_a_request_commits_on_every_member_in_virtual_time(tmp_path: Path,
                                                                autojump_clock: object) -> None:
    net, services = committee(tmp_path, shards=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, net, services)
        assert await services[2].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        assert await services[1].submit(0, KV + packb(["get", "k"])) == b"v"
        await trio.sleep(1)
        for svc in services:
            assert svc.replicas[(0, 0)].machine.kv.data == {"k": "v"}
        assert all(not h.faults for h in net.hosts.values())
        nursery.cancel_scope.cancel()


def count_ticks(svc: CommitteeService, key: tuple[int, int]) -> list[float]:
    """When each tick of ``svc``'s replica ``key`` ran (virtual time), from now on."""
    runner = svc.replicas[key]
    ticks: list[float] = []
    tick = runner.replica.tick

    def counted(now: float) -> list[object]:
        ticks.append(trio.current_time())
        return tick(now)
    runner.replica.tick = counted  # type: ignore[method-assign]
    return ticks


async def test_a_resting_committee_ticks_slowly_and_input_wakes_it_at_once(
        tmp_path: Path, autojump_clock: object) -> None:
    """With nothing to do, the tick loop wakes every REST_TICK_S, not every TICK_S (an idle
    daemon's ticks were a third of its idle CPU); a request brings a tick at once, so a
    replica's timers start from the moment work arrives."""
    net, services = committee(tmp_path, shards=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, net, services)
        assert await services[2].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        await trio.sleep(5)  # whatever follows the first request (checkpoints, statuses) ends
        assert all(svc.resting for svc in services)
        ticks = count_ticks(services[1], (0, 0))
        await trio.sleep(10)
        assert 10 / REST_TICK_S - 1 <= len(ticks) <= 10 / REST_TICK_S + 1, len(ticks)
        assert len(ticks) <= 10 / TICK_S / 4  # at least four times fewer than a busy loop's
        # Another member's request reaches member 1's replica and brings its tick now.
        ticks.clear()
        sent = trio.current_time()
        assert await services[2].submit(0, KV + packb(["put", "k2", "v2"])) == b"ok"
        assert ticks and ticks[0] - sent < TICK_S, (sent, ticks[:3])
        await trio.sleep(5)
        assert all(svc.resting for svc in services)  # and it rests again
        nursery.cancel_scope.cancel()


async def test_a_node_outside_the_genesis_joins_at_the_next_epoch(tmp_path: Path,
                                                                 autojump_clock: object) -> None:
    """The epoch manager under virtual time: the newcomer asks to join, the directory
    committee advances the epoch, every node follows the epoch notice, and the newcomer's
    membership is what all of them see; the committees keep committing across the change."""
    ids = [NodeIdentity(random.Random(7100 + i).randbytes(32)) for i in range(5)]
    genesis = make_genesis("memnet", ids[:4], {"shards": 1, "difficulty": 0, "min_committee": 4})
    net = MemoryNet()
    services = [CommitteeService(i, genesis, net.host(i.node_id), Database(tmp_path / f"{k}.db"),
                                 LedgerShards(), clock=TrioClock(WALL_START))
                for k, i in enumerate(ids)]
    async with trio.open_nursery() as nursery:
        await start(nursery, net, services)
        assert await services[0].submit(0, KV + packb(["put", "before", "1"])) == b"ok"
        newcomer = ids[4].public_key
        while not all(newcomer in svc.epoch.members for svc in services):
            await trio.sleep(1)
        assert {svc.epoch.epoch for svc in services} == {1}
        assert trio.current_time() < 120  # virtual seconds: a join retry and an epoch's minimum
        assert await services[4].submit(0, KV + packb(["get", "before"])) == b"1"
        nursery.cancel_scope.cancel()


async def test_a_committee_that_loses_its_quorum_says_stalled_within_seconds(
        tmp_path: Path, autojump_clock: object) -> None:
    """Two of four members cut off: a quorum (3) is out of reach. The survivors say so once
    the grace for a dropped connection has passed, not a minute later, and are healthy again
    once the others are back."""
    net, services = committee(tmp_path, shards=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, net, services)
        assert await services[0].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        assert services[0].health()[0] is Health.OK
        keys = [net.hosts[k].key for k in net.hosts]
        for a in keys[:2]:
            for b in keys[2:]:
                net.partition(a, b)
        await trio.sleep(REACH_GRACE_S / 2)
        assert services[0].health()[0] is Health.OK  # a dropped connection may come back
        await trio.sleep(REACH_GRACE_S / 2 + 2)
        health, why = services[0].health()
        assert health is Health.STALLED and "a quorum is 3" in why, why
        for a in keys[:2]:
            for b in keys[2:]:
                net.heal(a, b)
        await trio.sleep(2)
        assert services[0].health()[0] is Health.OK
        nursery.cancel_scope.cancel()
