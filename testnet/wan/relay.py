"""The delay relay: adds a profile's delay, jitter and loss to every TCP connection.

The kernel here has no ``netem``. So each node's namespace redirects its outgoing TCP
connections to the testnet's addresses (``nat.node_rules``) to 127.0.0.1:7999 in that same
namespace, where this process listens. For each connection it learns the original
destination (``SO_ORIGINAL_DST``), dials it from inside the node's namespace (with a firewall
mark so that dial is not redirected again; the far end sees the node's real address, or its
NAT router's), and copies bytes both ways through a ``DelayLine`` per direction: each chunk
is written when it is due (one-way delay of the pair, jitter, a retransmission timeout for
lost segments). A new connection's first bytes wait for the handshake a real link would need.
Bandwidth is the kernel's (tbf on the veths), which also pushes back through the bounded
queues here.

One trio process serves every namespace of a testnet: a socket belongs to the namespace it
was created in, and the thread enters each one only to create sockets.

    python -m testnet.wan.relay <testnet-dir>/wan.json     (the launcher starts and stops it;
                                                           SIGHUP: serve nodes added since)
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import trio

from testnet.wan.namespaces import enter
from testnet.wan.plan import RELAY_MARK, RELAY_PORT, NodeNet, Plan
from testnet.wan.profiles import DelayLine, Profile, get, handshake_done, pair_one_way_ms

SO_ORIGINAL_DST = 80
SO_MARK = 36
CHUNK = 64 * 1024
QUEUE = 64
"""Chunks in flight per direction (at most 4 MiB): a full queue stops reading (back-pressure)."""
MAX_CONNECTIONS = 8192
CONNECT_TIMEOUT = 30.0
READY_FILE = "relay.ready"


@dataclass(frozen=True)
class RelayConfig:
    plan: Plan
    profile: Profile
    access_ms: tuple[float, ...]
    seed: int

    def to_json(self) -> dict[str, object]:
        return {"plan": self.plan.to_json(), "profile": self.profile.name,
                "access_ms": list(self.access_ms), "seed": self.seed}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> "RelayConfig":
        access = doc["access_ms"]
        assert isinstance(access, list)
        return cls(Plan.from_json(doc["plan"]), get(str(doc["profile"])),  # type: ignore[arg-type]
                   tuple(float(a) for a in access), int(doc["seed"]))  # type: ignore[call-overload]

    def one_way_ms(self, src: NodeNet, dst_ip: str) -> float:
        """One-way delay from ``src`` to whoever holds ``dst_ip`` (a node or its NAT router;
        an address of nobody's costs the source's access link only)."""
        dst = self.plan.by_public_ip().get(dst_ip)
        if dst is None:
            return self.access_ms[src.index]
        return pair_one_way_ms(self.access_ms[src.index], self.access_ms[dst.index])


def original_destination(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, addr = struct.unpack("!2xH4s8x", raw)
    return socket.inet_ntoa(addr), port


def _abort(sock: trio.socket.SocketType) -> None:
    """Close with a reset, as a refused or broken connection looks to its peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.open = 0
        self.total = 0

    def listeners(self, served: set[int]) -> list[tuple[NodeNet, socket.socket]]:
        """A listener in each node's namespace not yet ``served``."""
        out = []
        for node in self.config.plan.nodes:
            if node.index in served:
                continue
            with enter(node.ns):
                s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", RELAY_PORT))
            s.listen(512)
            out.append((node, s))
        return out

    async def serve(self, config_file: Path | None = None) -> None:
        """Serve every node's namespace; on SIGHUP, read ``config_file`` again and serve the
        nodes added since (``testnet add``). ``relay.ready`` beside it says how many are served."""
        served: set[int] = set()
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGHUP) as hups:
                while True:
                    for node, s in self.listeners(served):
                        served.add(node.index)
                        nursery.start_soon(self._accept_loop, node,
                                           trio.socket.from_stdlib_socket(s))
                    if config_file is None:
                        break
                    (config_file.parent / READY_FILE).write_text(f"{len(served)}\n")
                    async for _ in hups:
                        self.config = RelayConfig.from_json(
                            json.loads(config_file.read_text())["relay"])
                        break

    async def _accept_loop(self, node: NodeNet, listener: trio.socket.SocketType) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                client, _ = await listener.accept()
                if self.open >= MAX_CONNECTIONS:
                    _abort(client)
                    continue
                nursery.start_soon(self._connection, node, client)

    async def _connection(self, src: NodeNet, client: trio.socket.SocketType) -> None:
        self.open += 1
        self.total += 1
        upstream: trio.socket.SocketType | None = None
        clean = False
        try:
            dst_ip, dst_port = original_destination(client)  # type: ignore[arg-type]
            _no_delay(client)
            one_way = self.config.one_way_ms(src, dst_ip)
            p = self.config.profile
            conn_rng = random.Random(self.rng.getrandbits(64))
            up = DelayLine(one_way, p.jitter_ms, p.loss, conn_rng)
            down = DelayLine(one_way, p.jitter_ms, p.loss, conn_rng)
            accepted = trio.current_time()
            syn = up.syn_delay()
            up.hold_until(handshake_done(accepted, up.one_way, syn))
            with enter(src.ns):
                raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, SO_MARK, RELAY_MARK)
            _no_delay(raw)
            upstream = trio.socket.from_stdlib_socket(raw)
            up_send, up_recv = trio.open_memory_channel[tuple[float, bytes]](QUEUE)
            down_send, down_recv = trio.open_memory_channel[tuple[float, bytes]](QUEUE)
            async with trio.open_nursery() as nursery:
                # Read the dialler's first bytes at once (they are held until due).
                nursery.start_soon(_read, client, up, up_send)
                await trio.sleep(syn)
                with trio.move_on_after(CONNECT_TIMEOUT) as timeout:
                    try:
                        await upstream.connect((dst_ip, dst_port))
                    except OSError:
                        timeout.cancel()
                if timeout.cancelled_caught or not _connected(upstream):
                    _abort(client)
                    nursery.cancel_scope.cancel()
                    return
                down.hold_until(trio.current_time())
                nursery.start_soon(_write, up_recv, upstream)
                nursery.start_soon(_read, upstream, down, down_send)
                nursery.start_soon(_write, down_recv, client)
            clean = True
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # one side reset or failed: reset the other
        except BaseExceptionGroup as group:
            if group.split(_CONNECTION_ERRORS)[1] is not None:
                raise  # anything but a broken connection is our bug
        finally:
            self.open -= 1
            # Both ways ended with a FIN: close quietly; anything else: reset both ends.
            for sock in (client, upstream):
                if sock is not None:
                    sock.close() if clean else _abort(sock)


_CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def _no_delay(sock: socket.socket | trio.socket.SocketType) -> None:
    """Write each chunk when it is due, not when the last one is acknowledged.

    The relay stands for the wire; the daemons' own sockets already turn Nagle's algorithm
    off (trio does), so a relay that left it on added a stall of its own: a small chunk
    written while an earlier one was unacknowledged waited for the far end's delayed ACK
    (40 ms or more on Linux), on every hop of every connection. PBFT's votes are exactly
    that traffic: a prepare, then a commit moments later, on the same connection."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connected(sock: trio.socket.SocketType) -> bool:
    try:
        sock.getpeername()
        return True
    except OSError:
        return False


async def _read(sock: trio.socket.SocketType, line: DelayLine,
                out: trio.MemorySendChannel[tuple[float, bytes]]) -> None:
    """Read chunks, stamp each with when it is due, and queue them; b"" marks end of stream.
    A reset (or any error) ends the whole connection."""
    async with out:
        while True:
            data = await sock.recv(CHUNK)
            await out.send((line.schedule(trio.current_time(), len(data)), data))
            if not data:
                return


async def _write(chunks: trio.MemoryReceiveChannel[tuple[float, bytes]],
                 sock: trio.socket.SocketType) -> None:
    async with chunks:
        async for due, data in chunks:
            await trio.sleep_until(due)
            if not data:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            view = memoryview(data)
            while view:
                sent = await sock.send(view)
                view = view[sent:]


RELAY_PRIORITY = -10
"""The relay's nice value. It stands for the network itself, which on real machines does not
queue behind their programs: one relay process carries every link of the testnet, and at
even share with 30 busy daemons (CPU load ~25 on 2 cores) it fell so far behind that
connections sat unaccepted until their dials timed out, and most nodes never got past
their seed."""

AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_PRIORITY = -20
"""The nice value of the relay's scheduling group. With autogroup scheduling (Linux's
default on desktops and in many containers) the CPU is shared between sessions first, and
a process's own nice counts only inside its session. Every daemon runs in a session of its
own and the relay in another, so its nice -10 bought nothing: at 20 nodes it waited 4.5 s
of every 5 s to run, and the accept queues of its listeners filled with connections whose
dialers had given up. A session's group has a nice of its own; the relay sets it. It only
uses what it needs (one thread), which is a fraction of one core."""


def _run_ahead_of_the_nodes() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, RELAY_PRIORITY)
        if AUTOGROUP.exists():
            AUTOGROUP.write_text(f"{AUTOGROUP_PRIORITY}\n")
    except OSError as err:  # not root: the testnet needs root anyway; run as we are
        print(f"relay: cannot raise its priority ({err.strerror}); links may lag under load",
              file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m testnet.wan.relay <testnet-dir>/wan.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    config = RelayConfig.from_json(json.loads(path.read_text())["relay"])
    _run_ahead_of_the_nodes()
    trio.run(Relay(config).serve, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
