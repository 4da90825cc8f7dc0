"""The Python runtime's readiness: declined, missing, ready; and a volunteer who declines it
never offers it (a real daemon, through its socket)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from daemon.control.client import ControlClient
from daemon.runtime import interpreter
from daemon.runtime.python_service import PythonRuntimeService, State


async def _settle(service: PythonRuntimeService) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await service.settled.wait()
        nursery.cancel_scope.cancel()


async def test_declined_never_prepares_nor_offers(tmp_path: Path) -> None:
    offered: list[str] = []
    service = PythonRuntimeService(tmp_path, enabled=False, fetch=True, on_ready=offered.append)
    await _settle(service)
    assert service.state is State.DECLINED and offered == []
    assert service.status()["summary"] == "declined (volunteer.python = false)"


async def test_missing_files_without_fetching_say_how_to_get_them(tmp_path: Path) -> None:
    offered: list[str] = []
    service = PythonRuntimeService(tmp_path, enabled=True, fetch=False, on_ready=offered.append)
    await _settle(service)
    assert service.state is State.MISSING and offered == []
    assert "daemon.runtime.interpreter fetch" in service.status()["detail"]


@pytest.mark.slow
async def test_ready_offers_the_exact_runtime(python_cache: Path) -> None:
    offered: list[str] = []
    service = PythonRuntimeService(python_cache, enabled=True, fetch=False,
                                   on_ready=offered.append)
    await _settle(service)
    assert service.state is State.READY, service.status()
    assert offered == [interpreter.runtime_name()]
    assert offered[0].startswith("python@")


def _own_runtimes(socket: Path) -> list[str] | None:
    with ControlClient(socket) as client:
        node = client.call("status")["node_id"]
        for record in client.call("capabilities")["records"]:
            if record["node_id"] == node:
                return list(record["runtimes"])
    return None


def _status(socket: Path) -> dict:
    with ControlClient(socket) as client:
        return dict(client.call("status"))


@pytest.mark.slow
@pytest.mark.parametrize("python", [False, True])
def test_a_daemon_offers_python_only_when_ready_and_not_declined(
        tmp_path: Path, python_cache: Path, python: bool) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{tmp_path / "node"}"\n[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n'
                      f'[volunteer]\npython = {str(python).lower()}\n'
                      f'python_cache = "{python_cache}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "daemon", "--config", str(config)],
                            stderr=subprocess.DEVNULL)
    socket = tmp_path / "node" / "control.sock"
    try:
        deadline = time.monotonic() + 60
        want = "ready" if python else "declined"
        state = None
        while time.monotonic() < deadline:  # polling a real process, not waiting a fixed time
            if socket.exists():
                try:
                    state = _status(socket)["services"].get("python", {}).get("state")
                except Exception:  # noqa: BLE001 - still starting
                    state = None
                if state == want:
                    break
            time.sleep(0.05)
        assert state == want
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runtimes = _own_runtimes(socket)
            if runtimes and (("python" in runtimes) == python):
                break
            time.sleep(0.05)
        assert runtimes is not None and ("python" in runtimes) == python, runtimes
        assert any(r.startswith("wasm32-wasi@") for r in runtimes)
    finally:
        proc.kill()
        proc.wait()
