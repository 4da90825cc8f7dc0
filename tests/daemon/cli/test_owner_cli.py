"""The owner's commands against a real daemon process: settings applied live and kept, the
reason for taking no work in words, suspend surviving a restart, and a clean ``stop``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "daemon"]


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def ok(*args: str) -> str:
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)  # polling a real process's state
    raise AssertionError(f"timed out waiting for {what}")


def start(data: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*CLI, "daemon", "--data-dir", str(data), "--listen",
                             "/ip4/127.0.0.1/tcp/0"], stderr=subprocess.DEVNULL, text=True)
    wait_for(lambda: "health    ok" in cli("status", "--data-dir", str(data)).stdout
             or proc.poll() is not None, what="all services up")
    assert proc.poll() is None
    return proc


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "node"
    procs: list[subprocess.Popen[str]] = []
    yield d, procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_settings_suspend_and_stop_as_the_owner_sees_them(data):
    d, procs = data
    dd = ("--data-dir", str(d))
    procs.append(start(d))
    status = ok("status", *dd)
    runtime = next(line for line in status.splitlines() if line.startswith("  runtime"))
    assert "worker(s) busy" in runtime  # the line that used to be blank
    assert "work      taking tasks" in status

    shown = ok("settings", *dd, "--cpu-share", "0.25", "--hours", "00:00-00:01", "--memory-mb", "512")
    assert "0.25 (1 worker(s), each running" in shown and "[changed by the owner]" in shown
    wait_for(lambda: "work      taking no tasks: outside the volunteer's hours 00:00-00:01"
             in ok("status", *dd) or "00:00" <= time.strftime("%H:%M") < "00:02", what="hours")
    bad = cli("settings", *dd, "--cpu-share", "2")
    assert bad.returncode != 0
    assert bad.stderr.strip() == ("novacron: cpu_share must be a fraction of the machine in "
                                  "(0, 1], e.g. 0.25, got 2.0")

    assert ok("suspend", *dd).startswith("suspended: taking no new tasks")
    assert ok("suspend", *dd).startswith("already suspended")
    assert "work      taking no tasks: suspended by the owner since" in ok("status", *dd)

    stopped = ok("stop", *dd)
    assert stopped.startswith("stopped daemon 12D3KooW")
    assert procs[0].wait(timeout=5) == 0 and not (d / "control.sock").exists()

    procs.append(start(d))  # a restart keeps the owner's choices
    st = json.loads(ok("status", *dd, "--json"))["services"]["owner"]
    assert st["suspended"] is True and st["work"].startswith("taking no tasks: suspended by the owner")
    assert st["settings"] == {"cpu_share": 0.25, "max_memory_mb": 512, "hours": "00:00-00:01",
                              "idle_only": False}
    assert st["duty"] == pytest.approx(min(1.0, 0.25 * _cores() / st["workers"]), abs=1e-3)
    cgroup = Path(f"/sys/fs/cgroup/cpu/novacron-workers-{procs[1].pid}")
    if _real_v1():  # root here: the kernel holds the share on the workers' own cgroup
        assert st["cpu_limit"] == "cgroup v1 CPU quota"
        assert int((cgroup / "cpu.cfs_quota_us").read_text()) == round(0.25 * _cores() * 100_000)
        assert len((cgroup / "cgroup.procs").read_text().split()) == st["workers"]
    else:
        assert st["cpu_limit"] == "pause/resume duty cycle"
    assert ok("resume", *dd).startswith("resumed: taking no tasks: outside") or \
        "00:00" <= time.strftime("%H:%M") < "00:02"
    reset = ok("settings", *dd, "--reset")
    assert "any time" in reset and "[changed by the owner]" not in reset
    assert "work      taking tasks" in ok("status", *dd)
    tasks = ok("tasks", *dd)
    assert tasks.splitlines()[-1] == "no tasks run yet"
    ok("stop", *dd)
    assert procs[1].wait(timeout=5) == 0
    # Removed on the way out, or at least emptied (a worker the pool was replacing during
    # shutdown can keep it busy a moment; the next daemon sweeps it: test_cgroup.py).
    assert not cgroup.exists() or not (cgroup / "cgroup.procs").read_text().split()


def _real_v1() -> bool:
    import os

    cpu = Path("/sys/fs/cgroup/cpu")
    return os.geteuid() == 0 and (cpu / "cpu.cfs_quota_us").exists() and os.access(cpu, os.W_OK)


def _cores() -> int:
    from daemon.runtime.volunteer import cpu_count

    return cpu_count()
