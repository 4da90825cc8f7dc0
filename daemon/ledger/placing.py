"""Placement for the job ledger: the proposer's side and the checker's side of one rule.

A committee member (the primary's daemon) turns its soft state into ``CandidateWire`` records
and calls ``propose``; every replica, executing the resulting ``Place`` operation, calls
``check_proposal`` with the same inputs. Both build the same ``daemon.sched`` placement inputs
through ``placement_inputs``, so they can only disagree on last-bit float differences, which
``check_placement`` tolerates.

Reputation is the ledger's hard state, never the proposer's claim: the ledger's as it stood
at the period the proposal names (``reputation.PlacingBasis``: results agreed while a proposal
is ordered would otherwise change what the best placement is). Workers a task already
counts on or caught (a replica running, with a result, or disagreed at a checkpoint) are never
candidates for it again (``used_workers``): a quorum is of distinct volunteers. A worker whose
replica ended with no result (its lease ran out, it left, was unreachable, or could not fetch
the task's files: ``retried_workers``) takes the task again only when the other candidates
could not fill its open slots even once their queues drain. Without that, a task whose only
possible volunteer restarted (a one-node network) could never be placed again; with it first,
a volunteer that fails a task at once (one that cannot reach a NAT'd submitter for its
module) was handed the same task until its replicas ran out: it is always idle, so near a
job's end it was the only candidate with room, and reputation, which counts the failures,
fell too slowly to stop it. Proposer and checkers decide alike (``_inputs``), from the
operation alone.

The task duration the forecast is asked about is learned, as BOINC learns a job's run time:
until a few of the job's results are accepted it is a quarter of the wall-clock limit, then the
median run time (ledger time from ``Start`` to ``Result``) of its latest accepted replicas. Results
arrive while a proposal is in flight, so the proposer names the duration it used and replicas
accept it within a factor of ``DURATION_TOLERANCE`` of their own estimate (or the default).

All replicas of a task run on one exact runtime (``task_runtime``): replicas agree on fuel, and so
on ``OUT_OF_FUEL``, only on the same wasmtime release and engine settings, and an honest worker
must never lose reputation for running a different release than its peers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from daemon.ledger.records import ReplicaOutcome
from daemon.ledger.reputation import PRIOR
from daemon.sched import Candidate, Placement, PlacementInputs, TaskNeeds, check_placement, place
from daemon.sched.summary import AvailabilitySummary
from daemon.links.estimate import DEFAULT_BANDWIDTH, DEFAULT_RTT
from protocol import sticky
from protocol.attestation import AttestationLevel
from protocol.errors import RemoteProtocolError
from protocol.messages import ledger as ops
from protocol.messages.tasks import RUNTIME

DURATION_SHARE = 4
"""With no better estimate, a task is expected to take a quarter of its wall-clock limit."""
MIN_RUNTIME_SAMPLES = 3
"""Accepted run times needed before their median replaces the default estimate."""
DURATION_TOLERANCE = 2.0
DURATION_SLACK_MS = 30_000
"""A proposal's duration is also accepted within this much of the ledger's own estimate,
whatever the ratio. The estimate is the median of replicas' Start-to-Result times in ledger
time, so it carries the committee's ordering delay: on a loaded 30-daemon planet testnet the
samples of one job ran from 0 to 65 s for tasks of about a second, and the median moved
between 1 s and 13 s as results came in. A proposer reading the job a few batches earlier
proposed 6.5 s against the ledger's 1.0 s, and every placement was refused for minutes while
tasks waited. For availability a few seconds more or less change nothing; for a long task
the 2x ratio still decides."""
MIN_DURATION_MS = 1000
RESUMABLE_HORIZON_MS = 2 * 3_600_000
"""What a resumable task asks of a host's forecast at most: the next two hours of its run
(``scripts/sim_churn_checkpoint.py`` uses the same horizon)."""
MAX_EXPLANATION_BYTES = 8192
QUEUE_CAP = 4.0
"""A worker with this many tasks per slot queued or running is not a candidate until it
drains: reputation must not pile a whole job onto the first workers that agreed."""


def used_workers(task: Any) -> set[str]:
    """Workers that may not take another replica of ``task`` (see the module docstring)."""
    return {r.worker for r in task.replicas
            if r.result is not None or r.outcome not in (ReplicaOutcome.TIMEOUT, ReplicaOutcome.RELEASED)}


def retried_workers(task: Any) -> set[str]:
    """Workers whose replica of ``task`` ended with no result, and not otherwise used: they
    take it again only when nobody else can (see the module docstring)."""
    return {r.worker for r in task.replicas if r.result is None
            and r.outcome in (ReplicaOutcome.TIMEOUT, ReplicaOutcome.RELEASED)} - used_workers(task)


def queue_per_slot(load: float) -> float:
    """Tasks per slot that an ``effective_load`` stands for (the inverse of that formula)."""
    return load / (1 - load) if load < 1 else float("inf")


def majority_runtime(candidates: Iterable[ops.CandidateWire], family: str = RUNTIME) -> str:
    """The exact runtime of the job's ``family`` (``wasm32-wasi@ID``, ``python@ID``) most
    candidates offer (ties: the greater name), or the bare family when no record names one.
    Once per ``Place``, for all its tasks."""
    counts = Counter(name for c in candidates for name in set(c.runtimes)
                     if name.startswith(family + "@"))
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else family


def task_runtime(task: Any, majority: str) -> str:
    """The exact runtime every replica of ``task`` must run on: the one it was first placed
    on while any of its replicas still runs or has reported; else (new, or every replica
    lost) ``majority`` (``majority_runtime`` of the candidates)."""
    if task.runtime and any(r.result is not None or r.outcome == "pending" for r in task.replicas):
        return str(task.runtime)
    return majority


def default_duration_ms(spec: ops.Submit) -> int:
    return max(MIN_DURATION_MS, spec.wall_ms // DURATION_SHARE)


def expected_duration(spec: ops.Submit, runtimes_ms: Sequence[int],
                      resumable: bool = False) -> tuple[int, str]:
    """(duration in ms, what it is based on) for placing the job's next replicas.

    A resumable job's task (``job_is_resumable``) asks a host only for the next
    ``RESUMABLE_HORIZON_MS`` of its run: if the host leaves, the task continues elsewhere from
    its last agreed checkpoint, so a host that will not stay up to the end is still useful."""
    if len(runtimes_ms) < MIN_RUNTIME_SAMPLES:
        ms, basis = default_duration_ms(spec), "a quarter of the wall-clock limit (too few results yet)"
    else:
        ordered = sorted(runtimes_ms)
        median = ordered[len(ordered) // 2]
        ms = min(max(MIN_DURATION_MS, median), max(MIN_DURATION_MS, spec.wall_ms))
        basis = f"median run time of its last {len(ordered)} accepted replicas"
    if resumable and ms > RESUMABLE_HORIZON_MS:
        return RESUMABLE_HORIZON_MS, (f"{basis}; resumable: the host is asked for its next "
                                      f"{RESUMABLE_HORIZON_MS // 3_600_000} h only")
    return ms, basis


def job_is_resumable(job: Any) -> bool:
    """Has any task of the job an agreed checkpoint? (Replicated state: every replica agrees.)"""
    return any(t.checkpoints for t in job.tasks)


def duration_problem(spec: ops.Submit, runtimes_ms: Sequence[int], proposed_ms: int,
                     resumable: bool = False) -> str | None:
    """None if a proposal's duration is one this replica would accept, else why not. (A
    resumable job's proposal may predate its first agreed checkpoint: either estimate goes.)"""
    if proposed_ms == default_duration_ms(spec):
        return None  # what every placement assumed before run times were learned
    for judged in ((False, True) if resumable else (False,)):
        own, _ = expected_duration(spec, runtimes_ms, judged)
        if own / DURATION_TOLERANCE <= proposed_ms <= own * DURATION_TOLERANCE or \
                abs(proposed_ms - own) <= DURATION_SLACK_MS:
            return None
    own, _ = expected_duration(spec, runtimes_ms, resumable)
    return (f"duration {proposed_ms / 1000:.1f} s is not within {DURATION_TOLERANCE:g}x "
            f"or {DURATION_SLACK_MS // 1000} s of the ledger's estimate {own / 1000:.1f} s")


def task_needs(spec: ops.Submit, slots: int, duration_ms: int, runtime: str,
               task: int | None = None) -> TaskNeeds:
    holders, sticky_s = sticky_affinity(spec, task)
    return TaskNeeds(
        duration_s=max(MIN_DURATION_MS, duration_ms) / 1000,
        replicas=slots,
        memory_mib=max(1, spec.memory_pages * 64 // 1024),
        runtime=runtime,
        min_attestation=AttestationLevel(min(spec.min_attestation, max(AttestationLevel))),
        holders=holders, sticky_s=sticky_s,
    )


def sticky_affinity(spec: ops.Submit, task: int | None) -> tuple[frozenset[str], float]:
    """The volunteers holding every sticky file ``task``'s input names, and the time another
    peer needs to fetch them (at the link table's prior: nobody measured that link). Read from
    the input inlined in the job's hard state, so every replica computes the same; an input
    not inlined in the submission (a large job's later parts) names none."""
    if task is None or not 0 <= task < len(spec.inputs):
        return frozenset(), 0.0
    inline = spec.inputs[task].inline
    if inline is None:
        return frozenset(), 0.0
    try:
        envelope = sticky.decode(inline)
    except sticky.StickyError:
        return frozenset(), 0.0  # the task itself is refused, the same everywhere
    if envelope is None or not envelope.files:
        return frozenset(), 0.0
    holders = frozenset.intersection(*(frozenset(f.holders) for f in envelope.files))
    size = sum(f.size for f in envelope.files)
    return holders, len(envelope.files) * DEFAULT_RTT + size / DEFAULT_BANDWIDTH


def effective_load(base: float, slots: int, extra: int) -> float:
    """A worker's load after ``extra`` more tasks: (base x slots + extra) / (slots + extra).

    Stays below 1, grows with every task queued on the worker, so a batch of placements
    spreads over idle workers instead of piling onto the top-scored two."""
    s = max(1, slots)
    return (base * s + extra) / (s + extra) if extra else base


def to_candidate(c: ops.CandidateWire, reputation: float, extra: int = 0) -> Candidate:
    summary = AvailabilitySummary.from_wire(c.availability) if c.availability is not None else None
    return Candidate(
        node_id=c.node_id,  # type: ignore[arg-type]
        availability=summary,
        cores=c.cores,
        memory_mib=c.memory_mib,
        runtimes=frozenset(c.runtimes),
        attestation=AttestationLevel(min(c.attestation, max(AttestationLevel))),
        reputation=reputation,
        load=min(0.999, effective_load(min(1.0, c.load_permille / 1000), c.cores, extra)),
        link_s=c.link_ms / 1000,
        domain=c.domain,
        vouched_since=float(c.vouched_since_s) if c.vouched_since_s else None,
    )


def placement_inputs(job_id: bytes, task: int, spec: ops.Submit, slots: int,
                     candidates: Iterable[ops.CandidateWire], exclude: set[str],
                     reputation: Mapping[str, float], now_ms: int, duration_ms: int,
                     runtime: str, extra: Mapping[str, int] | None = None,
                     queue_cap: bool = True) -> PlacementInputs:
    """``extra``: tasks given to each worker earlier in the same ``Place`` operation (the
    proposer and every checker count them alike, from the operation alone); ``queue_cap``:
    leave out workers with ``QUEUE_CAP`` tasks per slot already (False: who could take the
    task once their queues drain)."""
    extra = extra or {}
    cands = tuple(
        cand for cand in (
            to_candidate(c, reputation.get(c.node_id, PRIOR), extra.get(c.node_id, 0))
            for c in candidates if c.node_id not in exclude)
        if not queue_cap or queue_per_slot(cand.load) < QUEUE_CAP - 1e-9  # float: 8 on 4 is 2
    )
    return PlacementInputs(needs=task_needs(spec, slots, duration_ms, runtime, task),
                           candidates=cands,
                           now=now_ms / 1000,
                           tie_seed=job_id + task.to_bytes(4, "big"))


def _inputs(job_id: bytes, task: int, spec: ops.Submit, slots: int,
            candidates: Iterable[ops.CandidateWire], exclude: set[str], retried: set[str],
            reputation: Mapping[str, float], now_ms: int, duration_ms: int, runtime: str,
            extra: Mapping[str, int] | None) -> tuple[PlacementInputs, Placement]:
    """The inputs a task is placed on, and their placement: without the ``retried`` workers;
    with them only if the others could not fill ``slots`` even once their queues drain (how
    many a placement chooses depends on feasibility and failure domains, never on scores:
    every replica counts alike). Busy workers are worth waiting for: a worker that fails
    every task at once is always idle, and near a job's end it was the only one with room,
    so "nobody else has room now" handed it the same task until its replicas ran out."""
    candidates = tuple(candidates)
    inputs = placement_inputs(job_id, task, spec, slots, candidates, exclude | retried,
                              reputation, now_ms, duration_ms, runtime, extra)
    placement = place(inputs)
    if retried and len(placement.chosen) < slots:
        patient = placement_inputs(job_id, task, spec, slots, candidates, exclude | retried,
                                   reputation, now_ms, duration_ms, runtime, extra,
                                   queue_cap=False)
        if len(place(patient).chosen) < slots:
            inputs = placement_inputs(job_id, task, spec, slots, candidates, exclude,
                                      reputation, now_ms, duration_ms, runtime, extra)
            placement = place(inputs)
    return inputs, placement


def propose(job_id: bytes, task: int, spec: ops.Submit, slots: int,
            candidates: tuple[ops.CandidateWire, ...], exclude: set[str],
            reputation: Mapping[str, float], now_ms: int,
            duration: tuple[int, str], runtime: str, extra: Mapping[str, int] | None = None,
            retried: set[str] | None = None) -> tuple[Placement, ops.TaskAssignment]:
    """The primary's side: choose workers for ``slots`` replicas of one task.

    ``duration``: ``expected_duration``'s answer, the same for every task of one ``Place``;
    ``runtime``: ``task_runtime``'s; ``exclude``: ``used_workers``; ``retried``:
    ``retried_workers``."""
    duration_ms, basis = duration
    _, placement = _inputs(job_id, task, spec, slots, candidates, exclude, retried or set(),
                           reputation, now_ms, duration_ms, runtime, extra)
    explanation = placement.explanation.to_dict()
    explanation["duration_basis"] = basis
    explanation["runtime"] = runtime
    return placement, ops.TaskAssignment(task, tuple(placement.chosen), explanation)


def check_proposal(job: Any, index: int, workers: tuple[str, ...], op: ops.Place,
                   reputation: Mapping[str, float], used: set[str], slots: int,
                   runtime: str, extra: Mapping[str, int] | None = None,
                   retried: set[str] | None = None) -> tuple[str | None, Any]:
    """Every replica's side: None (and the explanation to keep) if the proposal is right."""
    assignment = next(a for a in op.assignments if a.task == index)
    from protocol.canonical import packb

    if len(packb(assignment.explanation)) > MAX_EXPLANATION_BYTES:
        return "explanation too large", None
    problem = duration_problem(job.spec, job.runtimes_ms, op.duration_ms, job_is_resumable(job))
    if problem:
        return problem, None
    try:
        inputs, _ = _inputs(job.id, index, job.spec, slots, op.candidates, used, retried or set(),
                            reputation, op.now_ms, op.duration_ms, runtime, extra)
    except (RemoteProtocolError, ValueError) as err:
        return f"bad candidate data: {err}", None
    ids = {c.node_id for c in inputs.candidates}
    if not set(workers) <= ids:
        return "a chosen worker is not among the candidates", None
    problem = check_placement(tuple(workers), inputs)  # type: ignore[arg-type]
    return problem, assignment.explanation
