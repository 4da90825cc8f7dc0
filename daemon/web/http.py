"""A small HTTP/1.1 server on trio for the daemon's local pages: 127.0.0.1 only, bounded.

Why not a framework: two local endpoints (the owner's web page, the Prometheus scrape) need a
request line, a few headers and small bodies. h11 (the sans-I/O HTTP parser STYLE.md holds up)
does the protocol; this module only carries bytes. Every size is bounded before it is read:
headers ``MAX_HEADERS``, bodies ``MAX_BODY``; a slow client gets ``READ_TIMEOUT_S`` per
request. One request per connection (``Connection: close``) keeps it simple; browsers and
Prometheus cope.

Binding: always the loopback address ``127.0.0.1``; ``bind`` refuses anything else, so no
setting can expose the owner's page to the network.
"""

from __future__ import annotations

import errno
import logging
import socket as stdsocket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from daemon.errors import DaemonError

log = logging.getLogger("novacron.web")

LOOPBACK = "127.0.0.1"
MAX_HEADERS = 16 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 10.0


class PortTaken(DaemonError):
    """The port is in use; the message names it and the setting to change."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "frame-ancestors 'none'; form-action 'self'"),
]


def bind(port: int, setting: str) -> stdsocket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port)."""
    sock = stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortTaken(f"port {port} on {LOOPBACK} is taken; choose another with "
                            f"{setting} in the config") from None
        raise
    sock.listen(32)
    return sock


async def serve(sock: stdsocket.socket, handler: Handler, *,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(_connection, stream, handler)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()


async def _connection(stream: trio.SocketStream, handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
    try:
        async with stream:
            try:
                with trio.fail_after(READ_TIMEOUT_S):
                    request = await _read_request(conn, stream)
            except (h11.RemoteProtocolError, ValueError) as err:
                await _send(conn, stream, Response(400, f"bad request: {err}\n".encode(),
                                                   "text/plain; charset=utf-8"))
                return
            except trio.TooSlowError:
                return
            if request is None:
                return
            try:
                response = await handler(request)
            except Exception:  # noqa: BLE001 - the boundary of one request
                log.exception("web handler failed for %s %s", request.method, request.path)
                response = Response(500, b"internal error (see node.log)\n",
                                    "text/plain; charset=utf-8")
            await _send(conn, stream, response)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            if not data and head is None:
                return None
            continue
        if isinstance(event, h11.Request):
            head = event
            length = dict(event.headers).get(b"content-length")
            if length is not None and int(length) > MAX_BODY:
                raise ValueError(f"body over {MAX_BODY} bytes")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise ValueError(f"body over {MAX_BODY} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = urlsplit(head.target.decode("ascii", "replace"))
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            peer = stream.socket.getpeername()[0]
            return Request(head.method.decode("ascii", "replace"), target.path,
                           parse_qs(target.query), headers, bytes(body), peer)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(conn: h11.Connection, stream: trio.SocketStream, response: Response) -> None:
    headers = [("Content-Type", response.content_type),
               ("Content-Length", str(len(response.body))), ("Connection", "close"),
               *SECURITY_HEADERS, *response.headers]
    reason = {200: b"OK", 303: b"See Other", 400: b"Bad Request", 401: b"Unauthorized",
              403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
              500: b"Internal Server Error"}.get(response.status, b"")
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
    data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
