"""The testnet commands as a contributor uses them: real daemon processes, only the CLI."""

import signal
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "daemon"]


def tn(directory, *args, timeout=90):
    return subprocess.run([*CLI, "testnet", *args, "--dir", str(directory)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def testnet_dir(tmp_path):
    d = tmp_path / "tn"
    yield d
    tn(d, "down")


def test_up_faults_status_down(testnet_dir):
    res = tn(testnet_dir, "up", "-n", "3")
    assert res.returncode == 0, res.stderr
    assert "is up with 3 nodes" in res.stdout
    again = tn(testnet_dir, "up", "-n", "3")
    assert again.returncode == 2 and "already running" in again.stderr

    assert tn(testnet_dir, "kill", "1").stdout.strip() == "killed node1 (SIGKILL)"
    assert tn(testnet_dir, "pause", "node2").returncode == 0
    status = tn(testnet_dir, "status").stdout
    rows = {line.split()[0]: line for line in status.splitlines()[1:]}
    assert " dead " in rows["node1"] and " paused " in rows["node2"] and " running " in rows["node0"]

    assert tn(testnet_dir, "resume", "2").returncode == 0
    assert tn(testnet_dir, "restart", "1").returncode == 0
    status = tn(testnet_dir, "status").stdout
    assert status.count(" running ") == 3

    res = tn(testnet_dir, "kill", "7")
    assert res.returncode == 2 and res.stderr.startswith("novacron: no node '7'")
    assert tn(testnet_dir, "down").stdout.strip() == "stopped 3 nodes"


def test_commands_without_a_testnet_say_how_to_start_one(tmp_path):
    res = tn(tmp_path / "none", "status")
    assert res.returncode == 2
    assert "start one with `novacron testnet up -n 5`" in res.stderr


def test_an_up_that_fails_stops_what_it_started(testnet_dir):
    # Not ready in time: the half-started network must not hold its ports and processes
    # (the next `up` would refuse, and a test runner would leak daemons).
    res = tn(testnet_dir, "up", "-n", "2", "--wait", "0.2")
    assert res.returncode == 2
    assert "not ready within" in res.stderr and "its daemons were stopped" in res.stderr
    status = tn(testnet_dir, "status").stdout
    assert status.count(" dead ") == 2, status
    again = tn(testnet_dir, "up", "-n", "2")
    assert again.returncode == 0, again.stderr


def test_an_up_stopped_by_sigterm_while_waiting_stops_what_it_started(testnet_dir):
    # A test runner or service manager stopping `up` mid-wait: SIGTERM must run the clean-up
    # (testnet.interrupt's handler), not end Python with the daemons left running.
    proc = subprocess.Popen([*CLI, "testnet", "up", "-n", "2", "--wait", "60",
                             "--dir", str(testnet_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        started = proc.stderr.readline()  # the launcher's progress goes to stderr
        assert "waiting for them to be ready" in started, started
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    status = tn(testnet_dir, "status").stdout
    assert status.count(" dead ") == 2, status
