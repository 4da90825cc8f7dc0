"""Workers that vanish: f+1 committee members reporting one unreachable release its replicas
at once, instead of at their lease (twice the wall limit and a minute)."""

from __future__ import annotations

from daemon.ledger.records import ReplicaOutcome
from daemon.ledger.state import UNREACHABLE_WINDOW_MS, JobLedger
from protocol.canonical import packb, unpackb
from protocol.messages import ledger as ops

from .ledger_helpers import MEMBERS, NOW_MS, WORKERS, Harness


def at(h: Harness, ms: int) -> None:
    for m in MEMBERS:
        h.call(m, ops.Tick(NOW_MS + ms))


def placed_on_one_worker():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    worker = h.ledger.jobs[job].tasks[0].replicas[0].worker
    mine = [r for t in h.ledger.jobs[job].tasks for r in t.replicas if r.worker == worker]
    return h, job, worker, mine


def test_f_plus_one_members_release_an_unreachable_workers_replicas():
    h, job, worker, mine = placed_on_one_worker()
    assert h.call(MEMBERS[0], ops.Unreachable(worker)) == {"reports": 1}
    assert all(r.outcome == ReplicaOutcome.PENDING for r in mine)  # one member may be the one cut off
    h.call(MEMBERS[0], ops.Unreachable(worker))
    assert all(r.outcome == ReplicaOutcome.PENDING for r in mine)  # nor does it count twice
    assert h.call(MEMBERS[1], ops.Unreachable(worker)) == {"released": len(mine)}
    assert all(r.outcome == ReplicaOutcome.TIMEOUT and "unreachable to 2" in r.detail for r in mine)
    assert h.ledger.workers[worker].timeouts == 1
    rec = h.ledger.jobs[job]
    assert all(h.ledger.open_slots(rec, t) for t in rec.tasks if any(r in mine for r in t.replicas))


def test_old_reports_do_not_add_up_and_a_word_from_the_worker_withdraws_them():
    h, job, worker, mine = placed_on_one_worker()
    h.call(MEMBERS[0], ops.Unreachable(worker))
    at(h, h.ledger.now_ms - NOW_MS + UNREACHABLE_WINDOW_MS + 1)
    assert h.call(MEMBERS[1], ops.Unreachable(worker)) == {"reports": 1}
    task, k = next((i, k) for i, t in enumerate(h.ledger.jobs[job].tasks)
                   for k, r in enumerate(t.replicas) if r.worker == worker)
    h.call(h.worker(worker), ops.Start(job, task, k))  # it is alive after all
    assert worker not in h.ledger.unreachable
    assert h.call(MEMBERS[2], ops.Unreachable(worker)) == {"reports": 1}
    assert all(r.outcome == ReplicaOutcome.PENDING for r in mine)


def test_only_members_report_and_claims_survive_a_snapshot():
    h, job, worker, _ = placed_on_one_worker()
    assert "only committee members" in h.call(WORKERS[3], ops.Unreachable(worker))["error"]
    # Claims about a node holding nothing are not kept: no member can grow the state with ids.
    assert h.call(MEMBERS[0], ops.Unreachable("12D3KooWNobody")) == {"reports": 0, "holds": 0}
    assert "12D3KooWNobody" not in h.ledger.unreachable
    h.call(MEMBERS[0], ops.Unreachable(worker))
    snap = h.ledger.snapshot()
    again = JobLedger([m.public_key for m in MEMBERS], f=1)
    again.restore(snap)
    assert again.unreachable == h.ledger.unreachable and again.snapshot() == snap
    old = packb(unpackb(snap)[:6])  # written before unreachable reports existed
    again.restore(old)
    assert again.unreachable == {}
