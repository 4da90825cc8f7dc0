"""A worker stopped and continued while it writes a large answer still sends all of it.

The CPU throttle pauses workers with SIGSTOP on a duty cycle. A worker stopped while its write
to the daemon's pipe is blocked (the pipe full, the daemon busy) is continued with only part of
the frame written; if it ignored the short count the daemon waited for the rest until the
task's deadline. Real worker process, real signals, the real frame protocol.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

from daemon.runtime import wire
from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules

ROOT = modules.ROOT
OUTPUT = 4 << 20
"""Far more than a pipe holds (64 KiB), so the worker's write blocks many times."""
SILENCE_S = 30.0
"""A cut frame is never completed: past this long without a byte the test fails (a bound on a
failure, not a wait for something to happen)."""


def read_exact(fd: int, n: int, pid: int) -> bytes:
    """Read ``n`` bytes, a pipe's worth at a time, stopping and continuing the writer after
    each read (the throttle's pause, while its write is blocked on the full pipe)."""
    out = bytearray()
    while len(out) < n:
        ready, _, _ = select.select([fd], [], [], SILENCE_S)
        assert ready, f"the worker went silent after {len(out):,} of {n:,} bytes of a frame"
        chunk = os.read(fd, min(65536, n - len(out)))
        assert chunk, f"the worker closed its pipe after {len(out):,} of {n:,} bytes"
        out += chunk
        os.kill(pid, signal.SIGSTOP)
        os.kill(pid, signal.SIGCONT)
    return bytes(out)


def receive(fd: int, pid: int) -> dict:
    header = read_exact(fd, wire.HEADER.size, pid)
    return wire.decode(read_exact(fd, wire.frame_length(header, OUTPUT + (1 << 20)), pid))


def test_a_worker_paused_mid_answer_still_sends_the_whole_frame() -> None:
    flood = modules.endless_output()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon.runtime.worker", "--nice", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        assert "ready" in receive(fd, proc.pid)
        limits = Limits(fuel=10_000_000_000, max_output=OUTPUT, wall_s=60.0)
        for _ in range(3):
            request = wire.RunRequest(module_hash(flood), flood, b"", limits, b"seed", (b"task",), 0)
            proc.stdin.write(wire.encode(request.to_wire()))
            proc.stdin.flush()
            reply = receive(fd, proc.pid)
            outcome = reply["outcome"]
            assert outcome["status"] == TaskStatus.OUTPUT_TOO_LARGE
            assert len(outcome["output"]) == OUTPUT and set(outcome["output"]) == {ord("y")}
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.stdin.close()
        proc.wait(timeout=30)
