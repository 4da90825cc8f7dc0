"""The CPU seconds a process has used, for the benches and tests that measure what a daemon,
a worker or the WAN relay costs over an interval (two readings, subtracted).

One reading of ``/proc/<pid>/stat``: utime + stime, in clock ticks, after the command name,
which may itself hold spaces and ``)`` (hence the split at the last one). Standard library
only, so a bench or a test in a network namespace imports it without the daemon: the daemon's
own reading (``daemon.runtime.pool``) comes with trio and wasmtime.
"""

from __future__ import annotations

import os


def process_cpu_s(pid: int, *, gone: float | None = None) -> float:
    """User + system CPU seconds of ``pid`` so far. A process that is gone raises ``OSError``,
    unless ``gone`` is given: then that is the reading (a bench summing many processes may
    lose one and carry on; a test measuring one wants to hear it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        if gone is None:
            raise
        return gone
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
