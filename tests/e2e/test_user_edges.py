"""What a user runs into at the edges, on a real 4-node testnet, through the CLI: a job file
naming a device is refused in one line without the daemon reading it, and a second daemon
with a node's key (its directory again, or a copy of it) is refused while the original keeps
its seat and keeps committing."""

from __future__ import annotations

import hashlib

import shutil
import subprocess
from pathlib import Path

import pytest

from testnet.local.processes import free_ports
from tests.e2e.cli import CLI, as_json, node_dir, ok, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    tn = tmp_path_factory.mktemp("edges") / "tn"
    ok("testnet", "up", "-n", "4", "--dir", str(tn), "--seed", "13")
    yield tn
    run("testnet", "down", "--dir", str(tn))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.parametrize("field", ["module", "lines"])
def test_a_job_naming_dev_zero_is_refused_in_one_line_and_costs_no_memory(testnet, tmp_path, field):
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    job = tmp_path / "job.toml"
    job.write_text('[job]\nmodule = "/dev/zero"\n[inputs]\nrange = [0, 4]\n' if field == "module"
                   else '[job]\nmodule = "pi.wasm"\n[inputs]\nlines = "/dev/zero"\n')
    pid = as_json("status", "--data-dir", node_dir(testnet, 0))["pid"]
    before = rss_kib(pid)
    res = run("submit", str(job), "--data-dir", node_dir(testnet, 0))
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    section = "[job]" if field == "module" else "[inputs]"
    assert f"{section} {field} names /dev/zero, which is a character device, not a regular file" \
        in res.stderr
    assert rss_kib(pid) - before < 32 * 1024  # it once grew past 1.5 GB in 8 s
    # The offline check says the same, without a daemon.
    res = run("check", str(job))
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "/dev/zero" in res.stderr


def test_a_second_daemon_with_a_nodes_key_is_refused_and_the_original_keeps_committing(
        testnet, tmp_path):
    original = Path(node_dir(testnet, 1))
    port = free_ports(1)[0]
    daemon = [*CLI, "daemon", "--config", str(original / "node.toml")]

    # The same directory: its lock says who holds it.
    res = subprocess.run([*daemon, "--listen", f"/ip4/127.0.0.1/tcp/{port}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("novacron: another daemon (pid ") and str(original) in last

    # A copy of the directory, on another port: the original answers with this key.
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns("control.sock"))
    res = subprocess.run([*daemon, "--data-dir", str(copy), "--listen",
                          f"/ip4/127.0.0.1/tcp/{port}"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr[-2000:]
    me = as_json("status", "--data-dir", str(original))["node_id"]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"novacron: node {me} is already running at /ip4/127.0.0.1/tcp/"), last
    assert not (copy / "control.sock").exists()

    # The original keeps its seat, healthy, and commits.
    for i in (1, 2):
        out = ok("kv", "put", f"after-twin-{i}", "x", "--data-dir", node_dir(testnet, i), timeout=60)
        assert out.startswith("committed")
    assert as_json("status", "--data-dir", str(original))["health"] == "ok"
    assert me in as_json("committees", "--data-dir", node_dir(testnet, 0))["members"]


def test_data_directories_are_owner_only(testnet):
    d = Path(node_dir(testnet, 2))
    assert d.stat().st_mode & 0o777 == 0o700
    for p in d.rglob("*"):
        if not p.is_symlink():
            assert p.stat().st_mode & 0o077 == 0, p


def small_job(tmp_path: Path, tasks: int = 4) -> Path:
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    job = tmp_path / "small.toml"
    job.write_text(f'[job]\nname = "small-pi"\nmodule = "pi.wasm"\nargv = ["pi"]\n[inputs]\n'
                   f'range = [0, {tasks}]\ntemplate = "{{i}} 20000\\n"\n')
    return job


def test_submit_wait_describe_and_status_lines_as_a_user_sees_them(testnet, tmp_path):
    job = small_job(tmp_path)
    res = run("submit", str(job), "--wait", "--interval", "0.5", "--data-dir", node_dir(testnet, 3),
              timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    jid = lines[0]
    assert len(jid) == 64 and any(line.startswith("job done: 4 ok, 0 failed") for line in lines)
    out = ok("describe", jid[:10], "--data-dir", node_dir(testnet, 3))
    assert f"job        {jid}\n" in out and "state      done (every task has" in out
    assert "a result is accepted when 2 agree" in out and "tasks      4: 4 accepted (4 ok)" in out
    # What it runs and under which limits, from the ledger's copy of the spec.
    module = hashlib.sha256((tmp_path / "pi.wasm").read_bytes()).hexdigest()
    assert f"module     wasm32-wasi, sha256 {module[:16]}" in out and "argv pi\n" in out
    assert "limits     fuel " in out and "memory " in out and "wall " in out, out
    # Status lines fit in 100 columns; node ids have one short length wherever shortened.
    for args in (("status",), ("status", jid, "--tasks"), ("committees",), ("capabilities",),
                 ("describe", jid), ("explain", jid, "0"), ("jobs",)):
        for line in ok(*args, "--data-dir", node_dir(testnet, 3)).splitlines():
            assert len(line) <= 100, (args, line)
    for line in ok("testnet", "status", "--dir", str(testnet)).splitlines():
        assert len(line) <= 100, line
    members = as_json("committees", "--data-dir", node_dir(testnet, 0))["members"]
    shown = ok("committees", "--data-dir", node_dir(testnet, 0))
    assert all(m[-12:] in shown and m[-13:] not in shown for m in members)

    # Output to a reader that went away: no traceback, the shell's "killed by SIGPIPE" status.
    proc = subprocess.Popen([*CLI, "explain", jid, "0", "--data-dir", node_dir(testnet, 3)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and stderr == "", stderr


def test_a_failed_start_leaves_nothing_behind(tmp_path):
    data = tmp_path / "node"
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run("daemon", "--data-dir", str(data), "--listen", f"/ip4/127.0.0.1/tcp/{port}")
    assert res.returncode == 2 and "is already in use" in res.stderr.splitlines()[-1]
    assert not (data / "genesis.toml").exists() and not (data / "control.sock").exists()
    res = run("daemon", "--data-dir", str(data), "--genesis", str(tmp_path / "missing.toml"))
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1].startswith(f"novacron: no genesis file at {tmp_path}")
    assert not (data / "control.sock").exists()
    assert data.stat().st_mode & 0o777 == 0o700
