"""The job ledger as a pure state machine: acceptance by quorum, disagreement, leases,
deadlines, adaptive replication, who may do what, and snapshots."""

import dataclasses
import hashlib

import pytest

from consensus.statemachine import ClientRequest
from daemon.ledger.reputation import TRUST_AFTER, spot_checked
from daemon.ledger.events import JobEnded, Offered
from daemon.ledger.records import JobState, ReplicaOutcome, TaskState
from daemon.ledger.placing import used_workers
from daemon.ledger.state import JobLedger
from protocol.canonical import packb, unpackb
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskStatus
from tests.daemon.ledger.ledger_helpers import MEMBERS, NOW_MS, SUBMITTER, WORKERS, Harness, ident


def test_submit_place_and_accept_by_quorum():
    h = Harness()
    job = h.submit(3)
    assert h.ledger.jobs[job].counts()["open"] == 3
    reply = h.place_all(job)
    assert reply["placed"] == 3 and reply["refused"] == []
    events = h.ledger.drain_events()
    offers = [e for e in events if isinstance(e, Offered)]
    assert len(offers) == 6  # 3 tasks x 2 replicas
    for t in range(3):
        workers = [r.worker for r in h.ledger.jobs[job].tasks[t].replicas]
        assert len(set(workers)) == 2  # distinct workers, distinct failure domains
        h.report(job, t, 0, b"answer%d" % t)
        assert h.ledger.jobs[job].tasks[t].state == "open"  # one result is not a quorum
        h.report(job, t, 1, b"answer%d" % t)
        assert h.ledger.jobs[job].tasks[t].state == TaskState.ACCEPTED
    assert h.ledger.jobs[job].state == JobState.DONE
    assert JobEnded(job, JobState.DONE) in h.ledger.drain_events()
    agreed = [w for w, r in h.ledger.workers.items() if r.agreed]
    assert len(agreed) >= 2


def test_disagreement_adds_a_replica_and_the_liar_loses_reputation():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"right")
    h.report(job, 0, 1, b"wrong")
    task = h.ledger.jobs[job].tasks[0]
    assert task.state == "open" and h.ledger.open_slots(h.ledger.jobs[job], task) == 1
    liar = task.replicas[1].worker
    h.place_all(job)
    assert len(task.replicas) == 3 and task.replicas[2].worker not in {r.worker for r in task.replicas[:2]}
    h.report(job, 0, 2, b"right")
    assert task.state == TaskState.ACCEPTED and task.accepted[1] == b"right".ljust(32, b"\0")
    assert task.replicas[1].outcome == ReplicaOutcome.DISAGREED and task.replicas[0].outcome == ReplicaOutcome.AGREED
    assert h.ledger.workers[liar].disagreed == 1
    assert h.ledger.reputation(liar) < h.ledger.reputation(task.replicas[0].worker)
    # Each volunteer's node reads its own record (for its owner's page) as an ordered query.
    mine = h.call(WORKERS[0], ops.WorkerQuery(liar))
    assert (mine["known"], mine["agreed"], mine["disagreed"]) == (True, 0, 1)
    assert mine["reputation"] == round(h.ledger.reputation(liar), 4) and not mine["trusted"]
    honest = h.call(WORKERS[0], ops.WorkerQuery(task.replicas[0].worker))
    assert honest["agreed"] == 1 and honest["reputation"] > mine["reputation"]
    stranger = h.call(WORKERS[0], ops.WorkerQuery(ident(999).node_id))
    assert stranger["known"] is False and stranger["agreed"] == 0


def test_a_lone_liar_never_gets_a_result_accepted():
    h = Harness(max_replicas=3)
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"a")
    h.report(job, 0, 1, b"b")
    h.place_all(job)
    h.report(job, 0, 2, b"c")  # three different answers, budget spent
    task = h.ledger.jobs[job].tasks[0]
    assert task.state == TaskState.FAILED and task.accepted is None


def test_node_faults_do_not_vote_and_the_slot_is_placed_again():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"x", status=int(TaskStatus.CRASHED))
    task = h.ledger.jobs[job].tasks[0]
    assert task.replicas[0].outcome == ReplicaOutcome.TIMEOUT
    assert h.ledger.open_slots(h.ledger.jobs[job], task) == 1


def test_deterministic_task_errors_are_results_too():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"", status=int(TaskStatus.TRAPPED))
    h.report(job, 0, 1, b"", status=int(TaskStatus.TRAPPED))
    assert h.ledger.jobs[job].tasks[0].accepted[0] == TaskStatus.TRAPPED


def test_replicas_that_exit_with_different_codes_disagree():
    """The same output with another exit code is another result: a cheater cannot turn a
    program's "exit 2" into "exit 1" by copying its output."""
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"same", status=int(TaskStatus.EXITED), exit_code=2)
    h.report(job, 0, 1, b"same", status=int(TaskStatus.EXITED), exit_code=1)
    task = h.ledger.jobs[job].tasks[0]
    assert task.state == "open" and task.accepted is None
    h.place_all(job)
    h.report(job, 0, 2, b"same", status=int(TaskStatus.EXITED), exit_code=2)
    assert task.state == TaskState.ACCEPTED and task.accepted[3] == 2
    assert task.replicas[1].outcome == ReplicaOutcome.DISAGREED


def test_lease_expiry_via_member_ticks():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    lease = h.ledger.jobs[job].lease_ms
    h.tick_all(NOW_MS + lease + 1)
    task = h.ledger.jobs[job].tasks[0]
    assert [r.outcome for r in task.replicas] == [ReplicaOutcome.TIMEOUT, ReplicaOutcome.TIMEOUT]
    assert h.ledger.open_slots(h.ledger.jobs[job], task) == 2


def test_a_worker_whose_replica_timed_out_may_take_the_task_again_but_not_one_it_counts_on():
    """A one-node network whose only volunteer restarted mid-task: the lost replica times out
    and the same volunteer must be able to run the task again, or it stays open for ever. A
    worker with a running replica, a result or a caught checkpoint still may not."""
    h = Harness()
    job = h.submit(1, replicas=1, quorum=1)
    only = WORKERS[:1]
    assert h.place_all(job, workers=only)["placed"] == 1
    task = h.ledger.jobs[job].tasks[0]
    assert h.place_all(job, workers=only).get("placed", 0) == 0  # its replica still runs
    h.tick_all(NOW_MS + h.ledger.jobs[job].lease_ms + 1)
    assert [r.outcome for r in task.replicas] == [ReplicaOutcome.TIMEOUT]
    assert h.place_all(job, workers=only)["placed"] == 1
    assert [r.worker for r in task.replicas] == [only[0].node_id] * 2
    h.report(job, 0, 1, b"out")
    assert task.state == TaskState.ACCEPTED and task.agreed == 1
    # Proposed by hand, a worker that disagreed may not come back.
    job2 = h.submit(1, replicas=2, quorum=2)
    h.place_all(job2, workers=WORKERS[:2])
    h.report(job2, 0, 0, b"a")
    h.report(job2, 0, 1, b"b")
    t2 = h.ledger.jobs[job2].tasks[0]
    assert used_workers(t2) == {WORKERS[0].node_id, WORKERS[1].node_id}


def test_a_worker_that_failed_a_task_takes_it_again_only_when_nobody_else_can():
    """A volunteer that cannot reach the submitter fails a task at once (CRASHED: its module
    would not come). It was handed the same task again and again until its replicas ran out;
    now the task goes to the other volunteers first, and back to it only when they are spent.
    A proposal that hands it back while another volunteer is free is refused by every replica."""
    from daemon.ledger.placing import expected_duration, majority_runtime, propose, task_runtime

    h = Harness(max_replicas=6)
    job = h.submit(1, replicas=1, quorum=1)
    three = WORKERS[:3]
    task = h.ledger.jobs[job].tasks[0]
    for k in range(3):
        assert h.place_all(job, workers=three)["placed"] == 1
        h.report(job, 0, k, b"", status=int(TaskStatus.CRASHED))
    assert sorted(r.worker for r in task.replicas) == sorted(w.node_id for w in three)
    assert h.place_all(job, workers=three)["placed"] == 1  # all three failed it: one goes again
    assert task.replicas[3].worker in {w.node_id for w in three}
    h.report(job, 0, 3, b"out")
    assert task.state == TaskState.ACCEPTED

    job2 = h.submit(1, replicas=1, quorum=1)
    h.place_all(job2, workers=WORKERS[:2])
    t2 = h.ledger.jobs[job2].tasks[0]
    failed = t2.replicas[0].worker
    h.report(job2, 0, 0, b"", status=int(TaskStatus.CRASHED))
    jobrec = h.ledger.jobs[job2]
    cands = h.candidates(WORKERS[:2])
    duration = expected_duration(jobrec.spec, jobrec.runtimes_ms)
    _, honest = propose(job2, 0, jobrec.spec, 1, cands, set(), h.reputation(),
                        h.ledger.now_ms, duration, task_runtime(t2, majority_runtime(cands)),
                        retried={failed})
    assert honest.workers and honest.workers[0] != failed
    back = ops.TaskAssignment(0, (failed,), honest.explanation)
    reply = h.call(MEMBERS[0], ops.Place(job2, h.ledger.now_ms, duration[0], cands, (back,)))
    assert reply["placed"] == 0 and "not among the candidates" in reply["refused"][0][1], reply

    # The others are busy (queues full): the task waits for them. The one that failed it is
    # idle because it fails everything at once; near a job's end it was the only one with room.
    busy = tuple(dataclasses.replace(c, load_permille=1000) if c.node_id != failed else c
                 for c in cands)
    h.place_all(job2, cands=busy)
    assert len(t2.replicas) == 1  # nobody placed: it waits
    h.place_all(job2, cands=cands)
    assert len(t2.replicas) == 2 and t2.replicas[-1].worker != failed


def test_ledger_clock_ignores_f_byzantine_members():
    h = Harness()
    h.call(MEMBERS[3], ops.Tick(NOW_MS + 10**9))  # one liar jumps ahead
    assert h.ledger.now_ms == NOW_MS
    h.call(MEMBERS[2], ops.Tick(NOW_MS + 5000))
    assert h.ledger.now_ms == NOW_MS + 5000  # f+1 = 2 members at or past it
    assert "error" in h.call(WORKERS[0], ops.Tick(NOW_MS + 10**9))


def test_deadline_fails_unfinished_tasks():
    h = Harness()
    job = h.submit(2, deadline_s=600)
    h.place_all(job)
    h.report(job, 0, 0, b"a")
    h.report(job, 0, 1, b"a")
    h.tick_all(NOW_MS + 601_000)
    tasks = h.ledger.jobs[job].tasks
    assert (tasks[0].state, tasks[1].state) == (TaskState.ACCEPTED, TaskState.FAILED)
    assert h.ledger.jobs[job].state == JobState.DONE


def _place_with_a_trusted_worker(adaptive: bool, alone: bool = False):
    """``alone``: each first placement names only the trusted worker (as when the other
    workers' queues are full), not both."""
    h = Harness(replicas=2, quorum=2, adaptive=adaptive)
    trusted = WORKERS[0].node_id
    rec = h.ledger._worker(trusted)
    rec.agreed = rec.run = TRUST_AFTER
    job = h.submit(40)
    cands = h.candidates([WORKERS[0], WORKERS[1]])
    named = (trusted,) if alone else (trusted, WORKERS[1].node_id)
    assignments = tuple(ops.TaskAssignment(t, named, {}) for t in range(40))
    # Bypass the optimality check: we only test the replication rule here.
    import daemon.ledger.placing as placing
    orig = placing.check_proposal
    placing.check_proposal = lambda *a, **k: (None, {})
    try:
        h.call(MEMBERS[0], ops.Place(job, h.ledger.now_ms, 15_000, cands, assignments))
    finally:
        placing.check_proposal = orig
    return h, job


def test_quorum_as_asked_even_on_a_trusted_worker_unless_the_job_asks_for_adaptive():
    h, job = _place_with_a_trusted_worker(adaptive=False)
    tasks = h.ledger.jobs[job].tasks
    assert all(len(t.replicas) == 2 and t.quorum == 2 for t in tasks)


def test_adaptive_replication_when_asked_and_only_for_a_long_clean_record():
    h, job = _place_with_a_trusted_worker(adaptive=True)
    tasks = h.ledger.jobs[job].tasks
    singles = [i for i, t in enumerate(tasks) if len(t.replicas) == 1]
    assert singles and len(singles) < 40
    assert all(not spot_checked(job, i) for i in singles)  # spot-checked tasks keep 2 replicas
    assert all(tasks[i].quorum == 1 for i in singles)
    # The counts say how many volunteers agreed, task by task: 1 for the singles.
    for i, t in enumerate(tasks):
        for k, r in enumerate(t.replicas):
            h.call(next(w for w in WORKERS if w.node_id == r.worker),
                   ops.Result(job, i, k, 0, 0, b"\x07" * 32, 3, 1, ""))
    counts = h.ledger.jobs[job].counts()
    assert counts["agreed"] == {"1": len(singles), "2": 40 - len(singles)}
    assert (counts["ok"], counts["failed"]) == (40, 0)
    # A new worker never runs alone:
    h2 = Harness(adaptive=True)
    job2 = h2.submit(20)
    h2.place_all(job2)
    assert all(len(t.replicas) == 2 for t in h2.ledger.jobs[job2].tasks)


def test_adaptive_replication_also_when_the_first_placement_names_one_trusted_worker():
    """Under full queues a task's first placement names one worker; if that one is trusted
    the task runs alone as it would have with two named (it used to keep quorum 2, so on a
    busy network adaptive replication seldom applied)."""
    h, job = _place_with_a_trusted_worker(adaptive=True, alone=True)
    tasks = h.ledger.jobs[job].tasks
    singles = {i for i, t in enumerate(tasks) if t.quorum == 1}
    assert singles == {i for i in range(40) if not spot_checked(job, i)}
    assert all(len(t.replicas) == 1 for t in tasks)
    checked = [t for i, t in enumerate(tasks) if i not in singles]
    assert checked and all(t.quorum == 2 and h.ledger.open_slots(h.ledger.jobs[job], t) == 1
                           for t in checked)  # a spot-checked task still waits for a second
    h2, job2 = _place_with_a_trusted_worker(adaptive=False, alone=True)
    assert all(t.quorum == 2 for t in h2.ledger.jobs[job2].tasks)


def test_agreed_failures_count_as_failed_by_kind():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    tasks = h.ledger.jobs[job].tasks
    err = hashlib.sha256(b"bad input\n").digest()
    for i, t in enumerate(tasks):
        status, code = (0, 0) if i == 0 else (int(TaskStatus.EXITED), 2)
        for k, r in enumerate(t.replicas):
            h.call(next(w for w in WORKERS if w.node_id == r.worker),
                   ops.Result(job, i, k, status, code, b"\x07" * 32, 3, 1, "", err, 10))
    counts = h.ledger.jobs[job].counts()
    assert (counts["accepted"], counts["ok"], counts["failed"]) == (3, 1, 2)
    assert counts["failures"] == {"EXITED": 2}
    assert tasks[1].accepted == (int(TaskStatus.EXITED), b"\x07" * 32, 3, 2, err, 10)
    # Replicas that agree on the output but not on the stderr disagree.
    job2 = h.submit(1)
    h.place_all(job2)
    t = h.ledger.jobs[job2].tasks[0]
    for k, r in enumerate(t.replicas):
        h.call(next(w for w in WORKERS if w.node_id == r.worker),
               ops.Result(job2, 0, k, 0, 0, b"\x07" * 32, 3, 1, "", bytes([k]) * 32, 1))
    assert t.state == TaskState.OPEN and h.ledger.open_slots(h.ledger.jobs[job2], t) == 1
    assert all(r.outcome != ReplicaOutcome.AGREED for r in t.replicas)


def test_who_may_do_what():
    h = Harness()
    job = h.submit(1)
    refused = h.call(WORKERS[0], ops.Place(job, NOW_MS, 15_000, (), ()))
    assert "only committee members" in refused["error"]
    assert "only the job's submitter" in h.call(WORKERS[0], ops.Cancel(job))["error"]
    h.place_all(job)
    rep = h.ledger.jobs[job].tasks[0].replicas[0]
    stranger = next(w for w in WORKERS if w.node_id != rep.worker)
    reply = h.call(stranger, ops.Result(job, 0, 0, 0, 0, b"\0" * 32, 0, 0, ""))
    assert "not assigned to you" in reply["error"]
    assert h.call(SUBMITTER, ops.Cancel(job))["state"] == "cancelled"


def test_bad_placements_are_refused_by_every_replica():
    h = Harness()
    job = h.submit(1)
    cands = h.candidates()
    dup = ops.TaskAssignment(0, (WORKERS[0].node_id, WORKERS[0].node_id), {})
    outsider = ops.TaskAssignment(0, ("12D3KooWNotACandidate",), {})
    r1 = h.call(MEMBERS[0], ops.Place(job, NOW_MS, 15_000, cands, (dup,)))
    r2 = h.call(MEMBERS[0], ops.Place(job, NOW_MS, 15_000, cands, (outsider,)))
    assert r1["placed"] == r2["placed"] == 0
    # a valid but worse choice than the rule's is refused too
    worst = ops.TaskAssignment(0, (WORKERS[6].node_id, WORKERS[7].node_id), {})
    r3 = h.call(MEMBERS[0], ops.Place(job, NOW_MS, 15_000, tuple(
        c if c.node_id not in {WORKERS[6].node_id, WORKERS[7].node_id}
        else ops.CandidateWire(c.node_id, c.availability, c.cores, c.memory_mib, c.runtimes,
                               c.attestation, 900, c.link_ms, c.domain, 0)
        for c in cands), (worst,)))
    assert r3["placed"] == 0 and r3["refused"]


def test_snapshot_round_trip_is_exact():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    h.report(job, 0, 0, b"a")
    snap = h.ledger.snapshot()
    other = JobLedger([m.public_key for m in MEMBERS], f=1)
    other.restore(snap)
    assert other.snapshot() == snap
    h.report(job, 0, 1, b"a")
    assert h.ledger.snapshot() != snap


def test_garbage_operations_get_an_error_reply():
    from protocol.canonical import packb, unpackb

    ledger = JobLedger([m.public_key for m in MEMBERS], f=1)
    for junk in [b"", b"\x92\x63\x90", b"\x92\x01\x91\x01", b"\xc1"]:
        reply = unpackb(ledger.apply(ClientRequest(SUBMITTER.public_key, 1, junk, b"")))
        assert "malformed operation" in reply["error"]


def test_query_reads_counts_tasks_and_detail():
    h = Harness()
    job = h.submit(3)
    h.place_all(job)
    h.report(job, 1, 0, b"z")
    h.report(job, 1, 1, b"z")
    q = h.call(WORKERS[5], ops.Query(job, 0, 10, False))
    assert q["counts"]["accepted"] == 1 and q["counts"]["open"] == 2
    assert [t["state"] for t in q["tasks"]] == ["open", TaskState.ACCEPTED, "open"]
    assert q["tasks"][1]["result"][1] == b"z".ljust(32, b"\0")
    d = h.call(SUBMITTER, ops.Query(job, 1, 1, True))["tasks"][0]
    assert len(d["replicas"]) == 2 and all(r["outcome"] == ReplicaOutcome.AGREED for r in d["replicas"])
    assert d["explanation"] is not None
    assert h.ledger.jobs[job].counts() == {  # reads changed nothing
        "tasks": 3, "accepted": 1, "ok": 1, "failed": 0, "failures": {}, "cancelled": 0,
        "open": 2, "running": 0, "agreed": {"2": 1}}
    assert "no job" in h.call(SUBMITTER, ops.Query(b"\x09" * 32, 0, 1, False))["error"]


def test_a_batch_of_placements_spreads_over_idle_workers():
    from collections import Counter as C

    h = Harness()
    job = h.submit(24)
    reply = h.place_all(job)
    assert reply["placed"] == 24
    per_worker = C(r.worker for t in h.ledger.jobs[job].tasks for r in t.replicas)
    assert len(per_worker) == len(WORKERS)  # every idle worker got work
    assert max(per_worker.values()) - min(per_worker.values()) <= 2


def test_saturated_workers_wait_instead_of_piling_up():
    from daemon.ledger.placing import QUEUE_CAP

    h = Harness()
    job = h.submit(80)
    h.place_all(job)
    per_worker = {}
    for t in h.ledger.jobs[job].tasks:
        for r in t.replicas:
            per_worker[r.worker] = per_worker.get(r.worker, 0) + 1
    # 8 workers of 4 slots each, at most QUEUE_CAP tasks per slot now, the rest later
    assert max(per_worker.values()) <= 4 * QUEUE_CAP
    placed = sum(per_worker.values())
    assert placed <= 8 * 4 * QUEUE_CAP < 160
    assert sum(h.ledger.open_slots(h.ledger.jobs[job], t) for t in h.ledger.jobs[job].tasks) == 160 - placed


def test_a_batch_applies_each_operation_in_order_and_answers_each():
    h = Harness()
    job = h.submit(2)
    h.place_all(job)
    t0 = h.ledger.jobs[job].tasks[0]
    worker = h.worker(t0.replicas[0].worker)
    items = (ops.encode_op(ops.Start(job, 0, 0)),
             ops.encode_op(ops.Result(job, 0, 0, 0, 0, b"r".ljust(32, b"\0"), 1, 1, "")),
             b"\xc1garbage",
             ops.encode_op(ops.Batch(())))
    reply = h.call(worker, ops.Batch(items))["replies"]
    assert reply[0] == {"state": "pending"} and reply[1]["state"] == "pending"
    assert "malformed" in reply[2]["error"] and "cannot hold a batch" in reply[3]["error"]
    assert t0.replicas[0].started and t0.replicas[0].result is not None


def test_a_large_job_arrives_in_chunks_and_is_placed_only_when_complete():
    from daemon.jobs.spec import JobSpec
    from daemon.jobs.submitter import to_submit

    spec = JobSpec(name="big", module=b"\0asm\1\0\0\0", argv=("x",),
                   inputs=tuple(f"{i} 100000\n".encode() for i in range(5000)))
    op, more, _ = to_submit(spec, nonce=1)
    assert len(ops.encode_op(op)) < 40_000 and more  # every operation fits a request
    assert op.total_tasks == 5000 and len(op.inputs) + sum(map(len, more)) == 5000
    h = Harness()
    reply = h.call(SUBMITTER, op)
    job = reply["job"]
    assert reply["state"] == "loading" and "error" in h.place_all(job)  # not placeable yet
    first = len(op.inputs)
    assert "must continue at task" in h.call(SUBMITTER, ops.AddInputs(job, first + 1, more[0]))["error"]
    assert "only the job's submitter" in h.call(WORKERS[0], ops.AddInputs(job, first, more[0]))["error"]
    for chunk in more:
        reply = h.call(SUBMITTER, ops.AddInputs(job, first, chunk))
        first += len(chunk)
    assert reply == {"job": job, "tasks": 5000, "state": "open"}
    assert h.ledger.jobs[job].tasks[4999].input.inline == b"4999 100000\n"


def test_ended_jobs_leave_the_ledger_after_a_day():
    from daemon.ledger.state import RETAIN_ENDED_MS

    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"a")
    h.report(job, 0, 1, b"a")
    assert h.ledger.jobs[job].state == JobState.DONE
    h.tick_all(NOW_MS + RETAIN_ENDED_MS - 1000)
    assert job in h.ledger.jobs
    h.tick_all(NOW_MS + RETAIN_ENDED_MS + 1000)
    assert job not in h.ledger.jobs


def test_snapshots_from_before_exit_codes_read_as_exit_zero_and_empty_stderr():
    from daemon.ledger.records import EMPTY_SHA256, TaskReplica

    old = ["worker", 1, 2, True, [0, b"h" * 32, 5], "agreed", ""]
    assert TaskReplica.from_wire(old).result == (0, b"h" * 32, 5, 0, EMPTY_SHA256, 0)
    new = TaskReplica.from_wire(old)
    assert TaskReplica.from_wire(new.to_wire()) == new


def test_snapshots_from_before_adaptive_was_a_choice_read_as_not_adaptive():
    """An old snapshot's jobs have no ``adaptive`` field: their remaining tasks keep their quorum."""
    from protocol.canonical import packb, unpackb

    h = Harness()
    job = h.submit(2)
    h.place_all(job)
    snap = unpackb(h.ledger.snapshot())
    tag, body = unpackb(snap[3][0][2])
    snap[3][0][2] = packb([tag, body[:-2]])  # the Submit as it was stored before (nor runtime)
    for task in snap[3][0][5]:
        del task[8:]  # and tasks before failures were named
    restored = JobLedger([m.public_key for m in MEMBERS], f=1)
    restored.restore(packb(snap))
    assert restored.jobs[job].spec.adaptive is False
    assert restored.jobs[job].spec == h.ledger.jobs[job].spec


def test_every_operation_has_a_handler():
    from daemon.ledger.state import _HANDLERS

    assert set(_HANDLERS) | {ops.Batch} == set(ops.TAGS.values())


def test_stored_states_come_back_as_enums():
    h = Harness()
    job = h.submit(1)
    h.place_all(job)
    again = JobLedger([m.public_key for m in MEMBERS], f=1)
    again.restore(h.ledger.snapshot())
    restored = again.jobs[job]
    assert restored.state is JobState.OPEN and restored.tasks[0].state is TaskState.OPEN
    assert restored.tasks[0].replicas[0].outcome is ReplicaOutcome.PENDING


def test_query_carries_the_spec_bounded():
    """``describe`` shows what a job runs and its limits from the query reply: the spec, with
    argv cut to ``MAX_ARGV_SHOWN`` characters, so a full page of tasks still fits a reply."""
    from daemon.ledger.state import MAX_ARGV_SHOWN

    h = Harness()
    job = h.submit(3, argv=("run", "--fast"), fuel=12345, wall_ms=7000)
    spec = h.call(SUBMITTER, ops.Query(job, 0, 0, False))["spec"]
    assert spec["argv"] == ["run", "--fast"] and not spec["argv_truncated"]
    assert (spec["fuel"], spec["wall_ms"], spec["memory_pages"], spec["max_output"]) == \
        (12345, 7000, 16, 1024)
    assert spec["module_hash"] == (b"\x01" * 32).hex() and spec["runtime"] == "wasm32-wasi"
    big = h.submit(argv=tuple("x" * 256 for _ in range(64)))
    reply = h.ledger.apply(ClientRequest(SUBMITTER.public_key, 999_999,
                                         ops.encode_op(ops.Query(big, 0, 0, False)), b""))
    spec = unpackb(reply)["spec"]
    assert spec["argv_truncated"] and sum(map(len, spec["argv"])) <= MAX_ARGV_SHOWN
    assert len(packb(spec)) <= MAX_ARGV_SHOWN + 1024  # room kept for a page of task rows


def test_query_replies_stay_under_the_reply_cap_and_say_when_rows_were_cut():
    """500 accepted tasks' rows are ~79 KB, over the 64 KiB a reply may be (the replica
    refused its own reply): rows stop short, ``more`` says so, and the next page goes on."""
    from consensus.statemachine import MAX_RESULT

    h = Harness(replicas=1, quorum=1, max_replicas=1)
    job = h.submit(1, inputs=tuple(
        ops.TaskInput(hashlib.sha256(bytes([i % 256, i // 256])).digest(), 1, b"x")
        for i in range(ops.MAX_QUERY_TASKS)))
    rec = h.ledger.jobs[job]
    while any(h.ledger.open_slots(rec, t) for t in rec.tasks):
        h.place_all(job)
        for i, t in enumerate(rec.tasks):
            if t.replicas and t.replicas[-1].result is None and t.state == TaskState.OPEN:
                h.report(job, i, len(t.replicas) - 1, b"out")
    assert rec.counts()["accepted"] == ops.MAX_QUERY_TASKS
    rows: list = []
    while True:
        raw = h.ledger.apply(ClientRequest(SUBMITTER.public_key, h.rid + 1, ops.encode_op(
            ops.Query(job, len(rows), ops.MAX_QUERY_TASKS, False)), b""))
        h.rid += 1
        assert len(raw) <= MAX_RESULT
        page = unpackb(raw, max_size=1 << 20)
        rows += page["tasks"]
        if not page.get("more"):
            break
    assert [r["i"] for r in rows] == list(range(ops.MAX_QUERY_TASKS))
