"""The task log: every task this machine ran, one line in ``node.log`` and one row in SQLite.

Why: a volunteer asks "what has my machine been doing?" (BOINC's task list, Golem's provider
log). ``novacron tasks`` and the local web page read the rows back; ``node.log`` gets one line
per run so a plain ``grep`` answers the same question.

Layout in the node's database: namespace ``tasks`` keeps the last ``KEEP`` runs under an 8-byte
sequence number (oldest pruned as new ones come); ``contrib`` keeps per-hour totals (tasks, OK
tasks, CPU seconds) for the last ``KEEP_HOURS`` hours, and ``owner/totals`` the totals since
the node began, which pruning never loses. Values are msgpack.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from daemon.runtime.pool import RunRecord
from daemon.storage.db import Database
from protocol.messages.tasks import TaskStatus

log = logging.getLogger("novacron.tasks")

KEEP = 2000
KEEP_HOURS = 24 * 30
_NS, _HOURS, _TOTALS = "tasks", "contrib", ("owner", "totals")


@dataclass(frozen=True, slots=True)
class TaskRun:
    seq: int
    started: float  # wall-clock seconds
    job: str  # hex job id ("" when the pool was called without one)
    task: int
    replica: int
    outcome: str  # TaskStatus name
    detail: str
    wall_s: float
    cpu_s: float
    fuel: int

    def line(self) -> str:
        what = f"task {self.job[:12]}/{self.task} replica {self.replica}" if self.job else "task"
        return (f"{what}: {self.outcome} in {self.wall_s:.2f} s (CPU {self.cpu_s:.2f} s, "
                f"fuel {self.fuel:,})" + ("" if self.outcome == "OK" else f": {self.detail}"))


class TaskLog:
    """Observer of the worker pool (``pool.on_run``) and reader for ``novacron tasks``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        last = db.scan(_NS)
        self.seq = int.from_bytes(last[-1][0], "big") if last else 0
        raw = db.get(*_TOTALS)
        self.totals: dict[str, Any] = msgpack.unpackb(raw) if raw else {
            "tasks": 0, "ok": 0, "cpu_s": 0.0, "wall_s": 0.0, "by_outcome": {}}
        self.totals.setdefault("wall_s", 0.0)

    def record(self, run: RunRecord) -> TaskRun:
        self.seq += 1
        job, task, replica = run.origin or (b"", -1, -1)
        o = run.outcome
        entry = TaskRun(self.seq, run.started, job.hex(), task, replica, TaskStatus(o.status).name,
                        o.detail[:300], round(o.wall_s, 4), round(run.cpu_s, 3), o.fuel_used)
        log.info("%s", entry.line())
        t = self.totals
        t["tasks"] += 1
        t["ok"] += entry.outcome == "OK"
        t["cpu_s"] += entry.cpu_s
        t["wall_s"] += entry.wall_s
        t["by_outcome"][entry.outcome] = t["by_outcome"].get(entry.outcome, 0) + 1
        hour = int(run.started // 3600)
        key = hour.to_bytes(8, "big")
        raw = self.db.get(_HOURS, key)
        tasks, ok, cpu = msgpack.unpackb(raw) if raw else (0, 0, 0.0)
        with self.db.transaction():
            self.db.put(_NS, self.seq.to_bytes(8, "big"), msgpack.packb(list(asdict(entry).values())))
            self.db.put(_HOURS, key, msgpack.packb([tasks + 1, ok + (entry.outcome == "OK"),
                                                    cpu + entry.cpu_s]))
            self.db.put(*_TOTALS, msgpack.packb(t))
            if self.seq > KEEP:
                self.db.delete_range(_NS, b"\0" * 8, (self.seq - KEEP + 1).to_bytes(8, "big"))
            if not raw:
                self.db.delete_range(_HOURS, b"\0" * 8, (hour - KEEP_HOURS + 1).to_bytes(8, "big"))
        return entry

    def on_run(self, run: RunRecord) -> None:
        self.record(run)

    def recent(self, limit: int = 50) -> list[TaskRun]:
        """The last ``limit`` runs, newest first."""
        rows = self.db.scan(_NS)[-max(1, limit):]
        return [TaskRun(*msgpack.unpackb(v)) for _, v in reversed(rows)]

    def hourly(self, hours: int, now: float) -> list[dict[str, Any]]:
        """Per-hour totals for the last ``hours`` hours, oldest first (hours with no task too)."""
        last = int(now // 3600)
        rows = {int.from_bytes(k, "big"): msgpack.unpackb(v) for k, v in self.db.scan(_HOURS)}
        out = []
        for hour in range(last - hours + 1, last + 1):
            tasks, ok, cpu = rows.get(hour, (0, 0, 0.0))
            out.append({"hour": hour * 3600, "tasks": tasks, "ok": ok, "cpu_s": round(cpu, 3)})
        return out
