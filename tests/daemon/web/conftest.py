"""A real daemon process with its web page (and metrics) on free 127.0.0.1 ports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon.web.webdriver import free_port

CLI = [sys.executable, "-m", "daemon"]


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class Daemon:
    data: Path
    ui_port: int
    metrics_port: int
    proc: subprocess.Popen[str]

    def cli(self, *args: str) -> str:
        res = cli(*args, "--data-dir", str(self.data))
        assert res.returncode == 0, res.stderr
        return res.stdout

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json"))


@pytest.fixture
def daemon(tmp_path):
    data = tmp_path / "node"
    ui_port, metrics_port = free_port(), free_port()
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{data}"\n[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n'
                      f'[ui]\nport = {ui_port}\n[metrics]\nport = {metrics_port}\n')
    proc = subprocess.Popen([*CLI, "daemon", "--config", str(config)], stderr=subprocess.DEVNULL,
                            text=True)
    deadline = time.monotonic() + 180  # a loaded CI machine
    while "health    ok" not in cli("status", "--data-dir", str(data)).stdout:
        assert proc.poll() is None, "the daemon exited"
        assert time.monotonic() < deadline, "the daemon did not come up"
        time.sleep(0.1)  # polling a real process
    yield Daemon(data, ui_port, metrics_port, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
