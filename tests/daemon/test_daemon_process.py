"""The daemon as a user runs it: a real process, talked to only through the CLI."""

import os
import signal
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "daemon"]


def cli(*args, timeout=30):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)  # polling a real process's state, not waiting a fixed time
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def daemon(tmp_path):
    data = tmp_path / "node"
    proc = subprocess.Popen([*CLI, "daemon", "--data-dir", str(data), "--listen",
                             "/ip4/127.0.0.1/tcp/0"], stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (data / "control.sock").exists() or proc.poll() is not None, what="socket")
    yield proc, data
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_status_then_sigterm_stops_cleanly(daemon):
    proc, data = daemon
    res = cli("status", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    assert "12D3KooW" in res.stdout
    # The socket answers while services still start; status says so until all are up.
    assert "health    ok" in res.stdout or "health    starting (" in res.stdout, res.stdout
    wait_for(lambda: "health    ok" in cli("status", "--data-dir", str(data)).stdout,
             what="all services up")
    proc.send_signal(signal.SIGTERM)
    # How fast it stops is a speed figure, not a correctness one: a loaded CI machine must not
    # fail this. What must hold is that it stops by itself, cleanly, and removes its socket.
    proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not (data / "control.sock").exists()


def test_second_daemon_on_same_data_dir_is_refused(daemon):
    _, data = daemon
    res = cli("daemon", "--data-dir", str(data), "--listen", "/ip4/127.0.0.1/tcp/0")
    assert res.returncode == 2
    pid = int((data / "daemon.lock").read_text())
    assert res.stderr.strip() == (f"novacron: another daemon (pid {pid}) is running on data "
                                  f"directory {data}; stop that daemon first, or give this one its "
                                  "own --data-dir")


def test_kill9_leaves_stale_socket_that_status_explains_and_restart_replaces(daemon):
    proc, data = daemon
    proc.kill()
    proc.wait()
    res = cli("status", "--data-dir", str(data))
    assert res.returncode == 2 and "stale control socket" in res.stderr
    assert res.stderr.count("\n") == 1
    again = subprocess.Popen([*CLI, "daemon", "--data-dir", str(data), "--listen",
                              "/ip4/127.0.0.1/tcp/0"], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: cli("status", "--data-dir", str(data)).returncode == 0, what="restart")
    finally:
        again.terminate()
        again.wait(timeout=5)


def test_not_running_and_bad_config_are_one_line(tmp_path):
    res = cli("status", "--data-dir", str(tmp_path / "none"))
    assert res.returncode == 2 and res.stderr.startswith("novacron: the daemon is not running")
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[p2p]\nlisen = []\n")
    res = cli("daemon", "--config", str(cfg))
    assert res.returncode == 2
    assert "unknown setting 'p2p.lisen'" in res.stderr and res.stderr.count("\n") == 1


def test_port_taken_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = cli("daemon", "--data-dir", str(tmp_path / "n"), "--listen", f"/ip4/127.0.0.1/tcp/{port}")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]  # after the daemon's own log lines
    assert last.startswith("novacron: ") and f"TCP port {port} is already in use" in last
    assert "Traceback" not in res.stderr
