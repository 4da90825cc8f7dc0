"""The task log: one line and one row per run, newest first, totals that pruning keeps."""

from __future__ import annotations

import logging

from daemon.owner import tasklog
from daemon.owner.tasklog import TaskLog
from daemon.runtime.outcome import TaskOutcome
from daemon.runtime.pool import RunRecord
from daemon.storage.db import Database
from protocol.messages.tasks import TaskStatus

HOUR = 3600.0
T0 = 1_800_000_000.0


def run(i: int, status: TaskStatus = TaskStatus.OK, at: float = T0) -> RunRecord:
    outcome = TaskOutcome(status, "ran" if status is TaskStatus.OK else "out of fuel",
                          fuel_used=1000 * i, wall_s=0.5)
    return RunRecord((bytes([i]) * 32, i, 1), outcome, at, cpu_s=0.25)


def test_each_run_is_one_log_line_and_one_row(tmp_path, caplog):
    log = TaskLog(Database(tmp_path / "node.db"))
    with caplog.at_level(logging.INFO, logger="novacron.tasks"):
        log.on_run(run(1))
        log.on_run(run(2, TaskStatus.OUT_OF_FUEL, T0 + HOUR))
    assert [r.message for r in caplog.records] == [
        "task 010101010101/1 replica 1: OK in 0.50 s (CPU 0.25 s, fuel 1,000)",
        "task 020202020202/2 replica 1: OUT_OF_FUEL in 0.50 s (CPU 0.25 s, fuel 2,000): out of fuel",
    ]
    recent = log.recent(10)
    assert [(r.task, r.outcome) for r in recent] == [(2, "OUT_OF_FUEL"), (1, "OK")]
    assert log.totals == {"tasks": 2, "ok": 1, "cpu_s": 0.5, "wall_s": 1.0,
                          "by_outcome": {"OK": 1, "OUT_OF_FUEL": 1}}
    hours = log.hourly(3, T0 + HOUR)
    assert [(h["tasks"], h["ok"], h["cpu_s"]) for h in hours] == [(0, 0, 0), (1, 1, 0.25), (1, 0, 0.25)]


def test_old_rows_are_pruned_but_totals_and_sequence_survive_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(tasklog, "KEEP", 5)
    db = Database(tmp_path / "node.db")
    log = TaskLog(db)
    for i in range(12):
        log.record(run(i))
    assert [r.task for r in log.recent(100)] == [11, 10, 9, 8, 7]
    db.close()
    again = TaskLog(Database(tmp_path / "node.db"))
    assert again.seq == 12 and again.totals["tasks"] == 12
    assert again.record(run(12)).seq == 13
    assert [r.task for r in again.recent(2)] == [12, 11]
