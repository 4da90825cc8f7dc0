"""The owner's service: suspend and resume, settings changed live, the task log, the throttle.

One place answers "what is my machine doing, and why not more?": ``status`` carries ``work``
(taking tasks, or the reason in words: suspended by the owner, outside the volunteer's hours,
the machine is busy, the volunteer has left) and ``novacron status`` prints it on its own line.

Suspend means: take no new task, and let the ones running finish. Why finish rather than pause
them (as BOINC does): a task here is short and bounded by its wall-clock limit, its replica
holds a lease in the committee's ledger, and a paused replica would only time out and be run
again elsewhere; finishing it wastes nothing and the owner's machine is idle within one wall
limit. While suspended the node offers 0 slots in its capability record, so placement stops
choosing it; offers already on their way are declined and placed elsewhere at once. The
suspension is kept in the database, so a restarted daemon stays suspended.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import trio

from daemon.control.jsonrpc import REJECTED, RpcError
from daemon.control.params import get, only
from daemon.control.server import ControlServer
from daemon.owner.cgroup import CgroupUnavailable, CpuCgroup
from daemon.owner.settings import Settings, SettingsError, SettingsStore
from daemon.owner.standing import Standing
from daemon.owner.tasklog import TaskLog
from daemon.owner.throttle import Throttle, duty_cycle
from daemon.runtime.pool import WorkerPool
from daemon.runtime.volunteer import cpu_count
from daemon.storage.db import Database

if TYPE_CHECKING:
    from daemon.jobs.worker import WorkerDuties
    from daemon.softstate.service import SoftStateService

log = logging.getLogger("novacron.owner")

MAX_TASKS_LISTED = 1000
WORKER_OVERHEAD_MB = 512  # a worker's interpreter, wasmtime and compiled code, beside the task


class OwnerService:
    name = "owner"

    def __init__(self, db: Database, base: Settings, pool: WorkerPool) -> None:
        self.store = SettingsStore(db, base)
        self.tasks = TaskLog(db)
        self.pool = pool
        pool.on_run.append(self.tasks.on_run)
        self.soft: SoftStateService | None = None
        self.worker: WorkerDuties | None = None
        self.standing: Standing | None = None  # the committees' record of us (attach)
        self.cgroup: CpuCgroup | None = None  # set before _apply below uses it
        self.throttle = Throttle(self._duty, lambda: list(pool.worker_pids()), self._slowdown)
        self.changed = trio.Event()  # set (and replaced) on every change, for the web page
        self._apply(initial=True)

    # -- applying -------------------------------------------------------------------------------

    def _duty(self) -> float:
        return duty_cycle(self.store.current.cpu_share, cpu_count(), self.pool.size)

    def _slowdown(self, factor: float) -> None:
        self.pool.slowdown = factor

    def _apply(self, initial: bool = False) -> None:
        s = self.store.current
        if not initial or self.store.overrides:
            self.pool.reconfigure(s.prefs(), s.max_memory_mb)
        if self.store.overrides and initial:
            log.info("settings changed by the owner override the config file: %s "
                     "(`novacron settings --reset` to use the file's)",
                     ", ".join(f"{k}={v!r}" for k, v in sorted(self.store.overrides.items())))
        sus = self.store.suspension
        self.pool.suspend(sus.reason() if sus else None)
        if initial and sus:
            log.info("suspended by the owner: taking no tasks (`novacron resume` to take them)")
        self._offer_slots()
        self._apply_cgroup()
        changed, self.changed = self.changed, trio.Event()
        changed.set()

    def _offer_slots(self) -> None:
        """What the capability record offers: 0 while suspended (placement then skips us)."""
        soft = self.soft
        if soft is None or (self.worker is not None and self.worker.declining):
            return  # left the network: ``membership`` owns the record's slots
        slots = 0 if self.store.suspension else self.pool.size
        if soft.slots != slots or soft.memory_mib != self.store.current.max_memory_mb:
            soft.slots = slots
            soft.memory_mib = self.store.current.max_memory_mb
            try:
                soft.publish("owner settings")
            except Exception:  # noqa: BLE001 - not started yet: the first record carries it
                pass

    def attach(self, soft: SoftStateService, worker: WorkerDuties,
               standing: Standing | None = None) -> None:
        self.soft, self.worker, self.standing = soft, worker, standing

    # -- actions (control socket and web page) ---------------------------------------------------

    def suspend(self, by: str) -> dict[str, Any]:
        already = self.store.suspension is not None
        sus = self.store.suspend(by, time.time())
        if not already:
            log.info("suspended by the owner (%s): taking no new tasks; %d running will finish",
                     by, self.pool.running)
            self._apply()
        return {"state": "already suspended" if already else "suspended",
                "since": sus.since, "running": self.pool.running}

    def resume(self, by: str) -> dict[str, Any]:
        was = self.store.resume()
        if was:
            log.info("resumed by the owner (%s)", by)
            self._apply()
        return {"state": "resumed" if was else "not suspended", "work": self.work()}

    def change(self, changes: dict[str, Any], by: str) -> Settings:
        old = self.store.current
        new = self.store.change(changes)
        if new != old:
            log.info("settings changed by the owner (%s): %s", by, ", ".join(
                f"{k} {getattr(old, k)!r} -> {getattr(new, k)!r}"
                for k in new.to_dict() if getattr(old, k) != getattr(new, k)))
            self._apply()
        return new

    def reset(self, by: str) -> Settings:
        new = self.store.reset()
        log.info("settings reset by the owner (%s): the config file's apply", by)
        self._apply()
        return new

    def work(self) -> str:
        """Whether this node takes tasks now, and if not, why, in words."""
        if self.worker is not None and self.worker.declining:
            return f"taking no tasks: {self.worker.declining}"
        accepting, reason = self.pool.gate
        return "taking tasks" if accepting else f"taking no tasks: {reason}"

    # -- service --------------------------------------------------------------------------------

    def use_cgroup(self, cgroup: CpuCgroup) -> None:
        """Hold the CPU share with the kernel's quota on ``cgroup`` instead of pausing workers.
        Called before the pool spawns its workers, so none runs outside it."""
        self.cgroup = cgroup
        self.pool.on_spawn.append(cgroup.add)
        self.throttle.quota = (cgroup, lambda: (self.store.current.cpu_share, cpu_count()))
        self._apply_cgroup()

    def _apply_cgroup(self) -> None:
        """The workers' cgroup follows the settings now (the throttle re-checks the share every
        period too). Memory, where the cgroup can hold it (v2): every worker's task limit plus
        the runtime's own, as the systemd unit used to fix once at install."""
        if self.cgroup is None:
            return
        s = self.store.current
        self.throttle.apply_quota()
        self.cgroup.set_memory(self.pool.size * (s.max_memory_mb + WORKER_OVERHEAD_MB) << 20)

    def try_cgroup(self, tag: str) -> None:
        """Use a CPU cgroup where this machine lets the daemon make one; say which and why."""
        try:
            self.use_cgroup(CpuCgroup.create(tag))
            log.info("CPU share held by a %s (%s)", self.throttle.mechanism, self.cgroup.dir)
        except CgroupUnavailable as err:
            log.info("CPU share held by pausing and resuming workers: no CPU cgroup (%s)", err)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._offer_slots()
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                if self.standing is not None:
                    nursery.start_soon(self.standing.run)
                await self.throttle.run()
        finally:
            if self.cgroup is not None:
                self.cgroup.close()

    def settings_view(self) -> dict[str, Any]:
        return {"settings": self.store.current.to_dict(), "sources": self.store.sources(),
                "suspended": self.store.suspension is not None,
                "suspended_since": self.store.suspension.since if self.store.suspension else None,
                "workers": self.pool.size, "duty": round(self._duty(), 3),
                "cpu_limit": self.throttle.mechanism}

    def status(self) -> dict[str, Any]:
        t = self.tasks.totals
        s = self.store.current
        hours = f", hours {s.hours}" if s.hours else ""
        idle = ", idle only" if s.idle_only else ""
        summary = (f"cpu share {s.cpu_share:.0%}{hours}{idle}; {t['tasks']} task(s) run, "
                   f"{t['cpu_s'] / 3600:.2f} CPU-hours")
        out = {"health": "ok", "summary": summary, "work": self.work(),
               "totals": t, **self.settings_view()}
        if self.standing is not None:
            out["standing"] = self.standing.view()
        return out

    def register_rpc(self, server: ControlServer) -> None:
        server.register("suspend", self.rpc_suspend)
        server.register("resume", self.rpc_resume)
        server.register("settings", self.rpc_settings)
        server.register("tasks", self.rpc_tasks)

    async def rpc_suspend(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return self.suspend("command line")

    async def rpc_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return self.resume("command line")

    async def rpc_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """No params: show. ``set``: change some (applied now, kept). ``reset``: the file's."""
        only(params, "set", "reset")
        try:
            if get(params, "reset", bool, False):
                self.reset("command line")
            changes = get(params, "set", dict, {})
            if changes:
                self.change(changes, "command line")
        except SettingsError as err:
            raise RpcError(REJECTED, str(err)) from None
        return self.settings_view()

    async def rpc_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "limit")
        limit = get(params, "limit", int, 20)
        if not 1 <= limit <= MAX_TASKS_LISTED:
            raise RpcError(REJECTED, f"limit must be between 1 and {MAX_TASKS_LISTED}, got {limit}")
        return {"tasks": [asdict(r) for r in self.tasks.recent(limit)],
                "running": self.pool.running_tasks(),
                "totals": self.tasks.totals, "work": self.work()}
