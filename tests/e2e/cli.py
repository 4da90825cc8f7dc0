"""Driving real daemons the way a user does: the ``novacron`` CLI, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "daemon"]


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def ok(*args: str, timeout: float = 90) -> str:
    res = run(*args, timeout=timeout)
    assert res.returncode == 0, (
        f"novacron {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}\n"
        f"stdout: {res.stdout.strip()[-600:]}")
    return res.stdout


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def node_dir(testnet: Path, i: int) -> str:
    return str(testnet / f"node{i}")


def eventually(check, timeout: float = 30.0, what: str = "condition"):
    """Poll ``check()`` (real processes, real time) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as err:
            last = err
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def failed_tasks_explained(job: str, data_dir: str, most: int = 3) -> str:
    """Each failed task's replicas (``explain``), for a test's failure message: which workers
    ran it and how each replica ended is what tells a flaky job apart from a lost one."""
    st = run("status", job, "--tasks", "--json", "--data-dir", data_dir).stdout
    try:
        failed = [t["task"] for t in json.loads(st).get("tasks", []) if t["state"] == "failed"]
    except ValueError:
        return f"(status not readable: {st[-200:]})"
    return "\n".join(run("explain", job, str(t), "--data-dir", data_dir).stdout
                     for t in failed[:most])
