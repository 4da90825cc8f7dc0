#!/usr/bin/env python3
"""Benchmark the libp2p host wrapper on 127.0.0.1, each figure beside a baseline from this run.

    .venv/bin/python scripts/bench_p2p.py [--seed 1] [--quick]

Prints one JSON object:

- ``connect_ms``: dial + Noise + yamux until ``connect`` returns, ours (one connection per peer)
  vs py-libp2p's default host (its fixed 250 ms happy-eyeballs wait after each dial).
- ``stream_rtt_ms``: round trip of a 100-byte frame through ``P2PHost.send`` and an echoing
  frame handler, vs a bare yamux stream echo between bare py-libp2p hosts.
- ``request_ms``: one ``P2PHost.request`` (fresh stream per request) round trip.
- ``frames_per_s``: 100-byte frames pushed through ``send`` until all have arrived, and MiB/s
  with 64 KiB frames.
- ``gossip``: a 10-node mesh (each node dials two earlier ones, seeded): time until all 9 other
  nodes have a published message, p50/p99; and the share of a 50-message burst that reaches a
  node two hops away, ours vs py-libp2p's default GossipSub settings (which rate-limit forwarding
  to 10 per second and drop the rest silently).
- ``frame_cpu_us``: CPU time (this process's, both ends) per 300-byte frame in a ping-pong
  through ``send`` and a handler, with ``daemon.p2p.quick_io`` (locks that do not yield when
  free, read-ahead, yamux's switches read once) vs py-libp2p's own, two rounds each, the best
  of each kept. Every other figure here, baselines included, runs with ``quick_io`` on.
- ``shutdown_ms``: cancelling ``run`` on a node with 20 connections, vs ``Swarm.close`` alone
  (which closes connections one by one).

All nodes run in this one process and share one CPU, so gossip and throughput figures are lower
bounds for separate processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from libp2p import new_host  # noqa: E402
from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from libp2p.pubsub.gossipsub import GossipSub  # noqa: E402
from libp2p.pubsub.pubsub import Pubsub  # noqa: E402
from libp2p.tools.anyio_service import background_trio_service  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from daemon.p2p import P2PConfig, P2PHost  # noqa: E402
from daemon.p2p.factory import GOSSIP_PROTOCOLS, build_swarm_and_host, key_pair_for  # noqa: E402
from daemon.p2p.libp2p_fixes import route_libp2p_logging  # noqa: E402
from daemon.p2p.quick_io import SWITCH, quicken, unquicken  # noqa: E402
from protocol.identity import NodeIdentity  # noqa: E402

LOOPBACK = Multiaddr("/ip4/127.0.0.1/tcp/0")


def identity(name: str, seed: int) -> NodeIdentity:
    return NodeIdentity(hashlib.sha256(f"bench-p2p:{seed}:{name}".encode()).digest())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50": pct(ms, 0.5), "p99": pct(ms, 0.99), "n": len(ms)}


def p2p_host(name: str, seed: int, **settings: Any) -> P2PHost:
    return P2PHost(identity(name, seed), P2PConfig(**settings), random.Random(f"{seed}:{name}"))


@asynccontextmanager
async def running(*hosts: P2PHost) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        for host in hosts:
            await nursery.start(host.run)
        yield nursery
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def bare_host(host: Any) -> AsyncIterator[Any]:
    async with host.run(listen_addrs=[LOOPBACK]):
        try:
            yield host
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.001)


# -- connect ---------------------------------------------------------------------------------


async def connect_times(make: Callable[[str], Any], trials: int) -> list[float]:
    times = []
    async with bare_host(make("server")) as server, bare_host(make("client")) as client:
        info = info_from_p2p_addr(Multiaddr(f"{server.get_addrs()[0]}"))
        for _ in range(trials):
            started = time.perf_counter()
            await client.connect(info)
            times.append(time.perf_counter() - started)
            await client.disconnect(info.peer_id)
            await wait_until(lambda: not server.get_connected_peers())
    return times


async def bench_connect(seed: int, trials: int) -> dict[str, Any]:
    config = P2PConfig()

    def ours(name: str) -> Any:
        return build_swarm_and_host(identity(name, seed), config)[1]

    def default(name: str) -> Any:
        return new_host(key_pair=key_pair_for(identity(name, seed)), listen_addrs=[LOOPBACK])

    return {
        "ours": summary(await connect_times(ours, trials)),
        "baseline_default_host": summary(await connect_times(default, trials)),
    }


# -- streams ---------------------------------------------------------------------------------


def echo_pair(seed: int, prefix: str) -> tuple[P2PHost, P2PHost,
                                               Callable[[bytes], Awaitable[None]]]:
    """Two hosts, not yet running, and ``ping(payload)``: a frame from the first, echoed by the
    second; it returns once the echo is back."""
    a, b = p2p_host(f"{prefix}a", seed), p2p_host(f"{prefix}b", seed)
    pong = [trio.Event()]

    async def echo(peer: str, frame: bytes) -> None:
        b.send(peer, "/bench/pong/1", frame)

    async def on_pong(peer: str, frame: bytes) -> None:
        pong[0].set()

    b.handle("/bench/ping/1", echo)
    a.handle("/bench/pong/1", on_pong)

    async def ping(payload: bytes) -> None:
        pong[0] = trio.Event()
        a.send(b.node_id, "/bench/ping/1", payload)
        await pong[0].wait()

    return a, b, ping


@asynccontextmanager
async def connected(a: P2PHost, b: P2PHost) -> AsyncIterator[None]:
    """Both hosts running, the first connected to the second."""
    async with running(a, b):
        a.add_peer(b.listen_addrs()[0])
        await wait_until(lambda: b.node_id in a.connected_peers())
        yield


async def bench_streams(seed: int, rounds: int, frames: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    a, b, ping = echo_pair(seed, "")
    received = [0]

    async def sink(peer: str, frame: bytes) -> None:
        received[0] += 1

    async def answer(peer: str, frame: bytes) -> bytes:
        return frame

    b.handle("/bench/sink/1", sink)
    b.handle_request("/bench/req/1", answer)
    async with connected(a, b):
        payload = bytes(100)
        rtts = []
        for _ in range(rounds):
            started = time.perf_counter()
            await ping(payload)
            rtts.append(time.perf_counter() - started)
        out["stream_rtt_ms"] = {"ours_send_and_handler": summary(rtts)}

        requests = []
        for _ in range(rounds):
            started = time.perf_counter()
            await a.request(b.node_id, "/bench/req/1", payload, 5)
            requests.append(time.perf_counter() - started)
        out["request_ms"] = summary(requests)

        for size, key in ((100, "frames_100B"), (64 * 1024, "frames_64KiB")):
            received[0] = 0
            count = frames if size == 100 else max(50, frames // 40)
            frame = bytes(size)
            started = time.perf_counter()
            sent = 0
            while sent < count:
                if a.send(b.node_id, "/bench/sink/1", frame):
                    sent += 1
                else:
                    await trio.sleep(0.001)  # queue full: let the writer drain
            await wait_until(lambda: received[0] == count, timeout=120)
            elapsed = time.perf_counter() - started
            out.setdefault("frames_per_s", {})[key] = round(count / elapsed)
            if size > 100:
                out["frames_per_s"]["MiB_per_s_64KiB"] = round(count * size / elapsed / 2**20, 1)

    # Baseline: a bare yamux stream with an echo handler, no framing, queues or wrapper.
    async def raw_echo(stream: Any) -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                return
            await stream.write(data)

    config = P2PConfig()
    server = build_swarm_and_host(identity("raw-server", seed), config)[1]
    client = build_swarm_and_host(identity("raw-client", seed), config)[1]
    server.set_stream_handler("/bench/raw-echo/1", raw_echo)
    async with bare_host(server), bare_host(client):
        info = info_from_p2p_addr(Multiaddr(f"{server.get_addrs()[0]}"))
        await client.connect(info)
        stream = await client.new_stream(info.peer_id, ["/bench/raw-echo/1"])
        raw = []
        for _ in range(rounds):
            started = time.perf_counter()
            await stream.write(bytes(100))
            got = b""
            while len(got) < 100:
                got += await stream.read(100 - len(got))
            raw.append(time.perf_counter() - started)
        await stream.close()
    out["stream_rtt_ms"]["baseline_bare_yamux_echo"] = summary(raw)
    return out


# -- a frame's CPU -------------------------------------------------------------------------


@contextmanager
def as_shipped() -> Any:
    """py-libp2p's own locks, reads and switches while open (no host may run across it)."""
    os.environ[SWITCH] = "0"
    unquicken()
    try:
        yield
    finally:
        del os.environ[SWITCH]
        quicken()


async def ping_pong_cpu_us(seed: int, rounds: int) -> float:
    """CPU microseconds per frame, both hosts in this process, after 200 rounds of warm-up."""
    a, b, ping = echo_pair(seed, "cpu-")
    async with connected(a, b):
        payload = bytes(300)
        for _ in range(200):
            await ping(payload)
        cpu = time.process_time()
        for _ in range(rounds):
            await ping(payload)
        return (time.process_time() - cpu) / (2 * rounds) * 1e6


async def bench_frame_cpu(seed: int, rounds: int) -> dict[str, Any]:
    shipped, ours = [], []
    for _ in range(2):
        with as_shipped():
            shipped.append(await ping_pong_cpu_us(seed, rounds))
        ours.append(await ping_pong_cpu_us(seed, rounds))
    return {"py_libp2p_as_shipped": round(min(shipped)), "ours": round(min(ours)),
            "ratio": round(min(ours) / min(shipped), 2), "rounds": rounds}


# -- gossip ----------------------------------------------------------------------------------


async def bench_gossip_mesh(seed: int, nodes: int, messages: int) -> dict[str, Any]:
    rng = random.Random(seed)
    topic = "bench/gossip/1"
    arrivals: dict[bytes, list[float]] = {}

    def recorder() -> Callable[[str, bytes], Awaitable[None]]:
        async def on_message(origin: str, data: bytes) -> None:
            arrivals.setdefault(data, []).append(time.perf_counter())

        return on_message

    hosts: list[P2PHost] = []
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        for i in range(nodes):
            earlier = [h.listen_addrs()[0] for h in hosts]
            boot = rng.sample(earlier, min(2, len(earlier)))
            host = p2p_host(f"g{i}", seed, bootstrap=boot)
            host.subscribe(topic, recorder())
            await nursery.start(host.run)
            hosts.append(host)
        await wait_until(lambda: all(h.metrics()["gossip_mesh"].get(topic) for h in hosts))
        await wait_until(lambda: all(h.metrics()["gossip_peers"].get(topic) for h in hosts))
        for k in range(messages):
            publisher = rng.choice(hosts)
            data = b"m%d" % k
            started = time.perf_counter()
            await publisher.publish(topic, data)
            await wait_until(lambda: len(arrivals.get(data, [])) == nodes - 1, timeout=30)
            latencies.append(max(arrivals[data]) - started)
        dropped = sum(sum(h.metrics()["gossip"]["dropped"].values()) for h in hosts)
        nursery.cancel_scope.cancel()
    return {"nodes": nodes, "all_reached_ms": summary(latencies), "dropped": dropped}


async def burst_delivery(seed: int, use_ours: bool, burst: int) -> float:
    """Share of a burst from n0 that reaches n2 through n1 (n0 - n1 - n2)."""
    topic = "bench/burst/1"
    got: list[bytes] = []
    if use_ours:
        hosts: list[P2PHost] = []
        async with trio.open_nursery() as nursery:
            for i in range(3):
                boot = [hosts[-1].listen_addrs()[0]] if hosts else []
                host = p2p_host(f"b{i}", seed, bootstrap=boot)

                async def on_message(origin: str, data: bytes, i: int = i) -> None:
                    if i == 2:
                        got.append(data)

                host.subscribe(topic, on_message)
                await nursery.start(host.run)
                hosts.append(host)
            await wait_until(lambda: all(h.metrics()["gossip_mesh"].get(topic) for h in hosts))
            for k in range(burst):
                await hosts[0].publish(topic, b"%d" % k)
            with trio.move_on_after(10):
                await wait_until(lambda: len(got) == burst)
            nursery.cancel_scope.cancel()
        return len(got) / burst

    # py-libp2p defaults: GossipSub with only the mesh degrees given, default Pubsub.
    config = P2PConfig()
    raw = [build_swarm_and_host(identity(f"d{i}", seed), config)[1] for i in range(3)]
    routers = [
        GossipSub(protocols=list(GOSSIP_PROTOCOLS), degree=6, degree_low=4, degree_high=12)
        for _ in raw
    ]
    pubsubs = [Pubsub(h, r) for h, r in zip(raw, routers)]
    async with bare_host(raw[0]), bare_host(raw[1]), bare_host(raw[2]):
        async with background_trio_service(pubsubs[0]), background_trio_service(pubsubs[1]):
            async with background_trio_service(pubsubs[2]):
                async with background_trio_service(routers[0]), background_trio_service(routers[1]):
                    async with background_trio_service(routers[2]):
                        subs = [await p.subscribe(topic) for p in pubsubs]
                        for left, right in ((raw[0], raw[1]), (raw[1], raw[2])):
                            addr = Multiaddr(f"{right.get_addrs()[0]}")
                            await left.connect(info_from_p2p_addr(addr))
                        await wait_until(lambda: all(r.mesh.get(topic) for r in routers))

                        async def drain() -> None:
                            async for msg in subs[2]:
                                got.append(msg.data)

                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(drain)
                            for k in range(burst):
                                await pubsubs[0].publish(topic, b"%d" % k)
                            with trio.move_on_after(10):
                                await wait_until(lambda: len(got) == burst)
                            nursery.cancel_scope.cancel()
    for pubsub in pubsubs:
        pubsub.seen_messages.stop()
    return len(got) / burst


# -- shutdown --------------------------------------------------------------------------------


async def bench_shutdown(seed: int, peers: int) -> dict[str, Any]:
    hub = p2p_host("hub", seed)
    others = [p2p_host(f"leaf{i}", seed) for i in range(peers)]
    async with running(*others):
        async with trio.open_nursery() as hub_nursery:
            await hub_nursery.start(hub.run)
            for other in others:
                hub.add_peer(other.listen_addrs()[0])
            await wait_until(lambda: len(hub.connected_peers()) == peers)
            started = time.perf_counter()
            hub_nursery.cancel_scope.cancel()
        ours = time.perf_counter() - started

        # Baseline: the same hub without our close, shut with Swarm.close (one by one).
        config = P2PConfig()
        swarm, host = build_swarm_and_host(identity("hub2", seed), config)
        async with host.run(listen_addrs=[LOOPBACK]):
            for other in others:
                await host.connect(info_from_p2p_addr(Multiaddr(other.listen_addrs()[0])))
            started = time.perf_counter()
            await host.close()
            baseline = time.perf_counter() - started
    return {
        "connections": peers,
        "ours": round(ours * 1000, 1),
        "baseline_swarm_close": round(baseline * 1000, 1),
    }


async def main(seed: int, quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"seed": seed, "python": sys.version.split()[0]}
    started = time.perf_counter()
    report["connect_ms"] = await bench_connect(seed, trials=5 if quick else 20)
    rounds, frames = (100, 2000) if quick else (500, 10000)
    report.update(await bench_streams(seed, rounds=rounds, frames=frames))
    report["frame_cpu_us"] = await bench_frame_cpu(seed, rounds=500 if quick else 3000)
    gossip = await bench_gossip_mesh(seed, nodes=10, messages=5 if quick else 30)
    burst = 50
    gossip["burst_of_50_reaching_2_hops"] = {
        "ours": await burst_delivery(seed, True, burst),
        "baseline_default_gossipsub": await burst_delivery(seed, False, burst),
    }
    report["gossip"] = gossip
    report["shutdown_ms"] = await bench_shutdown(seed, peers=5 if quick else 20)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    route_libp2p_logging("CRITICAL")
    print(json.dumps(trio.run(main, args.seed, args.quick)))
