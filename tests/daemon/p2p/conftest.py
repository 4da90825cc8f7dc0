"""Helpers for the p2p tests: seeded identities, hosts running in a nursery, bounded waits.

Real sockets on 127.0.0.1 need real time, so waits are bounded with ``trio.fail_after`` and wake
on events where there is one; ``wait_until`` polls a condition every few milliseconds for the
few things (metrics, peer sets) that have no event.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
from multiaddr import Multiaddr

from daemon.p2p import P2PConfig, P2PHost
from protocol.identity import NodeIdentity
from testnet.local.processes import free_ports

LOOPBACK = ("/ip4/127.0.0.1/tcp/0",)


def port_of(addr: str) -> int:
    """The TCP port of a listen address (a host restarted on it keeps its address)."""
    return int(Multiaddr(addr).value_for_protocol("tcp"))


def restartable_listen() -> list[str]:
    """A listen address a host can be restarted on: its port is outside the kernel's ephemeral
    range, so no outgoing connection takes it while the host is down (one did, under load)."""
    return [f"/ip4/127.0.0.1/tcp/{free_ports(1)[0]}"]


def identity(name: str) -> NodeIdentity:
    return NodeIdentity(hashlib.sha256(b"novacron-p2p-test:" + name.encode()).digest())


def config(**overrides: object) -> P2PConfig:
    settings: dict[str, object] = {
        "listen": LOOPBACK,
        "reconnect_min": 0.05,
        "reconnect_max": 0.4,
        "dial_timeout": 3.0,
    }
    settings.update(overrides)
    return P2PConfig(**settings)  # type: ignore[arg-type]


def make_host(name: str, seed: int = 0, **overrides: object) -> P2PHost:
    return P2PHost(identity(name), config(**overrides), random.Random(f"{name}:{seed}"))


class Stoppable:
    """A host running under a scope of its own (``start_stoppable``)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def stop(self) -> None:
        """Take the host away, as a volunteer's machine going down, and wait until it has
        closed everything: a machine restarting starts again only once the old process is gone
        (a peer seeing the connection drop is not that: the host may still be closing)."""
        self.scope.cancel()
        with trio.fail_after(10):
            await self.stopped.wait()


async def start_stoppable(nursery: trio.Nursery, host: P2PHost) -> Stoppable:
    """Run ``host`` in ``nursery`` until ``stop`` (its peers see the connection go)."""
    handle = Stoppable()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with handle.scope:
                await host.run(task_status=task_status)
        finally:
            handle.stopped.set()

    await nursery.start(run)
    return handle


@asynccontextmanager
async def running(*hosts: P2PHost) -> AsyncIterator[trio.Nursery]:
    """Run hosts until the block ends, then cancel them (and wait for their clean exit)."""
    async with trio.open_nursery() as nursery:
        for host in hosts:
            await nursery.start(host.run)
        yield nursery
        nursery.cancel_scope.cancel()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.005)


class Inbox:
    """A frame/gossip handler that records what arrives and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._changed = trio.Event()

    async def __call__(self, peer: str, data: bytes) -> None:
        self.items.append((peer, data))
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            while len(self.items) < count:
                await self._changed.wait()


@asynccontextmanager
async def raw_libp2p_host(name: str) -> AsyncIterator[object]:
    """A bare py-libp2p host built like ours (Noise, yamux) but without our wrapper: a peer that
    can write anything on any stream. Closed explicitly at the end."""
    from daemon.p2p.factory import build_swarm_and_host

    swarm, host = build_swarm_and_host(identity(name), config())
    async with host.run(listen_addrs=list(config().listen_multiaddrs)):
        try:
            yield host
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await host.close()


async def dial(raw_host: object, target: P2PHost) -> object:
    """Connect a raw host to ``target``; returns target's libp2p peer ID."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    info = info_from_p2p_addr(Multiaddr(target.listen_addrs()[0]))
    with trio.fail_after(5):
        await raw_host.connect(info)  # type: ignore[attr-defined]
    return info.peer_id
