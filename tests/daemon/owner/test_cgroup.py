"""The workers' CPU cgroup: the quota rule, finding our own cgroup, and a real quota holding a
busy process (where this machine lets us make a cgroup: root with cgroup v1's cpu controller)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.owner.cgroup import (MIN_QUOTA_US, PERIOD_US, CgroupUnavailable, CpuCgroup, own_paths,
                                 quota_us)
from testnet.cpu import process_cpu_s


def test_the_quota_is_the_share_of_the_whole_machine() -> None:
    assert quota_us(0.25, 2) == PERIOD_US // 2  # a quarter of two cores is half a core
    assert quota_us(1.0, 4) == 4 * PERIOD_US
    assert quota_us(0.0001, 1) == MIN_QUOTA_US  # never below the kernel's floor
    assert quota_us(0.5, 0) == PERIOD_US // 2  # an unknown core count counts as one


def test_own_paths_reads_v1_and_v2_lines() -> None:
    text = "12:cpu,cpuacct:/user.slice\n4:memory:/x\n0::/system.slice/novacron.service\nbad\n"
    paths = own_paths(text)
    assert paths["cpu"] == paths["cpuacct"] == "/user.slice"
    assert paths["memory"] == "/x"
    assert paths[""] == "/system.slice/novacron.service"


def test_no_cpu_controller_anywhere_says_why(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    with pytest.raises(CgroupUnavailable, match="no cpu controller.*no cgroup v1 cpu controller"):
        CpuCgroup.create("1", root=tmp_path, proc_cgroup="0::/\n")


SERVICE = "system.slice/novacron.service"


def _delegated_v2(root: Path, controllers: str, procs: str) -> Path:
    """A v2 hierarchy laid out as the kernel lays it out, with the service's cgroup delegated
    (cgroup v2 cannot run here: no controllers in this kernel's unified hierarchy)."""
    own = root / SERVICE
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers)
    (own / "cgroup.controllers").write_text(controllers)
    (own / "cgroup.procs").write_text(procs)
    return own


def test_v2_delegated_cgroup_moves_the_daemon_to_a_leaf_first(tmp_path: Path) -> None:
    own = _delegated_v2(tmp_path, "cpu memory", "4242\n")
    cg = CpuCgroup.create("4242", root=tmp_path, proc_cgroup=f"0::/{SERVICE}\n")
    assert cg.version == 2 and cg.home == own / "daemon"
    assert (own / "daemon" / "cgroup.procs").read_text() == "4242"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu +memory"
    cg.set_share(0.25, 2)
    assert (cg.dir / "cpu.max").read_text() == f"{PERIOD_US // 2} {PERIOD_US}"
    assert cg.quota() == (PERIOD_US // 2, PERIOD_US)
    assert cg.set_memory(3 << 30) and (cg.dir / "memory.max").read_text() == str(3 << 30)
    assert (cg.dir / "cpu.weight").read_text() == "1"  # the workers yield to the daemon


def test_a_weight_the_kernel_refuses_leaves_the_quota_working(tmp_path: Path) -> None:
    own = _delegated_v2(tmp_path, "cpu", "")
    (own / "novacron-workers-7" / "cpu.weight").mkdir(parents=True)  # writing it fails
    cg = CpuCgroup.create("7", root=tmp_path, proc_cgroup=f"0::/{SERVICE}\n")
    cg.set_share(0.5, 2)
    assert cg.quota() == (PERIOD_US, PERIOD_US)


def _real_v1() -> bool:
    cpu = Path("/sys/fs/cgroup/cpu")
    return os.geteuid() == 0 and (cpu / "cpu.cfs_quota_us").exists() and os.access(cpu, os.W_OK)


def _throttled(cg: CpuCgroup) -> int:
    stat = dict(line.split() for line in (cg.dir / "cpu.stat").read_text().splitlines())
    return int(stat["nr_throttled"])


@pytest.mark.skipif(not _real_v1(), reason="needs root and cgroup v1's cpu controller")
def test_a_real_quota_holds_a_busy_process_and_is_removed_after() -> None:
    cg = CpuCgroup.create(str(os.getpid()))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert cg.add(busy.pid) and cg.pids() == [busy.pid]
        cg.set_share(0.01, 2)  # 2% of a core: far below what even a loaded machine gives it
        began, cpu0 = time.monotonic(), process_cpu_s(busy.pid)
        deadline = began + 20
        while _throttled(cg) < 5:  # polling the kernel's count of throttled periods
            assert time.monotonic() < deadline, "the quota never throttled the busy process"
            time.sleep(0.05)
        elapsed, used = time.monotonic() - began, process_cpu_s(busy.pid) - cpu0
        # The kernel's clock ticks are 10 ms: allow a few of them over the 2% quota.
        assert used <= 0.02 * elapsed + 0.05, (used, elapsed)
    finally:
        busy.kill()
        busy.wait()
        cg.close()
    assert not cg.dir.exists()
    assert not cg.add(busy.pid)  # gone: a false, not an exception


@pytest.mark.skipif(not _real_v1(), reason="needs root and cgroup v1's cpu controller")
def test_busy_workers_yield_the_cpu_to_a_busy_process_beside_them() -> None:
    """Both on one CPU: the process outside the workers' cgroup (the daemon, a volunteer's
    program) gets nearly all of it; at the default weight the two split it evenly."""
    cg = CpuCgroup.create(str(os.getpid()))
    assert (cg.dir / "cpu.shares").read_text().strip() == "2"
    cpu = sorted(os.sched_getaffinity(0))[0]
    spin = "import os; os.sched_setaffinity(0, {%d})\nwhile True: pass" % cpu
    worker = subprocess.Popen([sys.executable, "-c", spin])
    beside = subprocess.Popen([sys.executable, "-c", spin])
    try:
        assert cg.add(worker.pid)
        cg.set_share(1.0, os.cpu_count() or 1)  # no quota in the way: the weight alone
        w0, b0 = process_cpu_s(worker.pid), process_cpu_s(beside.pid)
        deadline = time.monotonic() + 20
        while process_cpu_s(beside.pid) - b0 < 1.0:  # polling real processes' CPU time
            assert time.monotonic() < deadline, "the process beside never got a second of CPU"
            time.sleep(0.05)
        worker_s, beside_s = process_cpu_s(worker.pid) - w0, process_cpu_s(beside.pid) - b0
        assert worker_s < 0.2 * beside_s, (worker_s, beside_s)
    finally:
        for p in (worker, beside):
            p.kill()
            p.wait()
        cg.close()


@pytest.mark.skipif(not _real_v1(), reason="needs root and cgroup v1's cpu controller")
def test_a_dead_daemons_left_over_cgroup_is_swept() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = CpuCgroup.create(str(dead.pid))  # as a daemon killed -9 would leave it
    assert stale.dir.exists()
    fresh = CpuCgroup.create(str(os.getpid()))
    try:
        assert not stale.dir.exists()
        assert fresh.dir.exists()
    finally:
        fresh.close()


@pytest.mark.skipif(not _real_v1(), reason="needs root and cgroup v1's cpu controller")
def test_a_leaf_left_by_an_earlier_process_with_our_pid_is_taken_over_and_removed() -> None:
    """Pids are reused: a daemon whose close found its leaf busy left it behind, and a later
    process with its pid (this one) must own it, or nobody ever removes it."""
    own = own_paths(Path("/proc/self/cgroup").read_text())["cpu"].lstrip("/")
    left = Path("/sys/fs/cgroup/cpu") / own / f"novacron-workers-{os.getpid()}"
    left.mkdir()
    try:
        cg = CpuCgroup.create(str(os.getpid()))
        assert cg.dir == left
        cg.close()
        assert not left.exists()
    finally:
        if left.exists():
            left.rmdir()
