"""py-libp2p 0.8.1's per-frame costs that are bookkeeping, not work, and how we remove them.

A committee of 19 members makes ~700 frames for one ``kv put`` (prepare and commit all to all),
and on the 30-daemon testnets the machine's two cores are saturated by them: the commit's time
above the network's floor is CPU. Profiled on two hosts in one process exchanging 300-byte
frames, py-libp2p spent more of a frame's CPU in trio's scheduler than in Noise, yamux and the
socket together. Four causes, four changes (``quicken``; ``scripts/bench_p2p.py``'s
``frame_cpu_us`` measures a frame's CPU with and without them, in the same run):

- **Locks that yield when free.** Each frame sent and received took ~24 ``trio.Lock``
  acquisitions (yamux's per-stream window, close and read-write locks, its session's write and
  stream-table locks, the TCP stream's read and write locks, the net stream's state lock), and
  trio makes every acquisition a full checkpoint: the task yields to the scheduler even when
  the lock is free, so one frame meant ~15 passes of the run loop and ~20 task wake-ups.
  ``QuickLock`` keeps what those locks are for (one holder at a time, waiters served first
  come, first served, a waiter that is cancelled leaves the queue) and drops the yield when the
  lock is free. The yamux and TCP paths that take these locks go on to a socket operation,
  a checkpoint of its own, and no loop in 0.8.1 waits on one of them alone (each also awaits
  an event, a sleep or the socket), so no task runs long without yielding and cancellation
  is still seen at the next socket operation. A lock with waiters passes to the first of them on
  release, as ``trio.Lock`` does. Unlike ``trio.Lock`` it has no owner: the read-write lock's
  writer half (a ``trio.Semaphore(1)`` in 0.8.1) is released by whichever reader leaves last.
  The constructors of the four classes are wrapped; every other lock is untouched.
- **Two receives per frame.** Noise reads a frame's 2-byte length and then its body, each a
  ``recv`` of exactly that size (and a checkpoint), and the next length read finds the socket
  empty: three system calls for one frame. ``TrioTCPStream.read`` now receives up to 64 KiB and
  serves later reads from what it holds, in order, so a burst of frames costs one ``recv``.
- **Five steps to write one frame.** ``YamuxStream.write`` takes the stream's read-write lock
  (an async context manager built per call) and its window lock, packs the header, and hands
  the frame to ``Yamux._write_frame``, which unpacks that header again and formats a debug
  line from it (an f-string built whether or not debug logging is on) before taking the
  session's write lock. For what a stream sends in one frame within its window (every PBFT
  vote) ``_lean_write`` packs the header and takes only the session's write lock, which keeps
  frames whole on the connection; a write to a stream whose writer lock is held (another
  write on it, in pieces), one over the window or a frame's size, or on a closed stream goes
  the shipped way. The window is checked and taken with no await between (trio switches
  tasks only at one), so it needs no lock.
- **The environment read per frame.** yamux looks up ``PY_YAMUX_*`` variables in
  ``os.environ`` on every data frame and window credit (its debug and tuning switches). They
  are read once, at ``quicken``, as a process's environment does not change under it.

``NOVACRON_QUICK_IO=0`` in a daemon's environment leaves py-libp2p as it ships: the baseline of
``scripts/bench_wan.py`` run on whole testnets, and a way out should a volunteer's machine
ever behave differently with these changes.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable
from typing import Any

import trio

from daemon.p2p import libp2p_fixes  # noqa: F401  (first: it refuses any libp2p but 0.8.1)
from libp2p.io.trio import TrioTCPStream
from libp2p.network.stream.net_stream import NetStream
from libp2p.stream_muxer.yamux import yamux as yamux_module
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

# The attributes holding each class's hot locks ("a.b": the lock ``b`` of attribute ``a``).
QUICK_LOCKS: dict[type, tuple[str, ...]] = {
    YamuxStream: ("window_lock", "close_lock", "rw_lock._readers_lock", "rw_lock._writer_lock"),
    Yamux: ("streams_lock", "_write_lock"),
    TrioTCPStream: ("read_lock", "write_lock"),
    NetStream: ("_state_lock",),
}
# yamux's switches read from the environment on each call (module docstring).
YAMUX_SWITCHES = (
    "_perf_yamux_debug_enabled", "_yamux_disable_hysteresis", "_yamux_release_on_read",
    "_yamux_batch_threshold_divisor", "_yamux_data_read_timeout",
)
SWITCH = "NOVACRON_QUICK_IO"
READ_AHEAD = 64 * 1024  # trio's own default receive size
_MARK = "_novacron_quick"
_ORIGINALS: dict[tuple[Any, str], Any] = {}


class QuickLock:
    """A mutual-exclusion lock for trio that does not yield when it is free (module docstring).

    Waiters queue first come, first served and the lock passes straight to the first on
    release; a waiter cancelled while it waits leaves the queue without taking the lock."""

    __slots__ = ("_held", "_waiting")

    def __init__(self) -> None:
        self._held = False
        self._waiting = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        return self._held

    async def acquire(self) -> None:
        if not self._held:
            self._held = True
            return
        await self._waiting.park()  # woken by ``release``, holding the lock

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("QuickLock released while not held")
        if self._waiting:
            self._waiting.unpark(count=1)  # handed over: it stays held
        else:
            self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def _built_quick(cls: type, names: tuple[str, ...]) -> Callable[..., None]:
    built = cls.__init__

    @functools.wraps(built)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        for name in names:
            owner = self
            *path, attribute = name.split(".")
            for step in path:
                owner = getattr(owner, step)
            setattr(owner, attribute, QuickLock())

    return init


def _take_ahead(self: Any, n: int | None) -> bytes:
    held, at = self._novacron_ahead, self._novacron_at
    end = len(held) if n is None or n < 0 else min(len(held), at + n)
    if end == len(held):
        self._novacron_ahead, self._novacron_at = b"", 0
    else:
        self._novacron_at = end
    return held[at:end]  # type: ignore[no-any-return]


def _read_ahead(receive: Callable[..., Any]) -> Callable[..., Any]:
    """``TrioTCPStream.read`` receiving up to ``READ_AHEAD`` and serving later reads from it.

    What a stream holds (``_novacron_ahead``, received and not yet read, from ``_novacron_at``)
    is set here alone, at its first receive: until then the stream has neither attribute and
    holds nothing, however and whenever it was built."""

    @functools.wraps(receive)
    async def read(self: Any, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        if getattr(self, "_novacron_ahead", b""):  # (before its first receive: none)
            return _take_ahead(self, n)
        data: bytes = await receive(self, max(n or 0, READ_AHEAD))
        if getattr(self, "_novacron_ahead", b""):  # another reader's leftover first: in order
            data = self._novacron_ahead[self._novacron_at:] + data
        self._novacron_ahead, self._novacron_at = data, 0
        return _take_ahead(self, n)

    return read


def _lean_write(shipped: Callable[..., Any]) -> Callable[..., Any]:
    """``YamuxStream.write`` for the common case, one DATA frame within the send window: the
    header packed and the frame handed to the session's writer, without the stream's
    read-write and window locks or ``_write_frame``'s decoding of the header it was just given
    for a debug line (module docstring). Anything else, and any write while another write on
    the stream holds its writer lock, goes the shipped way."""
    header = struct.Struct(yamux_module.YAMUX_HEADER_FORMAT).pack
    most = yamux_module.MAX_MESSAGE_SIZE - yamux_module.HEADER_SIZE
    data_type = yamux_module.TYPE_DATA

    @functools.wraps(shipped)
    async def write(self: Any, data: bytes) -> None:
        n = len(data)
        if not 0 < n <= min(self.send_window, most) or self.send_closed or self.closed \
                or getattr(self.rw_lock._writer_lock, "_held", True):  # (built before quicken)
            await shipped(self, data)
            return
        self.send_window -= n  # no await since the check: no other writer took the window
        conn = self.conn
        async with conn._write_lock:
            await conn.secured_conn.write(header(0, data_type, 0, self.stream_id, n) + data)

    return write


def _swap(owner: Any, name: str, value: Any) -> None:
    _ORIGINALS.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, value)


def quicken() -> None:
    """Quick locks, read-ahead and yamux's switches read once, for every yamux, TCP and net
    stream built from now on in this process (module docstring). Idempotent; nothing when
    ``NOVACRON_QUICK_IO=0`` is set."""
    if getattr(TrioTCPStream.__init__, _MARK, False) or os.environ.get(SWITCH) == "0":
        return
    for cls, names in QUICK_LOCKS.items():
        init = _built_quick(cls, names)
        setattr(init, _MARK, True)
        _swap(cls, "__init__", init)
    _swap(TrioTCPStream, "read", _read_ahead(TrioTCPStream.read))
    _swap(YamuxStream, "write", _lean_write(YamuxStream.write))
    for name in YAMUX_SWITCHES:
        value = getattr(yamux_module, name)()
        _swap(yamux_module, name, lambda value=value: value)


def unquicken() -> None:
    """Undo ``quicken``, for the benchmark's baseline in the same process: only while no host
    runs (a TCP stream's read-ahead would be left unread)."""
    for (owner, name), original in _ORIGINALS.items():
        setattr(owner, name, original)
    _ORIGINALS.clear()
