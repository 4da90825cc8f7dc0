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

One process serves every namespace of a testnet: a socket belongs to the namespace it was
created in, and the thread enters each one only to create sockets.

Why a plain ``epoll`` loop and not trio. The relay stands for the wire, and on one machine
its CPU is taken from the daemons it carries: with a trio task per direction (a receive, a
memory channel, a ``sleep_until`` and a send per chunk, each a pass of trio's scheduler) it
spent about 0.3 CPU-seconds on each PBFT put of a 30-daemon ``planet`` testnet, a fifth of
the machine, so the testnet measured the relay as much as the daemons
(``scripts/bench_relay.py`` prints what a chunk costs it). Here a chunk is one ``recv``, a
heap entry and one ``send``; one heap of due times serves every connection, and the loop
sleeps in ``epoll`` until the next one is due.

    python -m testnet.wan.relay <testnet-dir>/wan.json     (the launcher starts and stops it;
                                                           SIGHUP: serve nodes added since)
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

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
IN, OUT = select.EPOLLIN, select.EPOLLOUT
ERR_HUP = select.EPOLLERR | select.EPOLLHUP
TRY_AGAIN = (BlockingIOError, InterruptedError)


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


def _abort(sock: socket.socket) -> None:
    """Close with a reset, as a refused or broken connection looks to its peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _no_delay(sock: socket.socket) -> None:
    """Write each chunk when it is due, not when the last one is acknowledged.

    The relay stands for the wire; the daemons' own sockets already turn Nagle's algorithm
    off (trio does), so a relay that left it on added a stall of its own: a small chunk
    written while an earlier one was unacknowledged waited for the far end's delayed ACK
    (40 ms or more on Linux), on every hop of every connection. PBFT's votes are exactly
    that traffic: a prepare, then a commit moments later, on the same connection."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Pipe:
    """One direction of one relayed connection: chunks read from ``src``, each written to
    ``dst`` when its ``DelayLine`` says it is due; ``b""`` queued marks the end of stream."""

    __slots__ = ("conn", "src", "dst", "line", "chunks", "sent", "reading", "blocked",
                 "ended", "shut")

    def __init__(self, conn: "Connection", src: socket.socket, dst: socket.socket,
                 line: DelayLine) -> None:
        self.conn, self.src, self.dst, self.line = conn, src, dst, line
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.sent = 0
        """Bytes of the first chunk already written (the socket took part of it)."""
        self.reading = False
        self.blocked = False
        """Waiting for ``dst`` to take more (its send buffer is full)."""
        self.ended = False
        """The end of stream has been read."""
        self.shut = False
        """The end of stream has been passed on (``dst`` shut for writing)."""


class Connection:
    """One dialler's connection, its dial to the original destination, and both directions."""

    __slots__ = ("client", "upstream", "dst", "up", "down", "dialled", "connected", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket, dst: tuple[str, int],
                 up: DelayLine, down: DelayLine) -> None:
        self.client, self.upstream, self.dst = client, upstream, dst
        self.up = Pipe(self, client, upstream, up)
        self.down = Pipe(self, upstream, client, down)
        self.dialled = False
        self.connected = False
        self.closed = False

    def pipes(self, sock: socket.socket) -> tuple[Pipe, Pipe]:
        """The pipe ``sock`` feeds (it reads from ``sock``) and the pipe it drains (it writes
        to ``sock``): what readable and writable on ``sock`` each move along."""
        return (self.up, self.down) if sock is self.client else (self.down, self.up)


class Relay:
    """Every namespace's listener and every connection, in one ``epoll`` loop."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.open = 0
        self.total = 0
        self.epoll = select.epoll()
        self.masks: dict[int, int] = {}
        """Each registered socket's events (a socket wanting none is unregistered, so a
        hung-up one it is not reading cannot wake the loop over and over)."""
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.timers: list[tuple[float, int, Pipe | Callable[[], None]]] = []
        """Due times: a pipe's next chunk (the hot path), or a connection's dial and give-up."""
        self._seq = 0
        self.served: set[int] = set()

    # -- the loop ------------------------------------------------------------------------

    def serve(self, config_file: Path | None = None) -> None:
        """Serve every node's namespace; on SIGHUP, read ``config_file`` again and serve the
        nodes added since (``testnet add``). ``relay.ready`` beside it says how many are served.
        Runs until the process is stopped (the launcher's SIGTERM)."""
        hups: list[int] = []
        if config_file is not None:
            # A signal wakes ``epoll`` through this pair; the handler only notes it.
            wake_r, wake_w = socket.socketpair()
            for s in (wake_r, wake_w):
                s.setblocking(False)
            signal.set_wakeup_fd(wake_w.fileno())
            signal.signal(signal.SIGHUP, lambda signum, _frame: hups.append(signum))
            self._want(wake_r, IN, lambda _events: _drain(wake_r))
        self._listen()
        if config_file is not None:
            (config_file.parent / READY_FILE).write_text(f"{len(self.served)}\n")
        while True:
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else -1.0
            for fd, events in self.epoll.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(events)
            self._run_timers(time.monotonic())
            if hups and config_file is not None:
                hups.clear()
                self.config = RelayConfig.from_json(json.loads(config_file.read_text())["relay"])
                self._listen()
                (config_file.parent / READY_FILE).write_text(f"{len(self.served)}\n")

    def _want(self, sock: socket.socket, mask: int, handler: Callable[[int], None]) -> None:
        """Wait for ``mask`` on ``sock`` (none: stop waiting); ``handler`` gets the events."""
        fd = sock.fileno()
        old = self.masks.get(fd, 0)
        if mask == old:
            return
        if not mask:
            self.epoll.unregister(fd)
            del self.masks[fd]
        elif old:
            self.epoll.modify(fd, mask)
            self.masks[fd] = mask
        else:
            self.epoll.register(fd, mask)
            self.masks[fd] = mask
        self.handlers[fd] = handler

    def _forget(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self.masks.pop(fd, 0):
            self.epoll.unregister(fd)
        self.handlers.pop(fd, None)

    def _at(self, when: float, what: Pipe | Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (when, self._seq, what))

    def _run_timers(self, now: float) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, what = heapq.heappop(timers)
            if isinstance(what, Pipe):
                if not what.conn.closed:
                    self._flush(what, now)
            else:
                what()

    # -- listeners -----------------------------------------------------------------------

    def _listen(self) -> None:
        """A listener in each node's namespace not yet served."""
        for node in self.config.plan.nodes:
            if node.index in self.served:
                continue
            with enter(node.ns):
                s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", RELAY_PORT))
            s.listen(512)
            s.setblocking(False)
            self.served.add(node.index)
            self._want(s, IN, partial(self._accept, node, s))

    def _accept(self, node: NodeNet, listener: socket.socket, _events: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except TRY_AGAIN:
                return
            except OSError as err:
                if err.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # the dialler gave up while queued
                print(f"relay: cannot accept on {node.ns}: {err.strerror}", file=sys.stderr)
                return
            if self.open >= MAX_CONNECTIONS:
                _abort(client)
                continue
            try:
                self._connection(node, client)
            except OSError:
                _abort(client)

    def _connection(self, src: NodeNet, client: socket.socket) -> None:
        client.setblocking(False)
        dst = original_destination(client)
        _no_delay(client)
        p = self.config.profile
        conn_rng = random.Random(self.rng.getrandbits(64))
        one_way = self.config.one_way_ms(src, dst[0])
        up = DelayLine(one_way, p.jitter_ms, p.loss, conn_rng)
        down = DelayLine(one_way, p.jitter_ms, p.loss, conn_rng)
        now = time.monotonic()
        syn = up.syn_delay()
        up.hold_until(handshake_done(now, up.one_way, syn))
        with enter(src.ns):
            raw = socket.socket()
        try:
            raw.setsockopt(socket.SOL_SOCKET, SO_MARK, RELAY_MARK)
            _no_delay(raw)
            raw.setblocking(False)
        except OSError:
            raw.close()
            raise
        conn = Connection(client, raw, dst, up, down)
        self.open += 1
        self.total += 1
        # Read the dialler's first bytes at once (they are held until due).
        self._read_on(conn.up)
        self._at(now + syn, partial(self._dial, conn))
        self._at(now + syn + CONNECT_TIMEOUT, partial(self._give_up, conn))

    def _dial(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.dialled = True
        if conn.upstream.connect_ex(conn.dst) not in (0, errno.EINPROGRESS):
            self._close(conn, clean=False)
            return
        self._update(conn.upstream, conn)  # writable once connected

    def _give_up(self, conn: Connection) -> None:
        if not conn.connected:
            self._close(conn, clean=False)

    # -- connections ---------------------------------------------------------------------

    def _update(self, sock: socket.socket, conn: Connection) -> None:
        """Wait for what ``sock`` needs: reading for the pipe it feeds, room for the pipe it
        drains (or the dial's completion)."""
        if conn.closed:
            return
        feeds, drains = conn.pipes(sock)
        mask = IN if feeds.reading else 0
        if drains.blocked or (sock is conn.upstream and conn.dialled and not conn.connected):
            mask |= OUT
        self._want(sock, mask, partial(self._ready, conn, sock))

    def _ready(self, conn: Connection, sock: socket.socket, events: int) -> None:
        if conn.closed:
            return
        if sock is conn.upstream and not conn.connected:
            if not conn.dialled:
                return
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close(conn, clean=False)  # refused or unreachable: reset the dialler
            elif events & OUT:
                self._on_connected(conn)
            return
        feeds, drains = conn.pipes(sock)
        now = time.monotonic()
        if drains.blocked and events & (OUT | ERR_HUP):
            drains.blocked = False
            self._flush(drains, now)
            if not drains.blocked:
                self._update(sock, conn)  # room no longer wanted: a writable socket stays so
        if feeds.reading and events & (IN | ERR_HUP) and not conn.closed:
            self._read(feeds, now)

    def _on_connected(self, conn: Connection) -> None:
        conn.connected = True
        now = time.monotonic()
        conn.down.line.hold_until(now)
        conn.down.reading = True
        self._update(conn.upstream, conn)
        self._flush(conn.up, now)

    def _read_on(self, pipe: Pipe) -> None:
        if not pipe.reading and not pipe.ended and len(pipe.chunks) < QUEUE:
            pipe.reading = True
            self._update(pipe.src, pipe.conn)

    def _read(self, pipe: Pipe, now: float) -> None:
        """One read from ``pipe.src``: stamp the chunk with when it is due and queue it."""
        try:
            data = pipe.src.recv(CHUNK)
        except TRY_AGAIN:
            return
        except OSError:  # a reset ends the whole connection
            self._close(pipe.conn, clean=False)
            return
        due = pipe.line.schedule(now, len(data))
        pipe.chunks.append((due, data))
        self._at(due, pipe)
        if not data:
            pipe.ended = True
        if pipe.ended or len(pipe.chunks) >= QUEUE:
            pipe.reading = False
            self._update(pipe.src, pipe.conn)

    def _flush(self, pipe: Pipe, now: float) -> None:
        """Write every chunk that is due, as far as ``dst`` takes them."""
        conn = pipe.conn
        if pipe.blocked or not conn.connected:
            return  # room on the socket, or the dial's completion, calls again
        chunks = pipe.chunks
        while chunks and chunks[0][0] <= now:
            data = chunks[0][1]
            if not data:
                chunks.popleft()
                try:
                    pipe.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                pipe.shut = True
                if conn.up.shut and conn.down.shut:
                    self._close(conn, clean=True)
                return
            try:
                sent = pipe.dst.send(memoryview(data)[pipe.sent:])
            except TRY_AGAIN:
                sent = 0
            except OSError:
                self._close(conn, clean=False)
                return
            if pipe.sent + sent < len(data):
                pipe.sent += sent
                pipe.blocked = True
                self._update(pipe.dst, conn)
                return
            chunks.popleft()
            pipe.sent = 0
        self._read_on(pipe)

    def _close(self, conn: Connection, clean: bool) -> None:
        """Both ways ended with a FIN: close quietly; anything else: reset both ends."""
        if conn.closed:
            return
        conn.closed = True
        self.open -= 1
        for sock in (conn.client, conn.upstream):
            self._forget(sock)
            sock.close() if clean else _abort(sock)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except TRY_AGAIN:
        pass


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


def _room_for_connections() -> None:
    """Two sockets a relayed connection, up to ``MAX_CONNECTIONS``: more than the common
    default of 1,024 open files allows, so take what the hard limit gives."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m testnet.wan.relay <testnet-dir>/wan.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    config = RelayConfig.from_json(json.loads(path.read_text())["relay"])
    _run_ahead_of_the_nodes()
    _room_for_connections()
    Relay(config).serve(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
