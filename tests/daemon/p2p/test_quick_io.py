"""``daemon.p2p.quick_io``: locks that do not yield when free, read-ahead on TCP, yamux's switches
read once. Real trio tasks and real loopback sockets."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing
from libp2p.io.trio import TrioTCPStream
from libp2p.stream_muxer.yamux import yamux as yamux_module

from daemon.p2p.quick_io import QUICK_LOCKS, READ_AHEAD, QuickLock, quicken


async def test_a_free_lock_is_taken_without_a_checkpoint():
    lock = QuickLock()
    held = False
    with trio.CancelScope() as scope:
        scope.cancel()
        async with lock:  # trio.Lock raises Cancelled here: its every acquire is a checkpoint
            held = lock.locked()
    assert held and not lock.locked()


async def test_waiters_take_the_lock_one_at_a_time_first_come_first_served():
    lock = QuickLock()
    order: list[int] = []
    inside = [0]

    async def worker(i: int) -> None:
        async with lock:
            inside[0] += 1
            assert inside[0] == 1  # alone while it holds the lock, across a yield
            await trio.sleep(0)
            order.append(i)
            inside[0] -= 1

    async with trio.open_nursery() as nursery:
        await lock.acquire()
        for i in range(5):
            nursery.start_soon(worker, i)
            await trio.testing.wait_all_tasks_blocked()  # queued in this order
        lock.release()
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


async def test_a_release_goes_behind_those_already_waiting():
    lock = QuickLock()
    order: list[str] = []

    async def waiter() -> None:
        async with lock:
            order.append("waiter")

    async with trio.open_nursery() as nursery:
        await lock.acquire()
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        lock.release()  # handed to the waiter: taking it again queues behind it
        async with lock:
            order.append("releaser")
    assert order == ["waiter", "releaser"]


async def test_a_cancelled_waiter_leaves_the_queue_and_the_lock_passes_on():
    lock = QuickLock()
    got: list[str] = []

    async def waiter(name: str, scope_out: list[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            scope_out.append(scope)
            async with lock:
                got.append(name)

    async with trio.open_nursery() as nursery:
        await lock.acquire()
        first: list[trio.CancelScope] = []
        nursery.start_soon(waiter, "first", first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "second", [])
        await trio.testing.wait_all_tasks_blocked()
        first[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
        lock.release()
    assert got == ["second"]
    assert not lock.locked()


def test_releasing_a_free_lock_is_an_error():
    with pytest.raises(RuntimeError):
        QuickLock().release()


async def test_streams_built_after_quicken_hold_quick_locks():
    quicken()
    a, b = trio.testing.memory_stream_pair()
    stream = TrioTCPStream(a)  # type: ignore[arg-type]
    assert isinstance(stream.read_lock, QuickLock) and isinstance(stream.write_lock, QuickLock)
    assert QUICK_LOCKS[TrioTCPStream] == ("read_lock", "write_lock")


async def _tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream, trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    return client, server, listeners[0]


async def test_a_burst_of_frames_is_received_once_and_read_in_order():
    quicken()
    client, server, listener = await _tcp_pair()
    receives = [0]
    real = server.receive_some

    async def counted(max_bytes: int | None = None) -> bytes:
        receives[0] += 1
        return await real(max_bytes)

    server.receive_some = counted  # type: ignore[method-assign]
    stream = TrioTCPStream(server)
    frames = [bytes([i]) * (i * 100 + 2) for i in range(1, 6)]
    await client.send_all(b"".join(len(f).to_bytes(2, "big") + f for f in frames))
    await trio.testing.wait_all_tasks_blocked()
    got = []
    for _ in frames:
        size = int.from_bytes(await stream.read(2), "big")
        got.append(await stream.read(size))
    assert got == frames
    assert receives[0] == 1  # ten reads, one receive: the rest came from what it held
    await client.send_all(b"tail")
    await client.aclose()
    assert await stream.read(None) == b"tail"
    assert await stream.read(10) == b""  # end of stream, as before
    await server.aclose()
    await listener.aclose()


async def test_a_read_larger_than_the_read_ahead_gets_what_arrived():
    quicken()
    client, server, listener = await _tcp_pair()
    stream = TrioTCPStream(server)
    payload = os.urandom(3 * READ_AHEAD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, payload)
        got = b""
        while len(got) < len(payload):
            got += await stream.read(len(payload) - len(got))
    assert got == payload
    for s in (client, server, listener):
        await s.aclose()


def test_yamux_switches_are_read_once(monkeypatch):
    quicken()
    before = yamux_module._yamux_data_read_timeout()
    monkeypatch.setenv("PY_YAMUX_DATA_READ_TIMEOUT", str(before + 1))
    assert yamux_module._yamux_data_read_timeout() == before
    assert yamux_module._yamux_batch_threshold_divisor() == 2


def test_the_switch_leaves_py_libp2p_as_it_ships(monkeypatch):
    from daemon.p2p.quick_io import SWITCH, unquicken

    unquicken()
    monkeypatch.setenv(SWITCH, "0")
    try:
        quicken()
        a, _ = trio.testing.memory_stream_pair()
        assert isinstance(TrioTCPStream(a).read_lock, trio.Lock)  # type: ignore[arg-type]
    finally:
        monkeypatch.delenv(SWITCH)
        quicken()
    a, _ = trio.testing.memory_stream_pair()
    assert isinstance(TrioTCPStream(a).read_lock, QuickLock)  # type: ignore[arg-type]


async def test_frames_within_the_window_skip_yamuxs_frame_writer_and_all_arrive_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean write (one DATA frame straight to the session writer) for what fits the send
    window, yamux's own write for the rest: between two real hosts every frame arrives, whole
    and in order, whichever way it went."""
    from libp2p.stream_muxer.yamux.yamux import Yamux

    from protocol.identity import NodeId
    from tests.daemon.p2p.conftest import make_host, running, wait_until

    quicken()
    shipped_data_frames = [0]
    real = Yamux._write_frame

    async def counting(self: Yamux, data: bytes) -> None:
        if data[1] == yamux_module.TYPE_DATA and len(data) > yamux_module.HEADER_SIZE:
            shipped_data_frames[0] += 1
        await real(self, data)

    monkeypatch.setattr(Yamux, "_write_frame", counting)
    a, b = make_host("lean-a"), make_host("lean-b")
    got: list[bytes] = []

    async def handler(peer: str, frame: bytes) -> None:
        got.append(frame)

    b.handle("/novacron/test-lean/1", handler)
    async with running(a, b) as nursery:
        a.add_peer(b.listen_addrs()[0])
        bid = NodeId(b.node_id)
        await wait_until(lambda: bid in a.connected_peers(), 10.0, "a connects")
        small = [bytes([i]) * (100 + i) for i in range(50)]
        for frame in small:
            assert a.send(bid, "/novacron/test-lean/1", frame)
        await wait_until(lambda: len(got) == len(small), 10.0, "small frames arrive")
        assert got == small and shipped_data_frames[0] == 0
        large = os.urandom(300 * 1024)  # over a 64 KiB yamux frame and the 256 KiB window
        assert a.send(bid, "/novacron/test-lean/1", large)
        assert a.send(bid, "/novacron/test-lean/1", b"after")
        await wait_until(lambda: len(got) == len(small) + 2, 10.0, "large frame arrives")
        assert got[-2:] == [large, b"after"] and shipped_data_frames[0] > 0
        nursery.cancel_scope.cancel()
