"""Acknowledged soft-state deltas time the link between two real hosts on loopback: the
host's round-trip table fills from them, with no ping needed."""

from __future__ import annotations

from pathlib import Path

import trio

from daemon.p2p.rtt import PROBE_EVERY
from daemon.softstate.service import SoftStateService
from daemon.storage.db import Database
from protocol.identity import NodeId
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until

REWRITES = 6


async def test_a_peer_that_acknowledges_deltas_is_measured_without_pings(tmp_path: Path) -> None:
    a, b = make_host("rtt-a"), make_host("rtt-b")
    services = [SoftStateService(identity(name), "rtt-test", host, Database(tmp_path / f"{name}.db"),
                                 slots=1, memory_mib=1024, domain="", load=lambda: 0)
                for name, host in (("rtt-a", a), ("rtt-b", b))]
    bid = NodeId(b.node_id)
    started = trio.current_time()
    async with running(a, b) as nursery:
        for svc in services:
            await nursery.start(svc.run)
        b.add_peer(a.listen_addrs()[0])
        await wait_until(lambda: services[1].record_of(a.node_id) is not None, 10.0)
        before = a.rtts.samples(bid)
        for _ in range(REWRITES):  # each rewrite of a's record is a delta b acknowledges
            count = a.rtts.samples(bid)
            generation = services[0].publish("test")
            await wait_until(lambda g=generation: getattr(services[1].record_of(a.node_id),
                                                          "generation", 0) >= g, 10.0)
            await wait_until(lambda c=count: a.rtts.samples(bid) > c, 10.0)
        # b dialled a, so a pings b at most never (b is not in a's view) and at most once
        # anyway before PROBE_EVERY has passed: the samples are the acknowledgements.
        assert trio.current_time() - started < PROBE_EVERY
        assert a.rtts.samples(bid) >= before + REWRITES
        srtt = a.rtts.srtt(bid)
        assert srtt is not None and 0.0 <= srtt < 1.0
        nursery.cancel_scope.cancel()
