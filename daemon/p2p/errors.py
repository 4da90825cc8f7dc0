"""Errors raised by the libp2p host wrapper.

One root, ``P2PError``. Remote faults (a peer's garbage) are not raised to callers at all: they are
counted against the peer (``P2PHost.metrics()["faults"]``) and, past a threshold, the peer is banned
for a while. What reaches callers is local: a bad setting, a call before the host runs, a request
that could not complete.
"""

from __future__ import annotations

from daemon.errors import DaemonError


class P2PError(DaemonError):
    """Root of every error the ``daemon.p2p`` package raises."""


class P2PConfigError(P2PError, ValueError):
    """A setting that cannot work; the message names it and says what would."""


class NotRunning(P2PError):
    """The host is not running (``run`` not started yet, or already shut down)."""


class RequestFailed(P2PError):
    """A request/response exchange did not complete.

    ``reason`` is a short stable slug (``timeout``, ``open``, ``stream``, ``no_response``,
    ``banned``, ``self``, or the framing fault ``frame_too_large`` / ``truncated_frame``) for
    metrics and for callers that retry elsewhere.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
