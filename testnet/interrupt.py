"""A bench or launcher that starts daemons stops cleanly when told to, however it was run.

Its ``finally`` blocks take the testnet down (daemons, workers, relays, network namespaces).
Two ways of stopping it skipped them: SIGTERM (``kill``, a CI timeout) ends a Python process
at once by default, and a process started in the background by a non-interactive shell
(``nohup ... &`` in a script) inherits SIGINT ignored, so Ctrl-C did nothing at all. A killed
30-node WAN bench left its 30 daemons running and 31 namespaces behind.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def stop_cleanly_on_signals() -> None:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``SystemExit``, so ``finally`` runs.
    Call it first thing in ``main``."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)


def raise_on_sigterm() -> Any:
    """Make SIGTERM raise ``SystemExit`` for a while (the launcher's wait for a network);
    return the handler it replaced, to put back, or None where handlers cannot be set (not
    the main thread: there the caller's own handling stands)."""
    try:
        return signal.signal(signal.SIGTERM, _terminated)
    except ValueError:
        return None
