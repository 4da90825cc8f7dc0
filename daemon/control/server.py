"""The local control server: JSON-RPC 2.0 over a Unix socket (mode 0600) in the data directory.

Only the user who runs the daemon can connect (the socket's mode, and the data directory's
0700). Each connection may send many requests, one per line; each gets one response line.
A line over ``MAX_LINE`` bytes closes the connection (after an error response).

Start-up handles the leftovers of a crash: if the socket file exists but nobody answers, it is
stale and is replaced; if a daemon answers, we refuse to start a second one on the same data
directory.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as stdsocket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from daemon.control.jsonrpc import (
    INTERNAL_ERROR,
    MAX_LINE,
    METHOD_NOT_FOUND,
    RpcError,
    error_line,
    parse_request,
    result_line,
)
from daemon.errors import DaemonError

log = logging.getLogger("novacron.control")

Method = Callable[[dict[str, Any]], Awaitable[Any]]


class SocketInUse(DaemonError):
    """Another daemon is serving on this socket."""


def _probe(path: Path) -> bool:
    """True if something accepts connections on the Unix socket at ``path``."""
    s = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def bind_control_socket(path: Path) -> stdsocket.socket:
    """Bind (0600) and listen; replace a stale socket file, refuse a live one."""
    if path.exists() or path.is_symlink():
        if _probe(path):
            raise SocketInUse(f"a daemon is already running on {path}")
        path.unlink()
    if len(str(path).encode()) > 100:
        raise OSError(errno.ENAMETOOLONG, f"socket path too long for AF_UNIX: {path}")
    sock = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old = os.umask(0o177)  # the file is created 0600: never a window where others can connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


class ControlServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: stdsocket.socket | None = None
        self.methods: dict[str, Method] = {}
        self.requests = 0
        self.errors = 0

    def register(self, name: str, fn: Method) -> None:
        if name in self.methods:
            raise ValueError(f"method {name} registered twice")
        self.methods[name] = fn

    def bind(self) -> None:
        """Bind now (before the event loop) so a second daemon fails fast with a clear error."""
        if self._sock is None:
            self._sock = bind_control_socket(self.path)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.bind()
        raw, self._sock = self._sock, None
        assert raw is not None
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw))
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._serve, stream)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    async def _serve(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        try:
            async with stream:
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        if len(buf) > MAX_LINE:
                            await stream.send_all(error_line(None, RpcError(
                                -32600, f"request line over {MAX_LINE} bytes")))
                            return
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        buf += data
                        continue
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    if line.strip():
                        response = await self.handle_line(line)
                        if response:
                            await stream.send_all(response)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def handle_line(self, line: bytes) -> bytes | None:
        self.requests += 1
        rid = None
        try:
            req = parse_request(line)
            rid = req.id
            fn = self.methods.get(req.method)
            if fn is None:
                raise RpcError(METHOD_NOT_FOUND, f"unknown method {req.method[:64]!r}; "
                               f"see docs/control-socket.md")
            result = await fn(req.params)
            return None if req.is_notification else result_line(rid, result)
        except RpcError as err:
            self.errors += 1
            if rid is None and isinstance(err.data, dict):
                rid = err.data.get("id")
            return error_line(rid, err)
        except Exception as err:  # noqa: BLE001 - the boundary of one request
            self.errors += 1
            log.exception("control method failed")
            return error_line(rid, RpcError(INTERNAL_ERROR, f"internal error: {type(err).__name__}: {err}"))
