"""P2PHost as a whole: identity, Noise only, reconnection, bans, and a clean shutdown."""

import os
import threading
import time

import pytest
import trio
from libp2p import create_yamux_muxer_option, new_swarm
from libp2p.host.basic_host import BasicHost
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from multiaddr import Multiaddr

from daemon.p2p import BadAddress, P2PError
from daemon.p2p.factory import key_pair_for
from tests.daemon.p2p.conftest import (
    Inbox,
    identity,
    make_host,
    port_of,
    raw_libp2p_host,
    restartable_listen,
    running,
    start_stoppable,
    wait_until,
)

PROTO = "/novacron/test/1"


async def test_peer_id_is_the_node_id_and_it_listens_on_loopback_only():
    host = make_host("a")
    assert host.listen_addrs() == []
    async with running(host):
        (addr,) = host.listen_addrs()
        assert addr.startswith("/ip4/127.0.0.1/tcp/")
        assert addr.endswith(f"/p2p/{identity('a').node_id}")
        async with raw_libp2p_host("other") as other:
            info = info_from_p2p_addr(Multiaddr(addr))
            await other.connect(info)
            # The id the Noise handshake proved is the NovaCron node id.
            assert [str(p) for p in other.get_connected_peers()] == [identity("a").node_id]


async def test_plaintext_is_refused_both_ways_while_noise_connects():
    ours = make_host("ours")
    kp = key_pair_for(identity("plain"))
    swarm = new_swarm(
        key_pair=kp,
        sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)},
        muxer_opt=create_yamux_muxer_option(),
        listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")],
    )
    plain = BasicHost(network=swarm)
    async with running(ours), plain.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        try:
            with pytest.raises(Exception):  # noqa: B017 - libp2p's dial error types vary
                with trio.fail_after(10):
                    await plain.connect(info_from_p2p_addr(Multiaddr(ours.listen_addrs()[0])))
            plain_addr = f"{plain.get_addrs()[0]}"
            ours.add_peer(plain_addr)  # and we never settle for plaintext when we dial
            await wait_until(lambda: ours.metrics()["dials"].get("failures", 0) >= 1)
            assert ours.connected_peers() == [] and plain.get_connected_peers() == []
            async with raw_libp2p_host("noise") as noise:  # same dialler with Noise: fine
                await noise.connect(info_from_p2p_addr(Multiaddr(ours.listen_addrs()[0])))
                await wait_until(lambda: str(noise.get_id()) in ours.connected_peers())
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await plain.close()


async def test_reconnects_after_the_peer_restarts_on_the_same_port():
    port_holder: list[str] = []
    events: list[tuple[str, str]] = []
    inbox = Inbox()
    async with trio.open_nursery() as outer:
        b1 = make_host("b", listen=restartable_listen())
        b1_run = await start_stoppable(outer, b1)
        port_holder.append(b1.listen_addrs()[0])
        a = make_host("a", bootstrap=port_holder)
        a.on_peer(lambda p: events.append(("up", p)), lambda p: events.append(("down", p)))
        await outer.start(a.run)
        await wait_until(lambda: b1.node_id in a.connected_peers())

        await b1_run.stop()  # b goes away ...
        await wait_until(lambda: a.connected_peers() == [])
        b2 = make_host("b", listen=[f"/ip4/127.0.0.1/tcp/{port_of(port_holder[0])}"])
        b2.handle(PROTO, inbox)
        await outer.start(b2.run)  # ... and comes back: same key, same port
        await wait_until(lambda: b2.node_id in a.connected_peers(), timeout=10)
        assert a.send(b2.node_id, PROTO, b"welcome back")
        await inbox.wait_for(1)
        known = [(p.node_id, p.bootstrap, p.connected, p.banned) for p in a.known_peers()]
        assert known == [(b2.node_id, True, True, False)]
        outer.cancel_scope.cancel()
    assert inbox.items == [(a.node_id, b"welcome back")]
    assert events == [("up", b1.node_id), ("down", b1.node_id), ("up", b1.node_id)]
    assert a.metrics()["dials"]["succeeded"] == 2


async def test_a_closing_host_stops_listening_before_it_closes_its_connections(monkeypatch):
    """Peers see a host go when its connections close: by then its port must be free, or a
    restart on it finds it taken and a peer's redial is accepted by a host on its way out."""
    from daemon.p2p import libp2p_fixes
    from testnet.local.processes import port_is_free

    seen_free: list[bool] = []
    close_connections = libp2p_fixes.close_connections

    async def watching(swarm):
        seen_free.append(port_is_free(port_of(b_listen[0])))
        await close_connections(swarm)

    monkeypatch.setattr(libp2p_fixes, "close_connections", watching)
    async with trio.open_nursery() as outer:
        b = make_host("b", listen=restartable_listen())
        b_run = await start_stoppable(outer, b)
        b_listen = b.listen_addrs()
        a = make_host("a", bootstrap=b_listen)
        await outer.start(a.run)
        await wait_until(lambda: b.node_id in a.connected_peers())
        await b_run.stop()
        outer.cancel_scope.cancel()
    assert seen_free[0] is True  # b's, the first host to close


async def test_addresses_asked_for_while_the_listeners_close_are_read_without_error():
    """A task asking for the host's addresses while its listeners close (a gossipsub graft
    does) read closed sockets and failed the host with EBADF."""
    from daemon.p2p import libp2p_fixes

    async with trio.open_nursery() as outer:
        b = make_host("b")
        await outer.start(b.run)
        swarm = b._swarm
        assert swarm is not None
        reads: list[int] = []
        closing = True

        async def ask() -> None:
            while closing:
                for listener in swarm.listeners.values():
                    reads.append(len(listener.get_addrs()))
                await trio.sleep(0)

        async with trio.open_nursery() as inner:
            inner.start_soon(ask)
            await trio.sleep(0)
            await libp2p_fixes.close_listeners(swarm)
            closing = False
        outer.cancel_scope.cancel()
    assert reads and reads[-1] == 0


def test_peer_addresses_must_name_the_peer():
    host = make_host("a")
    with pytest.raises(BadAddress, match="/p2p/<node id>"):
        host.add_peer("/ip4/127.0.0.1/tcp/4001")
    with pytest.raises(BadAddress):
        host.add_peer("nonsense")


async def test_a_second_node_on_a_port_in_use_is_refused():
    a = make_host("a")
    async with running(a):
        clash = make_host("b", listen=[f"/ip4/127.0.0.1/tcp/{port_of(a.listen_addrs()[0])}"])
        with pytest.raises(P2PError, match="already in use"):
            await clash.run()


async def test_a_peer_past_the_fault_threshold_is_banned():
    events: list[tuple[str, str]] = []
    a = make_host("a", fault_threshold=3, fault_decay=0.0)
    a.on_peer(lambda p: events.append(("up", p)), lambda p: events.append(("down", p)))
    async with running(a):
        b = make_host("b", bootstrap=a.listen_addrs())
        async with running(b):
            await wait_until(lambda: b.node_id in a.connected_peers())
            for _ in range(3):
                a.report_fault(b.node_id, "bad_signature")
            await wait_until(lambda: b.node_id not in a.connected_peers())
            assert not a.send(b.node_id, PROTO, b"x")
            # b keeps redialling (a is its bootstrap peer); a hangs up on each attempt.
            attempts = b.metrics()["dials"].get("attempts", 0)
            await wait_until(lambda: b.metrics()["dials"].get("attempts", 0) >= attempts + 2)
            assert b.node_id not in a.connected_peers()
            metrics = a.metrics()
    assert events == [("up", b.node_id), ("down", b.node_id)]
    assert metrics["faults"] == {b.node_id: {"bad_signature": 3}}
    assert metrics["bans"] == {b.node_id: 1} and metrics["banned_peers"] == 1
    assert metrics["drops"] == {"banned": 1}


def _socket_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def _count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


async def test_cancelling_run_closes_all_sockets_threads_and_tasks_within_two_seconds():
    sockets_before, threads_before = _socket_fds(), threading.active_count()
    tasks_before = _count_tasks()
    gossip = Inbox()
    async with trio.open_nursery() as nursery:
        a = make_host("a")
        a.subscribe("t", gossip)
        await nursery.start(a.run)
        peers = [make_host(f"p{i}", bootstrap=a.listen_addrs()) for i in range(3)]
        for peer in peers:
            peer.handle(PROTO, Inbox())
            peer.subscribe("t", Inbox())
            await nursery.start(peer.run)
        await wait_until(lambda: len(a.connected_peers()) == 3)
        for peer in peers:
            assert a.send(peer.node_id, PROTO, b"x")
        await wait_until(lambda: a.metrics()["frames_out"].get(PROTO) == 3)
        addrs = [h.listen_addrs()[0] for h in (a, *peers)]
        assert len(_socket_fds()) > len(sockets_before)
        started = time.monotonic()
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"shutdown took {elapsed:.2f} s"
    assert _socket_fds() <= sockets_before  # every socket closed explicitly, none left to the GC
    assert threading.active_count() == threads_before
    assert _count_tasks() == tasks_before
    for addr in addrs:  # nobody listens any more
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port_of(addr))


async def test_failed_dials_do_not_use_up_the_connection_limit():
    # py-libp2p counts a connection per dial attempt and, when the attempt is cancelled
    # mid-handshake, never gives it back; at its limit every new connection is refused and
    # the node is cut off for good. A peer that accepts TCP and never answers is the case.
    import socket

    a = make_host("a", dial_timeout=0.3, handshake_timeout=0.3)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        async with running(a), raw_libp2p_host("good") as good:
            rm = a._swarm._resource_manager
            for i in range(3):
                a.add_peer(f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}"
                           f"/p2p/{identity(f'silent{i}').node_id}")
            await wait_until(lambda: a.metrics()["dials"].get("failures", 0) >= 30, timeout=60)
            assert rm._current_connections <= 3  # only the attempts in flight
            a.add_peer(f"{good.get_addrs()[0]}")
            await wait_until(lambda: str(good.get_id()) in a.connected_peers(), timeout=10)
    finally:
        silent.close()
