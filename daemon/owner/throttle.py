"""CPU share that holds: pause and resume the worker processes on a duty cycle (BOINC's way).

Why: the pool runs ``floor(cores * cpu_share)`` workers, at least one. When the share is
below one core's worth (25% of a 2-core machine is half a core) a single busy worker would
take a whole core, twice what the volunteer gave. So every ``PERIOD_S`` the throttle lets the
workers run for ``duty * PERIOD_S`` and stops them (SIGSTOP) for the rest, SIGCONT at the next
period. This needs no root and no systemd. Where the daemon can make a cgroup with a CPU
controller (``cgroup``: root, or the systemd unit's delegated cgroup), the kernel's CPU quota
does the same job more smoothly, and the duty cycle stays off; ``mechanism`` says which holds.

``duty_cycle`` is the pure rule. ``Throttle.run`` is the shell; it SIGCONTs every worker when it
stops or the share no longer needs throttling, so no worker is left stopped. While the duty is
below one, the pool's ``slowdown`` stretches each task's wall-clock allowance by ``1 / duty``
(a paused worker does not compute, and a task must not time out for it).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

import trio

from daemon.owner.cgroup import CpuCgroup

log = logging.getLogger("novacron.throttle")

PERIOD_S = 1.0
MIN_DUTY = 0.02


def duty_cycle(cpu_share: float, cores: int, workers: int) -> float:
    """The fraction of each period the workers may run so that all of them busy use at most
    ``cpu_share`` of ``cores``: min(1, share * cores / workers), never below ``MIN_DUTY``."""
    if workers <= 0:
        return 1.0
    return max(MIN_DUTY, min(1.0, cpu_share * max(1, cores) / workers))


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue  # it exited meanwhile: nothing to pause or resume


class Throttle:
    """Runs in the owner service's nursery. ``duty`` and ``pids`` are read every period, so a
    changed share applies within one period."""

    def __init__(self, duty: Callable[[], float], pids: Callable[[], list[int]],
                 on_slowdown: Callable[[float], None], *,
                 quota: tuple[CpuCgroup, Callable[[], tuple[float, int]]] | None = None) -> None:
        """``quota``: the workers' cgroup and a function giving (cpu share, cores) to set its
        quota from; None: pause and resume the workers instead."""
        self.duty = duty
        self.pids = pids
        self.on_slowdown = on_slowdown
        self.quota = quota
        self.paused_s = 0.0
        self.current = 1.0
        self._stopped: list[int] = []
        self._share: tuple[float, int] | None = None

    @property
    def mechanism(self) -> str:
        if self.quota is not None:
            return self.quota[0].kind
        return "pause/resume duty cycle"

    async def run(self) -> None:
        try:
            while True:
                duty = self.duty()
                if duty != self.current:
                    self.current = duty
                    self.on_slowdown(1.0 / duty)
                    if self.quota is None:
                        log.info("CPU throttle: workers run %.0f%% of each %.1f s",
                                 duty * 100, PERIOD_S)
                if self.quota is not None:
                    self._set_quota(*self.quota)
                    await trio.sleep(PERIOD_S)
                    continue
                if duty >= 1.0:
                    await trio.sleep(PERIOD_S)
                    continue
                await trio.sleep(duty * PERIOD_S)
                self._stopped = self.pids()
                _signal(self._stopped, signal.SIGSTOP)
                try:
                    await trio.sleep((1 - duty) * PERIOD_S)
                finally:
                    _signal(self._stopped, signal.SIGCONT)
                    self._stopped = []
                self.paused_s += (1 - duty) * PERIOD_S
        finally:
            self.on_slowdown(1.0)

    def apply_quota(self) -> None:
        """Set the cgroup's quota to the share now (the owner calls it on every change; the
        loop also checks each period). The one place that writes the quota."""
        if self.quota is not None:
            self._set_quota(*self.quota)

    def _set_quota(self, cgroup: CpuCgroup, share: Callable[[], tuple[float, int]]) -> None:
        now = share()
        if now != self._share:
            cgroup.set_share(*now)
            self._share = now
            log.info("CPU share: workers together get at most %.0f%% of %d core(s) (%s)",
                     now[0] * 100, now[1], cgroup.kind)
