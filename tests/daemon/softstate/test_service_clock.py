"""The soft-state service under ``trio.testing.MockClock``: real CRDT replicas, real signed
records, real SQLite, over an in-process network, in virtual time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from daemon.clock import TrioClock
from daemon.softstate.service import (LOAD_REPUBLISH_S, MEMBERSHIP_SCAN_S, PROTOCOL, REFRESH_S,
                                       SoftStateService)
from daemon.storage.db import Database
from protocol.envelope import FORMAT_CHANNEL, seal
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity
from protocol.messages.crdt import CrdtAck
from testnet.memnet import MemoryNet

WALL_START = 1_750_000_000.0


def _three_nodes(tmp_path: Path, seed: int, load=lambda k: 0):
    """Three soft-state services over one in-process network; node ``k`` reports ``load(k)``."""
    ids = [NodeIdentity(random.Random(seed + i).randbytes(32)) for i in range(3)]
    net = MemoryNet()
    services = [SoftStateService(i, "memnet", net.host(i.node_id), Database(tmp_path / f"{k}.db"),
                                 slots=2, memory_mib=1024, domain="", load=lambda k=k: load(k),
                                 clock=TrioClock(WALL_START))
                for k, i in enumerate(ids)]
    return ids, net, services


async def _start(nursery: trio.Nursery, net: MemoryNet, services: list) -> None:
    await nursery.start(net.run)
    for svc in services:
        await nursery.start(svc.run)


async def test_records_spread_a_load_change_follows_and_a_silent_node_falls_behind(
        tmp_path: Path, autojump_clock: object) -> None:
    load = [0, 0, 0]
    ids, net, services = _three_nodes(tmp_path, 7200, load=lambda k: load[k])
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        await trio.sleep(1)
        for svc in services:
            assert {r.node_id for r in svc.records()} == {i.node_id for i in ids}

        generation = services[2].generation
        load[2] = 1000  # node 2 got busy: everyone reads it within LOAD_REPUBLISH_S
        await trio.sleep(LOAD_REPUBLISH_S + 1)
        assert all(svc.record_of(ids[2].node_id).load == 1000 for svc in services)  # type: ignore[union-attr]
        assert all({c.node_id: c.load_permille for c in svc.candidates()}[ids[2].node_id] == 1000
                   for svc in services)
        assert services[2].generation == generation  # its load entry, not a new record

        cut_at = WALL_START + trio.current_time()
        net.partition(ids[0].node_id, ids[2].node_id)
        net.partition(ids[1].node_id, ids[2].node_id)
        await trio.sleep(MEMBERSHIP_SCAN_S + 1)
        heard = services[0].last_heard(ids[2].node_id)
        assert heard is not None and cut_at <= heard <= cut_at + MEMBERSHIP_SCAN_S + 1
        await trio.sleep(REFRESH_S + 10)  # node 2 refreshed its record meanwhile: nobody heard
        assert services[0].last_heard(ids[2].node_id) == heard
        net.heal(ids[0].node_id, ids[2].node_id)
        await trio.sleep(1)
        assert services[0].last_heard(ids[2].node_id) == WALL_START + trio.current_time()
        nursery.cancel_scope.cancel()


async def test_the_first_load_entry_goes_out_at_start_above_every_dot_a_copy_could_have_used(
        tmp_path: Path, autojump_clock: object) -> None:
    """A copy of a data directory, or a node that lost its snapshot, counts dots from where
    the copy was made: its first load entry starts past its start time, as its record does,
    and goes out at once with the range it skipped, so peers' contexts agree at once."""
    from daemon.softstate.load import LOAD

    ids, net, services = _three_nodes(tmp_path, 7250, load=lambda k: 300 * k)
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        await trio.sleep(1)
        for svc in services:
            assert [svc.loads.entry(i.node_id)[0] for i in ids] == [0, 300, 600]  # type: ignore[index]
        me = ids[2].node_id
        top = services[2].replica.get(LOAD).ctx.max(me)
        assert top > services[2].twins.started_ms
        assert all(svc.replica.get(LOAD).ctx.max(me) == top for svc in services)
        assert all(svc.replica.get(LOAD).ctx == services[2].replica.get(LOAD).ctx
                   for svc in services)
        nursery.cancel_scope.cancel()


async def test_link_summaries_spread_and_any_node_predicts_the_link_between_two_others(
        tmp_path: Path, autojump_clock: object) -> None:
    """Node 1 measured its link to node 0 (as a worker fetching a submitter's files does);
    node 2, which measured nothing, reads that link from the soft state. The summary is
    written again only when it changed, and no sooner than the minimum interval."""
    from daemon.links import LinkTable, summarize
    from daemon.links.summary import MIN_INTERVAL_S

    ids, net, services = _three_nodes(tmp_path, 7300)
    tables = [LinkTable() for _ in ids]
    for k, svc in enumerate(services):
        svc.links.source = lambda now_ms, k=k: summarize(tables[k], ids[k].node_id,
                                                         trio.current_time(), now_ms)
    a, b = ids[0].node_id, ids[1].node_id
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        tables[1].rtt(a, 0.02, trio.current_time())
        for _ in range(4):  # 256 KiB chunks at 2 MB/s
            tables[1].observe(a, 256 * 1024, 0.02 + 256 * 1024 / 2e6, trio.current_time())
        await trio.sleep(MEMBERSHIP_SCAN_S + 1)
        got = await services[2].rpc_links({"to": a})
        assert got["to"] == a and b in got["links"], got
        link = got["links"][b]
        assert link["source"] == b and link["samples"] == 4
        assert 1.5e6 < link["bandwidth"] < 2.5e6 and link["low"] < link["bandwidth"]
        assert link["rtt_ms"] == 20.0
        assert services[2].status()["links"]["known"] == 1
        # placement of a job submitted by node 0 counts node 1's link to it (measured the
        # other way, so planned with the doubt that adds: 1 MB at ~0.24 x 2 MB/s); node 2,
        # whose link nobody measured, is planned on the prior
        costs = {c.node_id: c.link_ms for c in services[2].candidates(toward=a, nbytes=10**6)}
        assert 1000 < costs[b] < 3000 and costs[ids[2].node_id] == 1100, costs
        assert costs[a] == 20  # the submitter's own node: no link to cross
        assert {c.link_ms for c in services[2].candidates()} == {20}
        assert services[1].status()["links"]["published"][0]["peer"] == a
        written = services[1].status()["crdt"]["written"]  # what each node wrote, by object
        assert written["links"]["count"] == 1 and written["links"]["bytes"] > 0
        assert services[2].status()["crdt"]["written"].keys() == {"caps", "load"}
        first = services[1].links.published
        assert first is not None
        for _ in range(10):  # the link got 8x slower: republished, not before the interval
            tables[1].observe(a, 256 * 1024, 0.02 + 256 * 1024 / 2.5e5, trio.current_time())
        await trio.sleep(MEMBERSHIP_SCAN_S + 1)
        assert services[1].links.published is first
        await trio.sleep(MIN_INTERVAL_S)
        assert services[1].links.published is not first
        await trio.sleep(1)
        slower = (await services[2].rpc_links({"to": a}))["links"][b]
        assert slower["bandwidth"] < link["bandwidth"] / 3
        nursery.cancel_scope.cancel()


async def test_forecast_gives_every_live_volunteer_a_staying_share(
        tmp_path: Path, autojump_clock: object) -> None:
    """FL's phi selection reads each live volunteer's predicted time before leaving from the
    availability summaries the records publish; a bad horizon is one line."""
    import pytest

    from daemon.control.jsonrpc import RpcError

    _, net, services = _three_nodes(tmp_path, 7400)
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        await trio.sleep(MEMBERSHIP_SCAN_S + 1)
        got = await services[0].rpc_forecast({"horizon_s": 600})
        volunteers = (await services[0].rpc_links({}))["volunteers"]
        assert got["horizon_s"] == 600 and sorted(got["staying"]) == sorted(volunteers)
        assert len(volunteers) == 3 and all(0 < v <= 1 for v in got["staying"].values()), got
        short = (await services[0].rpc_forecast({"horizon_s": 60}))["staying"]
        assert all(short[n] >= got["staying"][n] for n in short)  # a shorter wait is likelier
        for bad in ({"horizon_s": 0}, {"horizon_s": "soon"}, {"until": 5}):
            with pytest.raises(RpcError):
                await services[0].rpc_forecast(bad)
        nursery.cancel_scope.cancel()


async def test_soft_state_goes_in_unsigned_channel_frames_and_takes_no_one_elses_envelope(
        tmp_path: Path, autojump_clock: object) -> None:
    """Anti-entropy messages cross one authenticated stream and are never kept or relayed:
    they go without the envelope's key and signature (98 bytes a message). A signed envelope
    from another node than the stream's peer is still refused."""
    ids, net, services = _three_nodes(tmp_path, 7300)
    frames: list[bytes] = []
    real = net.hosts[ids[0].node_id].send

    def send(peer: str, protocol: str, frame: bytes) -> bool:
        if protocol == PROTOCOL:
            frames.append(frame)
        return real(peer, protocol, frame)
    net.hosts[ids[0].node_id].send = send  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        await trio.sleep(1)
        assert all({r.node_id for r in svc.records()} == {i.node_id for i in ids}
                   for svc in services)
        assert frames and all(f[2] == FORMAT_CHANNEL for f in frames)
        forged = seal(ids[2], "memnet", CrdtAck(1, 1), context=1, seq=1,
                      timestamp_ms=int((WALL_START + trio.current_time()) * 1000))
        with pytest.raises(MalformedMessage, match="signed by the peer"):
            await services[1]._on_frame(ids[0].node_id, forged)
        nursery.cancel_scope.cancel()


async def test_a_resting_soft_state_ticks_rarely_and_a_write_goes_out_at_once(
        tmp_path: Path, autojump_clock: object) -> None:
    """Once every partner has every delta, the tick loop waits ``REST_TICK_S`` (an idle
    daemon ticked ten times a second for nothing); a record written then reaches the others
    at once, not at the next tick, and its receivers forward it at once too."""
    from daemon.softstate.service import REST_TICK_S, TICK_S

    ids, net, services = _three_nodes(tmp_path, 7300)
    ticks = [0, 0, 0]
    for k, svc in enumerate(services):
        def counted(now_ms: int, k: int = k, tick=svc.replica.tick) -> list:
            ticks[k] += 1
            return tick(now_ms)
        svc.replica.tick = counted  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await _start(nursery, net, services)
        await trio.sleep(5)
        assert all(svc.replica.resting() for svc in services)
        ticks[:] = [0, 0, 0]
        await trio.sleep(20)
        assert REST_TICK_S >= 10 * TICK_S
        assert all(n <= 20 / REST_TICK_S + 2 for n in ticks), ticks  # busy: 20 / TICK_S = 200

        net.partition(ids[0].node_id, ids[2].node_id)  # node 2 hears of node 0 through node 1
        await trio.sleep(REST_TICK_S / 2)  # mid-rest: no tick would be due for half a second
        generation = services[0].publish("test")
        await trio.sleep(TICK_S / 10)
        assert all(svc.record_of(ids[0].node_id).generation == generation  # type: ignore[union-attr]
                   for svc in services)
        nursery.cancel_scope.cancel()
