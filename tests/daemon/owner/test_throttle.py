"""CPU share by duty cycle: the pure rule, and the shell pausing a real process and never
leaving it stopped (virtual time: the periods pass at once, the signals are real)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import trio

from daemon.owner.cgroup import CpuCgroup
from daemon.owner.throttle import MIN_DUTY, Throttle, duty_cycle


@pytest.mark.parametrize("share, cores, workers, duty", [
    (0.25, 2, 1, 0.5),  # a quarter of two cores is half of the one worker's time
    (0.5, 2, 1, 1.0),
    (1.0, 4, 4, 1.0),
    (0.25, 1, 1, 0.25),
    (0.75, 2, 1, 1.0),  # floor(1.5) = 1 worker: it may run all the time and stays under 75%
    (0.001, 1, 1, MIN_DUTY),
    (0.5, 2, 0, 1.0),
])
def test_duty_cycle(share, cores, workers, duty):
    assert duty_cycle(share, cores, workers) == pytest.approx(duty)


def state(pid: int, want: str) -> str:
    """The process's state once it is ``want`` (a signal lands asynchronously), or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        with open(f"/proc/{pid}/stat") as f:
            now = f.read().rsplit(")", 1)[1].split()[0]
        if now == want or time.monotonic() > deadline:
            return now
        time.sleep(0.005)  # polling a real process's state


async def test_the_throttle_pauses_workers_and_leaves_none_stopped(autojump_clock):
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    seen: list[str] = []
    slowdowns: list[float] = []
    share = [0.25]
    throttle = Throttle(lambda: duty_cycle(share[0], 2, 1), lambda: [proc.pid, 999_999_999],
                        slowdowns.append)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(throttle.run)
            for _ in range(5):
                await trio.sleep(0.7)  # virtual: inside a pause (periods are 0.5 s on, 0.5 off)
                seen.append(state(proc.pid, "T"))
                await trio.sleep(0.3)
            await trio.sleep(0.2)  # inside a run phase: this period still pauses, the next not
            share[0] = 1.0  # a changed share applies within a period
            await trio.sleep(2.0)
            seen.append(state(proc.pid, "S"))
            nursery.cancel_scope.cancel()
        assert seen[:5] == ["T"] * 5 and seen[5] != "T"
        assert slowdowns == [2.0, 1.0, 1.0]  # 1 / duty, then unthrottled, then reset on exit
        assert throttle.paused_s == pytest.approx(3.0)
        assert state(proc.pid, "S") == "S"
    finally:
        proc.kill()
        proc.wait()


async def test_with_a_cgroup_the_quota_follows_the_share_and_nothing_is_paused(
        autojump_clock, tmp_path):
    # A v2 cgroup laid out as the kernel does (this kernel's v2 has no controllers; the real
    # quota is tested on v1 in test_cgroup.py).
    (tmp_path / "cgroup.controllers").write_text("cpu")
    own = tmp_path / "novacron.service"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu")
    (own / "cgroup.procs").write_text("")
    cgroup = CpuCgroup.create("1", root=tmp_path, proc_cgroup="0::/novacron.service\n")
    share = [0.25]
    slowdowns: list[float] = []
    listed: list[int] = []
    throttle = Throttle(lambda: duty_cycle(share[0], 2, 1), lambda: listed, slowdowns.append,
                        quota=(cgroup, lambda: (share[0], 2)))
    assert throttle.mechanism == "cgroup v2 CPU quota"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(throttle.run)
        await trio.sleep(0.5)
        assert cgroup.quota() == (50_000, 100_000) and slowdowns == [2.0]
        share[0] = 1.0  # the owner raises the share: the quota follows within a period
        await trio.sleep(1.5)
        assert cgroup.quota() == (200_000, 100_000) and slowdowns == [2.0, 1.0]
        nursery.cancel_scope.cancel()
    assert throttle.paused_s == 0
