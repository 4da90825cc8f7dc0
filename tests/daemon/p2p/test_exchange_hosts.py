"""Peer exchange between real hosts: a full seed tells the newcomer it hangs up on where to go."""

from __future__ import annotations

from protocol.canonical import packb, unpackb
from protocol.identity import NodeId
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until

PX = "/novacron/px-test/1"


def exchange_offer(addrs: dict[str, list[str]]):
    def offer(nodes: list[NodeId]) -> bytes:
        return packb([[n, addrs[n]] for n in nodes if n in addrs], maps=False)
    return offer


async def test_a_full_seed_hands_a_newcomer_other_peers_and_the_newcomer_goes_there():
    """The seed holds two connections at most: its view peer and one more. A second newcomer
    pushes the first out; the first
    hears of a peer from the seed before the hang-up, leaves the seed for it, and does not
    dial the seed again. (The soft state sends signed records: ``daemon.softstate.exchange``;
    here the frame is the test's own, the host's part is what is tested.)"""
    seed = make_host("seed", max_connections=2, view_degree=1, view_shuffle=1e6)
    other = make_host("other")
    async with running(seed, other):
        seed_addr = seed.listen_addrs()[0]
        other_addrs = {other.node_id: other.listen_addrs()}
        seed.set_address_source(lambda: list(other_addrs.items()), lambda n: ())
        seed.set_peer_exchange(PX, exchange_offer(other_addrs))
        heard: list[str] = []

        async def on_exchange(peer: str, frame: bytes) -> bytes:
            heard.append(peer)
            first.exchanged(peer, [(n, a) for n, a in unpackb(frame)])
            return b""

        await wait_until(lambda: other.node_id in seed.connected_peers(), timeout=10)
        # Bootstrapped to the seed, as a volunteer is (``add_peer`` would make it a peer the
        # user asked to keep, redialled whatever the overlay decides).
        first = make_host("first", view_degree=1, view_shuffle=1e6, bootstrap=(seed_addr,))
        first.handle_request(PX, on_exchange)
        async with running(first):
            await wait_until(lambda: seed.node_id in first.connected_peers(), timeout=10)
            assert first.overlay_view() == {seed.node_id}  # the only peer it knows
            second = make_host("second", bootstrap=(seed_addr,))
            async with running(second):
                await wait_until(lambda: heard == [seed.node_id], timeout=10)
                await wait_until(lambda: other.node_id in first.connected_peers(), timeout=10)
                assert first.overlay_view() == {other.node_id}
                await wait_until(lambda: seed.node_id not in first.connected_peers(), timeout=10)
                assert seed.metrics()["dials"]["exchanges_sent"] == 1
                assert first.metrics()["dials"]["exchanges_received"] == 1
                assert first.overlay_summary()["full_peers"] == 1
                # It stays away: the seed is full for it, someone else is known, and its book
                # no longer redials the seed (it let go before the hang-up, not a tick later).
                (book,) = [p for p in first.known_peers() if p.node_id == seed.node_id]
                assert not book.remembered and book.bootstrap
                assert second.node_id in seed.connected_peers()


async def test_an_exchange_is_taken_only_from_a_peer_we_dialled_and_once():
    a = make_host("a")
    b = make_host("b")
    async with running(a, b):
        a.add_peer(b.listen_addrs()[0])
        await wait_until(lambda: b.node_id in a.connected_peers(), timeout=10)
        somebody = [(identity("x").node_id, ["/ip4/127.0.0.1/tcp/9/p2p/" + identity("x").node_id])]
        assert not b.exchanged(a.node_id, somebody)  # b did not dial a: an unasked exchange
        assert a.exchanged(b.node_id, somebody)
        assert not a.exchanged(b.node_id, somebody)  # once per connection
        assert b.overlay_summary()["full_peers"] == 0
        assert a.overlay_summary()["full_peers"] == 1
