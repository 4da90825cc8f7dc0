"""CPU share enforced by the kernel: the workers in a cgroup of their own, under a CPU quota.

Why, beside the pause/resume duty cycle (``throttle``): a quota is exact and smooth (the
scheduler stops the workers for the rest of each 100 ms period, instead of SIGSTOP for most of
a second), costs no wake-ups, and also holds a worker that a busy daemon is slow to pause. It
needs a cgroup the daemon may write:

- **cgroup v2** (``cpu.max``): the daemon's own cgroup must be delegated to it: the systemd
  unit ``novacron service install`` writes sets ``Delegate=yes``; root also may. v2 forbids
  processes in a cgroup whose children have controllers ("no internal processes"), so the
  daemon first moves itself into a ``daemon`` leaf, then enables ``+cpu`` for the children and
  makes a ``workers`` leaf beside it.
- **cgroup v1** (``cpu.cfs_quota_us``): a ``novacron-PID`` child of the daemon's own ``cpu``
  cgroup, where that is writable (root, in most containers).

Otherwise ``CpuCgroup.create`` returns None with the reason, and the duty cycle does the job.
The quota is the volunteer's share of the whole machine (``share * cores`` CPUs' worth of time
per period): all workers together get at most that, whatever their number.

``quota_us`` and ``own_paths`` are pure; the rest writes files under the cgroup mount.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import DaemonError

log = logging.getLogger("novacron.cgroup")

PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel's floor for cfs quota
ROOT = Path("/sys/fs/cgroup")
CLOSE_TRIES = 5
CLOSE_BACKOFF_S = 0.05
"""``close`` tries to remove the cgroup this many times, waiting 50, 100, 200, 400 ms between."""
WEIGHT_V2 = 1
SHARES_V1 = 2
"""The workers' cgroup's CPU weight (v2 ``cpu.weight``, v1 ``cpu.shares``): the least there is.

A cgroup competes for the CPU as one entity, at its weight, with its siblings (the daemon and
whatever else runs beside it); the workers' ``nice 10`` counts only among themselves once they
are in a cgroup of their own. At the default weight the workers' group took as much CPU as the
daemon and everything beside it: with 30 daemons on two cores, the first job's 30 module
compiles took half the machine from the daemons (a likely part of why that job's committees
changed views on ``lan`` and on ``planet``). At the least weight the workers run on what the
daemon and the volunteer's other programs leave, as BOINC's applications do; the quota above
still caps what they take of an idle machine."""


def quota_us(cpu_share: float, cores: int, period_us: int = PERIOD_US) -> int:
    """CPU time per period for ``cpu_share`` of ``cores`` CPUs (never below the kernel's floor)."""
    return max(MIN_QUOTA_US, round(cpu_share * max(1, cores) * period_us))


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 hierarchy is under the key ``""``."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            out[name] = path
    return out


class CgroupUnavailable(DaemonError):
    """No writable cgroup with a CPU controller; the message says why, in words."""


@dataclass
class CpuCgroup:
    """The workers' cgroup. ``add`` each worker at spawn; ``set_share`` on every change."""

    version: int
    dir: Path
    home: Path  # where a worker still alive at ``close`` goes back to
    made: list[Path]  # the directories we created, removed (deepest first) by ``close``

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version} CPU quota"

    @classmethod
    def create(cls, tag: str, *, root: Path = ROOT, proc_cgroup: str | None = None) -> CpuCgroup:
        """The workers' cgroup, made now. Raises CgroupUnavailable (with why) if none can be."""
        text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
        paths = own_paths(text)
        reasons = []
        for make in (cls._v2, cls._v1):
            try:
                return make(tag, root, paths)
            except CgroupUnavailable as err:
                reasons.append(str(err))
            except OSError as err:
                reasons.append(f"{err.strerror or err} ({err.filename})")
        raise CgroupUnavailable("; ".join(reasons))

    @classmethod
    def _v2(cls, tag: str, root: Path, paths: dict[str, str]) -> CpuCgroup:
        mount = root if (root / "cgroup.controllers").exists() else root / "unified"
        if "" not in paths or not (mount / "cgroup.controllers").exists():
            raise CgroupUnavailable("no cgroup v2 hierarchy")
        own = mount / paths[""].lstrip("/")
        if "cpu" not in (own / "cgroup.controllers").read_text().split():
            raise CgroupUnavailable(f"cgroup v2: no cpu controller delegated to {paths['']}")
        made: list[Path] = []
        home = own
        if own != mount and (own / "cgroup.procs").read_text().split():
            home = own / "daemon"  # "no internal processes": the daemon moves to a leaf first
            _mkdir(home, made)
            for pid in (own / "cgroup.procs").read_text().split():
                _move(home, int(pid))
        wanted = {"cpu", "memory"} & set((own / "cgroup.controllers").read_text().split())
        (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
        workers = own / f"novacron-workers-{tag}"
        _take(workers, made)
        _least_weight(workers / "cpu.weight", WEIGHT_V2)
        return cls(2, workers, home, made)

    @classmethod
    def _v1(cls, tag: str, root: Path, paths: dict[str, str]) -> CpuCgroup:
        mount = root / "cpu"
        if "cpu" not in paths or not (mount / "cpu.cfs_quota_us").exists():
            raise CgroupUnavailable("no cgroup v1 cpu controller")
        own = mount / paths["cpu"].lstrip("/")
        _sweep_stale(own)
        made: list[Path] = []
        workers = own / f"novacron-workers-{tag}"
        _take(workers, made)
        (workers / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        _least_weight(workers / "cpu.shares", SHARES_V1)
        return cls(1, workers, own, made)

    def set_share(self, cpu_share: float, cores: int) -> None:
        quota = quota_us(cpu_share, cores)
        if self.version == 2:
            (self.dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.dir / "cpu.cfs_quota_us").write_text(str(quota))

    def set_memory(self, limit_bytes: int) -> bool:
        """cgroup v2 only: all workers together may use at most this much memory (a second
        line behind each task's own limit). False where this cgroup cannot say it (v1)."""
        if self.version != 2:
            return False
        (self.dir / "memory.max").write_text(str(limit_bytes))
        return True

    def quota(self) -> tuple[int, int]:
        """(quota, period) in microseconds, as the kernel has it now."""
        if self.version == 2:
            quota, period = (self.dir / "cpu.max").read_text().split()
            return (int(quota) if quota != "max" else -1, int(period))
        return (int((self.dir / "cpu.cfs_quota_us").read_text()),
                int((self.dir / "cpu.cfs_period_us").read_text()))

    def add(self, pid: int) -> bool:
        """Put a worker in; False (and a log line) if it could not be, e.g. it already exited."""
        try:
            _move(self.dir, pid)
            return True
        except OSError as err:
            if err.errno != errno.ESRCH:
                log.warning("could not put worker %d under the CPU quota: %s", pid, err)
            return False

    def pids(self) -> list[int]:
        return [int(p) for p in (self.dir / "cgroup.procs").read_text().split()]

    def close(self) -> None:
        """Remove the directories we made; a worker still exiting goes back to ``home`` first.
        A worker spawned meanwhile (a slot replacing one during shutdown) can keep the
        directory busy, as can one whose exit the kernel has not finished (its rmdir fails with
        EBUSY for a moment after the process is reaped, more often on a loaded machine): it is
        tried again with a short back-off (under a second in all), and whatever is left is
        swept by the next daemon's ``create`` once its owner is dead."""
        for attempt in range(CLOSE_TRIES):
            if attempt:
                time.sleep(CLOSE_BACKOFF_S * 2 ** (attempt - 1))
            try:
                for pid in self.pids():
                    try:
                        _move(self.home, pid)
                    except OSError:
                        pass  # it exited meanwhile
            except OSError:
                pass
            if self._remove_made():
                return

    def _remove_made(self) -> bool:
        done = True
        for path in reversed(self.made):
            if path.name == "daemon" or not path.exists():
                continue  # the daemon itself is still in its leaf
            try:
                path.rmdir()
            except OSError as err:
                done = False
                log.info("cgroup %s left behind for now: %s", path, err.strerror)
        return done


def _take(workers: Path, made: list[Path]) -> None:
    """Make the workers' leaf, or take over the one already there: its tag is our pid, so it
    was left by an earlier process with this pid whose ``close`` found it busy (the sweep
    keeps it, since its owner looks alive: us). Taken over, ``close`` removes it; left
    alone, it outlived this daemon too."""
    _mkdir(workers, made)
    if workers not in made:
        made.append(workers)


def _mkdir(path: Path, made: list[Path]) -> None:
    try:
        path.mkdir()
        made.append(path)
    except FileExistsError:
        pass


def _least_weight(path: Path, weight: int) -> None:
    """Best effort: a cgroup whose weight cannot be set still holds the quota (and says so)."""
    try:
        path.write_text(str(weight))
    except OSError as err:
        log.warning("workers' cgroup keeps its default CPU weight (%s): they compete with the "
                    "daemon at full weight", err.strerror or err)


def _move(cgroup: Path, pid: int) -> None:
    (cgroup / "cgroup.procs").write_text(str(pid))


def _sweep_stale(own: Path) -> None:
    """Remove the empty worker cgroups of daemons that died without cleaning up (kill -9)."""
    for stale in own.glob("novacron-workers-*"):
        try:
            pid = int(stale.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            continue  # its daemon is alive
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        try:
            stale.rmdir()
        except OSError:
            pass
