"""``watch``'s progress line stays within 100 columns at the spec's largest job, with every
failure kind and a long reason for waiting: the bar gives way first, then the words are cut."""

from __future__ import annotations

from daemon.cli.jobs import watch_line


def counts(**kw):
    c = {"tasks": 100_000, "accepted": 0, "ok": 0, "failed": 0, "failures": {}, "cancelled": 0,
         "open": 100_000, "running": 0}
    c.update(kw)
    return c


def test_a_small_job_keeps_the_full_bar():
    line = watch_line(2, counts(tasks=4, running=1), "", None)
    assert line == "[####################>>>>>>>>>>..........] 2/4 ok, 0 failed, 1 running"


def test_100k_tasks_with_every_failure_kind_and_a_reason_fit_in_100_columns():
    kinds = {k: 9_999 for k in ("EXITED", "TRAPPED", "OUT_OF_FUEL", "OUT_OF_MEMORY",
                                "OUTPUT_TOO_LARGE", "REFUSED", "NO_AGREEMENT", "NO_RESULT")}
    c = counts(ok=99_999, accepted=99_999, failed=79_992, failures=kinds, running=100_000)
    cases = [watch_line(99_999, c, " ETA 99999 s", None),
             watch_line(0, counts(), "", "4 feasible volunteers for 10 replicas; " * 5),
             watch_line(50_000, counts(running=12_345), " ETA 12345 s", None)]
    for line in cases:
        assert len(line) <= 100, line
        assert line.startswith("[")
    assert "50,000/100,000 ok, 0 failed, 12,345 running ETA 12345 s" in cases[2]
    assert cases[0].endswith("...") and "99,999/100,000 ok, 79,992 failed (" in cases[0]
