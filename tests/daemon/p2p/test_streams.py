"""Direct framed streams between real hosts on 127.0.0.1."""

import random
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p.network.stream.exceptions import StreamEOF, StreamError

from daemon.p2p import RequestFailed
from daemon.p2p.framing import HEADER
from protocol.errors import MalformedMessage
from tests.daemon.p2p.conftest import Inbox, dial, make_host, raw_libp2p_host, running, wait_until

PROTO = "/novacron/test/1"


async def connected_pair(a, b):
    await wait_until(lambda: b.node_id in a.connected_peers() and a.node_id in b.connected_peers())


@asynccontextmanager
async def serving(handler, **b_options):
    """Host ``a`` serving ``PROTO`` with ``handler``, host ``b`` bootstrapped to it (with
    ``b_options``), both running and connected: the shape most tests here need."""
    a = make_host("a")
    a.handle(PROTO, handler)
    async with running(a):
        b = make_host("b", bootstrap=a.listen_addrs(), **b_options)
        async with running(b):
            await connected_pair(a, b)
            yield a, b


async def test_frames_flow_both_ways_in_order():
    a = make_host("a")
    inbox_a, inbox_b = Inbox(), Inbox()
    a.handle(PROTO, inbox_a)
    async with running(a):
        b = make_host("b", bootstrap=a.listen_addrs())
        b.handle(PROTO, inbox_b)
        async with running(b):
            await connected_pair(a, b)
            for i in range(200):  # interleaved, both directions at once; fits send_queue=256
                assert a.send(b.node_id, PROTO, b"a%d" % i)
                assert b.send(a.node_id, PROTO, b"b%d" % i)
            await inbox_a.wait_for(200)
            await inbox_b.wait_for(200)
            late = Inbox()
            b.handle("/novacron/late/1", late)  # handlers can be added while running
            assert a.send(b.node_id, "/novacron/late/1", b"late")
            await late.wait_for(1)
    assert inbox_b.items == [(a.node_id, b"a%d" % i) for i in range(200)]
    assert inbox_a.items == [(b.node_id, b"b%d" % i) for i in range(200)]
    assert a.metrics()["frames_out"][PROTO] == 200 and a.metrics()["frames_in"][PROTO] == 200


async def _expect_reset(stream) -> None:
    """The victim must reset (or close) the stream: reading ends with an error or EOF."""
    with trio.fail_after(5):
        while True:
            try:
                if not await stream.read(1024):
                    return
            except (StreamError, StreamEOF):
                return


async def test_oversized_frame_resets_the_stream_counts_a_fault_and_others_are_still_served():
    victim, honest = make_host("victim"), make_host("honest")
    inbox = Inbox()
    victim.handle(PROTO, inbox)
    async with running(victim, honest), raw_libp2p_host("attacker") as attacker:
        victim_id = await dial(attacker, victim)
        stream = await attacker.new_stream(victim_id, [PROTO])
        await stream.write(HEADER.pack(victim.config.max_frame + 1) + b"x" * 1000)
        await _expect_reset(stream)
        attacker_id = str(attacker.get_id())
        await wait_until(lambda: attacker_id in victim.metrics()["faults"])
        assert victim.metrics()["faults"][attacker_id] == {"frame_too_large": 1}
        assert inbox.items == []

        honest.add_peer(victim.listen_addrs()[0])
        await wait_until(lambda: victim.node_id in honest.connected_peers())
        assert honest.send(victim.node_id, PROTO, b"still here")
        await inbox.wait_for(1)
        assert inbox.items == [(honest.node_id, b"still here")]


async def test_random_bytes_and_a_truncated_frame_count_faults_and_the_node_carries_on():
    victim = make_host("victim")
    inbox = Inbox()
    victim.handle(PROTO, inbox)
    rng = random.Random(7)
    async with running(victim), raw_libp2p_host("attacker") as attacker:
        victim_id = await dial(attacker, victim)
        attacker_id = str(attacker.get_id())

        garbage = await attacker.new_stream(victim_id, [PROTO])
        await garbage.write(rng.randbytes(4096))  # seed 7: the first 4 bytes announce > max_frame
        await _expect_reset(garbage)

        truncated = await attacker.new_stream(victim_id, [PROTO])
        await truncated.write(HEADER.pack(100) + b"only ten..")
        await truncated.close()
        await wait_until(lambda: sum(victim.metrics()["faults"].get(attacker_id, {}).values()) == 2)

        valid = await attacker.new_stream(victim_id, [PROTO])
        await valid.write(HEADER.pack(2) + b"ok")
        await inbox.wait_for(1)
    assert victim.metrics()["faults"][attacker_id] == {"frame_too_large": 1, "truncated_frame": 1}
    assert inbox.items == [(attacker_id, b"ok")]


async def test_foreign_protocols_and_raw_tcp_garbage_do_not_hurt_the_node():
    victim = make_host("victim", handshake_timeout=1.0)
    inbox = Inbox()
    victim.handle(PROTO, inbox)
    async with running(victim):
        port = int(victim.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
        # Not libp2p at all: random bytes straight onto the TCP port. The handshake never
        # completes, so the victim drops the connection after handshake_timeout.
        sock = await trio.open_tcp_stream("127.0.0.1", port)
        await sock.send_all(random.Random(3).randbytes(2000))
        with trio.fail_after(5):
            try:
                while await sock.receive_some(4096):
                    pass
            except trio.BrokenResourceError:
                pass  # reset by the victim: fine too
        await sock.aclose()

        async with raw_libp2p_host("stranger") as stranger:
            victim_id = await dial(stranger, victim)
            with pytest.raises(Exception):  # noqa: B017 - libp2p raises its own negotiation errors
                with trio.fail_after(10):
                    await stranger.new_stream(victim_id, ["/someone/elses/protocol/1"])
            stream = await stranger.new_stream(victim_id, [PROTO])
            await stream.write(HEADER.pack(5) + b"fine!")
            await inbox.wait_for(1)
        assert victim.metrics()["faults"] == {}


async def test_handler_errors_are_counted_and_the_stream_goes_on():
    got: list[bytes] = []

    async def handler(peer: str, frame: bytes) -> None:
        if frame == b"bad envelope":
            raise MalformedMessage("not a NovaCron envelope")
        if frame == b"our bug":
            raise KeyError("oops")
        got.append(frame)

    async with serving(handler) as (a, b):
        for frame in (b"bad envelope", b"our bug", b"good"):
            assert b.send(a.node_id, PROTO, frame)
        await wait_until(lambda: got == [b"good"])
        metrics = a.metrics()
    assert metrics["faults"] == {b.node_id: {"malformed": 1}}
    assert metrics["handler_errors"] == {PROTO: 1}
    assert metrics["frames_in"][PROTO] == 3


class Held:
    """A frame handler that holds every frame until ``release`` is set (a stalled receiver)."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.got: list[bytes] = []

    async def __call__(self, peer: str, frame: bytes) -> None:
        await self.release.wait()
        self.got.append(frame)


async def test_a_full_send_queue_drops_and_counts_and_everything_accepted_arrives_in_order():
    held = Held()
    async with serving(held, send_queue=4) as (a, b):
        accepted, refused = [], 0
        with trio.fail_after(20):
            i = 0
            while refused < 20:  # the receiver never reads: back-pressure must reach send()
                frame = i.to_bytes(4, "big") + bytes(64 * 1024)
                if b.send(a.node_id, PROTO, frame):
                    accepted.append(frame)
                else:
                    refused += 1
                i += 1
                await trio.sleep(0)
        assert b.metrics()["drops"] == {"queue_full": refused}
        held.release.set()
        await wait_until(lambda: len(held.got) == len(accepted), timeout=20)
    assert held.got == accepted


async def test_a_receiver_stalled_past_yamuxs_5_s_window_wait_loses_no_frame_and_no_stream():
    """py-libp2p's yamux write gives up after 5 s without window and the stream was reset: on a
    slow line that dropped healthy batches and cut frames (a fault counted against an honest
    sender). Our writes wait for window themselves; the ping check sees the full line as busy."""
    held = Held()
    async with serving(held) as (a, b):
        frames = [i.to_bytes(4, "big") + bytes(32 * 1024) for i in range(240)]  # > buffers
        for frame in frames:
            assert b.send(a.node_id, PROTO, frame)
        asked = trio.current_time()
        await trio.sleep(5.5)  # the receiver's handler is busy this long: past 5 s
        assert b._streams.line_busy(a.node_id, asked)
        held.release.set()
        await wait_until(lambda: len(held.got) == len(frames), timeout=20)
        assert not b._streams.line_busy(a.node_id, trio.current_time())
    assert held.got == frames
    assert "send_failed" not in b.metrics()["drops"] and not a.metrics()["faults"]


async def test_small_frames_cost_no_window_update_each_and_large_flows_still_get_credit(
        monkeypatch):
    """py-libp2p 0.8.1 credits the yamux window after every read, so each frame received cost a
    frame sent back. Credit goes at half the window now: 400 vote-sized frames (80 KB) need
    none; 6 MB gets credit as it is read (at most a few dozen updates), and all of it arrives."""
    from libp2p.stream_muxer.yamux.yamux import YamuxStream
    updates = []
    send_update = YamuxStream.send_window_update

    async def counted(self, increment, skip_lock=False):
        updates.append(increment)
        await send_update(self, increment, skip_lock=skip_lock)

    monkeypatch.setattr(YamuxStream, "send_window_update", counted)
    inbox = Inbox()
    async with serving(inbox) as (a, b):
        updates.clear()
        for i in range(400):
            assert b.send(a.node_id, PROTO, i.to_bytes(4, "big") + bytes(196))
            if i % 20 == 19:
                await inbox.wait_for(i + 1)  # a read each time: credit could go each time
        assert len(updates) <= 2  # identify or ping may read meanwhile; the frames do not
        big = [bytes([i]) * (60 * 1024) for i in range(100)]
        for frame in big:
            while not b.send(a.node_id, PROTO, frame):
                await trio.sleep(0.01)
        await inbox.wait_for(500)
        assert 2 <= len(updates) <= 60  # credit still flows (a few dozen at most)
    assert [f for _, f in inbox.items[400:]] == big


async def test_sends_to_unknown_peers_or_ourselves_or_before_running_are_refused_and_counted():
    a = make_host("a", address_wait=0.5)
    stranger = make_host("stranger").node_id
    assert not a.send(stranger, PROTO, b"x")
    async with running(a):
        # A valid peer id with no address yet: queued while its address may still arrive,
        # then dropped and counted when none did.
        assert a.send(stranger, PROTO, b"x") and a.send(stranger, PROTO, b"y")
        assert not a.send(a.node_id, PROTO, b"x")
        assert not a.send("not a peer id", PROTO, b"x")
        await wait_until(lambda: a.metrics()["drops"].get("unknown_peer") == 3)
    assert a.metrics()["drops"] == {"not_running": 1, "unknown_peer": 3, "self": 1}


async def test_frames_for_a_peer_wait_for_its_address_from_the_address_source():
    """Started from one seed, a node learns others' addresses from their records a moment
    after its services first send to them: those frames wait instead of being dropped."""
    got: list[bytes] = []

    async def on_frame(peer: str, frame: bytes) -> None:
        got.append(frame)

    a, b = make_host("a"), make_host("b")
    b.handle(PROTO, on_frame)
    known: dict[str, list[str]] = {}
    a.set_address_source(lambda: known.items(), lambda node: known.get(node, []))
    async with running(a, b):
        assert a.send(b.node_id, PROTO, b"early")
        known[b.node_id] = b.listen_addrs()
        await wait_until(lambda: got == [b"early"])
    assert "unknown_peer" not in a.metrics()["drops"]


async def test_request_response_and_how_requests_fail():
    async def echo(peer: str, frame: bytes) -> bytes:
        return b"echo:" + frame

    async def never(peer: str, frame: bytes) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    async def broken(peer: str, frame: bytes) -> bytes:
        raise RuntimeError("handler bug")

    server = make_host("server")
    server.handle_request("/novacron/echo/1", echo)
    server.handle_request("/novacron/never/1", never)
    server.handle_request("/novacron/broken/1", broken)
    async with running(server):
        client = make_host("client", bootstrap=server.listen_addrs())
        async with running(client):
            await connected_pair(server, client)
            assert await client.request(server.node_id, "/novacron/echo/1", b"hi", 5) == b"echo:hi"
            big = bytes(300 * 1024)
            answer = await client.request(server.node_id, "/novacron/echo/1", big, 5)
            assert answer == b"echo:" + big
            with pytest.raises(RequestFailed) as slow:
                await client.request(server.node_id, "/novacron/never/1", b"?", 0.3)
            with pytest.raises(RequestFailed) as unknown:
                await client.request(server.node_id, "/novacron/nobody/1", b"?", 5)
            with pytest.raises(RequestFailed) as bug:
                await client.request(server.node_id, "/novacron/broken/1", b"?", 5)
            with pytest.raises(RequestFailed) as self_request:
                await client.request(client.node_id, "/novacron/echo/1", b"?", 5)
    assert slow.value.reason == "timeout"
    assert unknown.value.reason == "open"
    assert bug.value.reason in {"stream", "no_response"}
    assert self_request.value.reason == "self"
    assert server.metrics()["handler_errors"] == {"/novacron/broken/1": 1}
    assert server.metrics()["requests"]["served"] == 2
