"""Soft state runs over the overlay's links, not over every connection: three real hosts on
loopback, b and c each holding only a in their views (degree 1) and also connected to each
other, as committee members are. Records still reach everyone, through a."""

from __future__ import annotations

from pathlib import Path

import trio

from daemon.softstate.service import SoftStateService
from daemon.storage.db import Database
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until

NAMES = ("ov-a", "ov-b", "ov-c")


async def test_records_spread_over_view_links_and_not_over_other_connections(
        tmp_path: Path) -> None:
    hosts = [make_host(n, view_degree=1, view_shuffle=3600.0, nat_traversal=False)
             for n in NAMES]
    a, b, c = hosts
    services = [SoftStateService(identity(n), "ov-test", h, Database(tmp_path / f"{n}.db"),
                                 slots=1, memory_mib=1024, domain="", load=lambda: 0)
                for n, h in zip(NAMES, hosts)]
    async with running(*hosts) as nursery:
        for svc in services:
            await nursery.start(svc.run)
        b.add_peer(a.listen_addrs()[0])
        c.add_peer(a.listen_addrs()[0])
        await wait_until(lambda: b.overlay_view() == {a.node_id} == c.overlay_view(), 10.0)
        c.add_peer(b.listen_addrs()[0])  # business between b and c: not a view link
        await wait_until(lambda: b.node_id in c.connected_peers(), 10.0)
        await wait_until(lambda: all(svc.record_of(h.node_id) is not None
                                     for svc in services for h in hosts), 10.0)
        stats = services[1].replica.stats
        before = stats.deltas_applied + stats.states_applied
        generation = services[2].publish("test")  # c's new record reaches b through a
        await wait_until(lambda: getattr(services[1].record_of(c.node_id), "generation", 0)
                         >= generation, 10.0)
        assert services[1].partners.roles == {a.node_id: True}
        assert services[2].partners.roles == {a.node_id: True}
        # a holds nobody in its view: b and c are its passive partners (active until its
        # first scan, while no overlay link of its own was up and nobody had sent a summary).
        await wait_until(lambda: services[0].partners.roles == {b.node_id: False,
                                                                c.node_id: False}, 10.0)
        assert stats.deltas_applied + stats.states_applied > before  # from a (a delta, or a
        # state when a summary round raced the delta)
        for x, y in ((1, c), (2, b)):  # nothing went between b and c
            stream = services[x].replica.books.peers.get(y.node_id)
            assert stream is None or (not stream.connected and stream.applied == 0), stream
        nursery.cancel_scope.cancel()
