"""``daemon.jobs.planner``: the job's typical output size, which placement's link cost uses."""

from __future__ import annotations

from daemon.jobs.planner import expected_output_bytes

from tests.daemon.ledger.ledger_helpers import Harness


def test_the_median_accepted_output_and_zero_before_any() -> None:
    h = Harness()
    job = h.submit(4)
    h.place_all(job)
    rec = h.ledger.jobs[job]
    assert expected_output_bytes(rec) == 0
    for task, size in ((0, 100), (1, 3000), (2, 200)):
        for replica in range(len(rec.tasks[task].replicas)):
            h.report(job, task, replica, b"x" * size)
    assert [t.accepted is not None for t in rec.tasks] == [True, True, True, False]
    assert expected_output_bytes(rec) == 200
