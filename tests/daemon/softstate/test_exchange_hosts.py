"""Peer exchange end to end: real hosts and soft-state services on loopback. A seed with room
for its view peer alone hangs up on every newcomer, and each newcomer still joins the network:
it hears of the seed's view peer from the exchange (a signed record, checked) and goes there."""

from __future__ import annotations

from pathlib import Path

from daemon.softstate.service import SoftStateService
from daemon.storage.db import Database
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until


async def test_a_seed_with_no_room_still_bootstraps_a_newcomer_by_peer_exchange(
        tmp_path: Path) -> None:
    seed = make_host("px-seed", max_connections=1, view_degree=1, view_shuffle=3600.0,
                     nat_traversal=False)
    far = make_host("px-far", view_degree=1, view_shuffle=3600.0, nat_traversal=False)

    def service(name: str, host) -> SoftStateService:
        return SoftStateService(identity(name), "px-test", host, Database(tmp_path / f"{name}.db"),
                                slots=1, memory_mib=1024, domain="", load=lambda: 0)

    async with running(seed, far) as nursery:
        s_svc, f_svc = service("px-seed", seed), service("px-far", far)
        await nursery.start(s_svc.run)
        await nursery.start(f_svc.run)
        seed.add_peer(far.listen_addrs()[0])  # the seed's one view peer
        await wait_until(lambda: s_svc.record_of(far.node_id) is not None
                         and seed.overlay_view() == {far.node_id}, 10.0)
        newcomer = make_host("px-new", view_degree=1, view_shuffle=3600.0, nat_traversal=False,
                             bootstrap=(seed.listen_addrs()[0],))
        n_svc = service("px-new", newcomer)
        await nursery.start(newcomer.run)
        await nursery.start(n_svc.run)
        await wait_until(lambda: newcomer.metrics()["dials"].get("exchanges_received") == 1, 10.0)
        await wait_until(lambda: newcomer.overlay_view() == {far.node_id}, 10.0)
        await wait_until(lambda: n_svc.record_of(seed.node_id) is not None, 10.0)  # via far
        assert seed.metrics()["dials"]["exchanges_sent"] >= 1
        assert newcomer.overlay_summary()["full_peers"] == 1
        # (Its soft state may still have had a frame for the seed in flight, which dials it
        # again; the seed hangs up on that connection too.)
        await wait_until(lambda: seed.connected_peers() == [far.node_id]
                         and seed.node_id not in newcomer.connected_peers(), 10.0)
        nursery.cancel_scope.cancel()
