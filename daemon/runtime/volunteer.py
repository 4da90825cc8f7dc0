"""The volunteer's say: how many cores, which hours, and whether only while the machine is idle.

``may_run_now`` is the pure rule; ``read_cpu_sample`` and ``load_between`` are the I/O and the
arithmetic that feed it.

What "idle" means here, honestly: a daemon without a display cannot see a keyboard or mouse, so
we measure what other programs do with the CPU. From two readings of ``/proc/stat`` (all CPU
time on the machine) and of ``/proc/<pid>/stat`` for the daemon and its workers (our own CPU
time) we compute the share of the machine's CPU used by everything else. The machine counts as
idle while that share stays below ``idle_threshold``. Someone reading a web page uses almost no
CPU and so looks idle; that is why idle-only workers also run under SCHED_IDLE (see
``worker``), which lets any other runnable program take the CPU at once.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, time

from daemon.errors import DaemonError

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class PrefsError(DaemonError, ValueError):
    """A preference the volunteer wrote wrongly (one line: which and how to fix it)."""


@dataclass(frozen=True, slots=True)
class HoursWindow:
    """Local hours ``start``..``end``; ``end`` before ``start`` wraps past midnight."""

    start: time
    end: time

    def contains(self, now: time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_hours(text: str) -> HoursWindow | None:
    """``"22:00-07:00"`` -> a window; ``""`` -> None (any time)."""
    if not text:
        return None
    m = _HOURS.match(text.strip())
    if not m:
        raise PrefsError(f"hours must look like \"22:00-07:00\" (24-hour local time), got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return HoursWindow(time(h1, m1), time(h2, m2))


@dataclass(frozen=True, slots=True)
class VolunteerPrefs:
    cpu_share: float = 0.5
    hours: HoursWindow | None = None
    idle_only: bool = False
    idle_threshold: float = 0.2  # other programs' share of all CPU time above which we pause

    def __post_init__(self) -> None:
        if not 0 < self.cpu_share <= 1:
            raise PrefsError(f"cpu_share must be in (0, 1], got {self.cpu_share}")
        if not 0 < self.idle_threshold <= 1:
            raise PrefsError(f"idle_threshold must be in (0, 1], got {self.idle_threshold}")

    def workers(self, cores: int) -> int:
        """How many tasks may run at once: floor(cores * share), at least one."""
        return max(1, math.floor(max(1, cores) * self.cpu_share + 1e-9))


def may_run_now(prefs: VolunteerPrefs, now_local: datetime, others_load: float | None) -> tuple[bool, str]:
    """Whether to accept a new task now, and why (the reason is shown in ``novacron status``).

    ``others_load``: the share of the machine's CPU used by other programs over the last sample
    interval (0..1), or None when not measured yet.
    """
    if prefs.hours is not None and not prefs.hours.contains(now_local.time()):
        return False, f"outside the volunteer's hours {prefs.hours} (now {now_local:%H:%M})"
    if prefs.idle_only:
        if others_load is None:
            return False, "idle-only: measuring whether the machine is idle"
        if others_load >= prefs.idle_threshold:
            return False, (f"idle-only: other programs use {others_load:.0%} of the CPU "
                           f"(threshold {prefs.idle_threshold:.0%})")
        return True, f"machine idle (other programs use {others_load:.0%} of the CPU)"
    return True, "accepting tasks"


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Cumulative CPU time in clock ticks: the whole machine, its busy part, and ours."""

    total: int
    busy: int
    own: int


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(total, busy) ticks from ``/proc/stat``'s first line; idle and iowait are not busy."""
    fields = text.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        raise ValueError("/proc/stat does not start with the aggregate cpu line")
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    return total, total - ticks[3] - ticks[4]


def parse_pid_stat(text: str, *, children: bool = False) -> int:
    """utime + stime ticks from ``/proc/<pid>/stat`` (the command may contain spaces), plus the
    time of its reaped children (cutime + cstime) if ``children``."""
    rest = text[text.rindex(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])
    return ticks + int(rest[13]) + int(rest[14]) if children else ticks


def read_cpu_sample(worker_pids: list[int]) -> CpuSample:
    """The machine's CPU time and ours: this process with its reaped children (so a replaced
    worker's time does not vanish from "ours"), plus the live workers."""
    with open("/proc/stat") as f:
        total, busy = parse_proc_stat(f.read())
    with open("/proc/self/stat") as f:
        own = parse_pid_stat(f.read(), children=True)
    for pid in worker_pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                own += parse_pid_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue  # a worker that just exited: its time is gone from both sides soon
    return CpuSample(total, busy, own)


def load_between(before: CpuSample, after: CpuSample) -> float | None:
    """Other programs' share of all CPU time between two samples (0..1), None if no time passed."""
    total = after.total - before.total
    if total <= 0:
        return None
    others = (after.busy - before.busy) - (after.own - before.own)
    return min(1.0, max(0.0, others / total))


def cpu_count() -> int:
    """Cores this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
