"""A bench stopped by SIGINT or SIGTERM runs its ``finally`` (which takes its testnet down),
even when started in the background with SIGINT ignored, as ``nohup cmd &`` in a script does."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

CHILD = """
import signal, sys
from testnet.interrupt import stop_cleanly_on_signals
stop_cleanly_on_signals()
try:
    print("ready", flush=True)
    signal.pause()
finally:
    print("down", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_runs_the_finally_blocks(signum: int) -> None:
    def ignore_sigint() -> None:  # what a non-interactive shell does for `cmd &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out == "down\n", err
    # SIGTERM: SystemExit(143); SIGINT: an uncaught KeyboardInterrupt ends by SIGINT itself
    assert proc.returncode == (128 + signum if signum == signal.SIGTERM else -signum), err
