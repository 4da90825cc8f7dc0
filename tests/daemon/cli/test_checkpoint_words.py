"""`status` and `watch` say how many open tasks have an agreed checkpoint (resumable jobs)."""

from daemon.cli.jobs import _line


def _status(**counts):
    base = {"tasks": 8, "accepted": 2, "ok": 2, "failed": 0, "failures": {}, "cancelled": 0,
            "open": 6, "running": 6, "agreed": {"2": 2}}
    return {"name": "life", "state": "open", "counts": {**base, **counts}}


def test_the_status_line_counts_checkpointed_tasks_only_when_there_are_some():
    assert _line(_status()) == "life: open: 2/8 ok, 0 failed, 6 running"
    line = _line(_status(checkpointed=5))
    assert line == "life: open: 2/8 ok, 0 failed, 6 running (5 checkpointed)"
    assert len(line) <= 100
