"""Every replica of a task runs on one exact runtime (wasmtime release and engine settings)."""

from __future__ import annotations

from daemon.ledger.placing import RUNTIME, majority_runtime
from daemon.ledger.records import Task
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskStatus

from .ledger_helpers import MEMBERS, WORKERS, Harness

R1, R2 = f"{RUNTIME}@r1", f"{RUNTIME}@r2"
MIXED = {w.node_id: ("r1" if i < 5 else "r2") for i, w in enumerate(WORKERS)}  # 5 on r1, 3 on r2


def runtime_of(worker: str, runtimes: dict[str, str]) -> str:
    return f"{RUNTIME}@{runtimes[worker]}"


def test_replicas_of_a_task_share_the_runtime_most_candidates_offer():
    h = Harness()
    job = h.submit(6)
    cands = h.candidates(runtimes=MIXED)
    h.place_all(job, cands=cands)
    for t in h.ledger.jobs[job].tasks:
        assert t.runtime == R1 and t.explanation["runtime"] == R1
        assert {runtime_of(r.worker, MIXED) for r in t.replicas} == {R1}


def test_a_task_keeps_its_runtime_while_replicas_run_on_it():
    h = Harness()
    job = h.submit(1)
    h.place_all(job, cands=h.candidates(runtimes=MIXED))
    h.report(job, 0, 0, b"right")
    h.report(job, 0, 1, b"wrong")  # disagreement: a third replica is needed
    flipped = {w: ("r2" if r == "r1" else "r1") for w, r in MIXED.items()}  # r2 now the majority
    h.place_all(job, cands=h.candidates(runtimes=flipped))
    third = h.ledger.jobs[job].tasks[0].replicas[2]
    assert runtime_of(third.worker, flipped) == R1  # the runtime the first two ran on


def test_a_task_whose_replicas_all_failed_takes_the_current_majority():
    h = Harness()
    job = h.submit(1)
    h.place_all(job, cands=h.candidates(runtimes=MIXED))
    for k in range(2):
        h.report(job, 0, k, b"", status=int(TaskStatus.CRASHED))
    flipped = {w: ("r2" if r == "r1" else "r1") for w, r in MIXED.items()}
    h.place_all(job, cands=h.candidates(runtimes=flipped))
    task = h.ledger.jobs[job].tasks[0]
    assert task.runtime == R2
    assert {runtime_of(r.worker, flipped) for r in task.replicas[2:]} == {R2}


def test_a_proposal_mixing_runtimes_is_refused():
    h = Harness()
    job = h.submit(1)
    cands = h.candidates(runtimes=MIXED)
    mixed = ops.TaskAssignment(0, (WORKERS[0].node_id, WORKERS[7].node_id), {})
    reply = h.call(MEMBERS[0], ops.Place(job, h.ledger.now_ms, 15_000, cands, (mixed,)))
    assert reply["placed"] == 0 and reply["refused"]


def test_records_that_name_no_exact_runtime_leave_the_bare_target():
    h = Harness()
    bare = tuple(ops.CandidateWire(c.node_id, c.availability, c.cores, c.memory_mib, (RUNTIME,),
                                   c.attestation, c.load_permille, c.link_ms, c.domain, 0)
                 for c in h.candidates())
    assert majority_runtime(bare) == RUNTIME
    job = h.submit(2)
    h.place_all(job, cands=bare)
    assert all(len(t.replicas) == 2 for t in h.ledger.jobs[job].tasks)


def test_snapshots_from_before_pinning_read_as_unpinned():
    old = [[b"\0" * 32, 1, b"x"], [], "open", None, 0, 2, None]
    assert Task.from_wire(old).runtime == ""
    assert Task.from_wire(Task.from_wire(old).to_wire()) == Task.from_wire(old)
