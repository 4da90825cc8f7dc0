"""A blocking JSON-RPC client for the CLI, with one-line errors for every way it can fail."""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path
from typing import Any

from daemon.control.jsonrpc import MAX_LINE, request_line
from daemon.errors import DaemonError


class ControlError(DaemonError):
    """The daemon could not be reached or answered with an error; ``str()`` is one line."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class ControlClient:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if not self.path.exists():
            raise ControlError(
                f"the daemon is not running (no control socket at {self.path}); start it with "
                f"`novacron daemon`"
            )
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(str(self.path))
        except ConnectionRefusedError:
            s.close()
            raise ControlError(
                f"stale control socket at {self.path}: the daemon is not running (it may have "
                f"crashed); start it again with `novacron daemon`"
            ) from None
        except PermissionError:
            s.close()
            raise ControlError(f"permission denied on {self.path}: run as the user that started "
                               f"the daemon") from None
        except OSError as err:
            s.close()
            if err.errno == errno.ENOTSOCK or err.errno == errno.ECONNREFUSED:
                raise ControlError(f"{self.path} is not a live control socket; is the daemon "
                                   f"running?") from None
            raise ControlError(f"cannot connect to {self.path}: {err.strerror}") from None
        self._sock = s
        return s

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        sock = self._connect()
        self._next_id += 1
        rid = self._next_id
        try:
            sock.sendall(request_line(rid, method, params))
            while True:
                while b"\n" not in self._buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ControlError("the daemon closed the connection (did it stop?)")
                    self._buf += chunk
                    if len(self._buf) > 64 * MAX_LINE:
                        raise ControlError("the daemon sent an oversized response")
                line, _, self._buf = self._buf.partition(b"\n")
                try:
                    reply = json.loads(line)
                except ValueError:
                    raise ControlError("the daemon sent a malformed response") from None
                # A late answer to an earlier call that timed out is not this call's answer.
                if not isinstance(reply, dict) or reply.get("id") in (rid, None):
                    break
        except socket.timeout:
            raise ControlError(f"the daemon did not answer {method!r} within {self.timeout:.0f} s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise ControlError("the daemon closed the connection (did it stop?)") from None
        if "error" in reply:
            err = reply["error"]
            raise ControlError(str(err.get("message", "error")), err.get("code"), err.get("data"))
        return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
