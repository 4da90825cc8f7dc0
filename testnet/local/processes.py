"""Starting, signalling and watching daemon processes (Linux, 127.0.0.1 only)."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from testnet.local.layout import NodeRecord


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000
"""Below this are ports other software expects to own (databases, dev servers)."""


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (and to ``bind(0)``)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now, below the kernel's ephemeral range.

    A node restarted on its port must find it free. A port the kernel picked (``bind(0)``) is
    in the range it also gives outgoing connections, so while the node was down any connection
    on the machine (another node's redial of it, even) could take it as its source port, and
    the restart failed as "port in use". Ports below the range are taken only by explicit binds.
    """
    low = _ephemeral_low()
    candidates = list(range(LOWEST_PORT, low)) if low - LOWEST_PORT >= 4 * n else []
    random.SystemRandom().shuffle(candidates)  # two testnets at once rarely meet
    ports = list(itertools.islice((p for p in candidates if port_is_free(p)), n))
    socks: list[socket.socket] = []
    try:
        while len(ports) < n:  # a range too narrow to choose from: the kernel's picks
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (connections in TIME_WAIT do not count,
    as they do not stop the daemon's listener, which sets SO_REUSEADDR too)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(node: NodeRecord, extra_env: dict[str, str] | None = None) -> int:
    """Start the node's daemon detached (its own session, so Ctrl-C of the CLI spares it)."""
    data = Path(node.data_dir)
    out = open(data / "stdout.log", "ab")
    env = dict(os.environ, **(extra_env or {}))
    # The repo root on the path, so `python -m daemon` works from a checkout without install.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    module = "testnet.local.cheater" if node.role == "cheater" else "daemon"
    # In a namespace testnet, `ip netns exec` enters the node's namespace and execs the daemon
    # (same pid, so signals and `alive` work as on loopback).
    enter = ["ip", "netns", "exec", node.netns] if node.netns else []
    proc = subprocess.Popen(
        [*enter, sys.executable, "-m", module, "daemon", "--config", str(data / "node.toml")],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True, env=env, cwd=str(data),
    )
    out.close()
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by us) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def state_of(pid: int | None) -> str:
    """running, paused (SIGSTOPped) or dead."""
    if not alive(pid):
        return "dead"
    try:
        with open(f"/proc/{pid}/stat") as f:
            code = f.read().split(")")[-1].split()[0]
    except OSError:
        return "dead"
    return "paused" if code in ("T", "t") else "running"


def send(pid: int | None, sig: signal.Signals) -> bool:
    if not alive(pid):
        return False
    try:
        os.kill(pid, sig)  # type: ignore[arg-type]
        return True
    except ProcessLookupError:
        return False


def reap(pid: int) -> None:
    """Collect our own child's exit status if it is one (no zombie left behind)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(pid: int | None, timeout: float = 5.0) -> None:
    """SIGTERM (and SIGCONT, in case it is paused); SIGKILL if it has not exited in time."""
    if not alive(pid):
        return
    assert pid is not None
    send(pid, signal.SIGTERM)
    send(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        reap(pid)
        time.sleep(0.02)
    if alive(pid):
        send(pid, signal.SIGKILL)
        while alive(pid):
            reap(pid)
            time.sleep(0.01)
    reap(pid)
