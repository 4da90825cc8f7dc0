"""The job ledger: the replicated state machine of a shard committee (``consensus.StateMachine``).

Theory of operation
-------------------
A job is a module and one input per task. Each task runs as *replicas* on distinct workers;
a task's result is **accepted** when ``quorum`` replicas report the same (status, exit code,
output hash and size, stderr hash and size). Accepted is not succeeded: an agreed ``EXITED``
is a certified failure, counted apart from ``OK`` (``Job.counts``).
A replica that reports something else is *disagreed* (its worker's reputation falls); when no
quorum can be reached with the replicas still running, the ledger asks for another replica, up
to ``max_replicas``, after which the task **fails**.

Every decision is a deterministic function of the ordered operations
(``protocol.messages.ledger``), each applied by its handler in ``_HANDLERS``:

- **time** advances only through ``Tick`` from committee members: the ledger's clock is the
  (f+1)-th largest of the members' latest reports, so f Byzantine members cannot move it ahead
  of every honest clock (they can hold it back, which only delays deadlines);
- **placement**: a member (the primary's daemon) proposes workers for unplaced replica slots,
  with the candidate data (soft state) it used; the ledger overrides reputation with its own
  (as of the period the proposal names, ``reputation.PlacingBasis``), and accepts the
  proposal only if ``daemon.sched.check_placement`` agrees and no worker repeats within a
  task. A bad proposal is rejected by every replica alike;
- **leases**: a replica not reported by ``2 x wall limit + LEASE_SLACK_MS`` after its
  placement times out (or at once, on the worker's ``Leave``) and its slot is placed again;
- **unreachable workers**: f+1 members reporting a worker ``Unreachable`` within
  ``UNREACHABLE_WINDOW_MS`` release its unreported replicas at once, as a lease would (one
  member alone cannot: it may be the one cut off, or lying); the worker's own next report
  withdraws the claims;
- **deadline**: at the job's deadline, unfinished tasks fail (a job submitted before the
  shard's first tick counts its deadline from that tick);
- **votes again**: a submitter missing certificates (``AskVotes``) makes every member sign
  the votes of those accepted tasks again (an event; the state does not change).
- **checkpoints** (resumable tasks): replicas report each checkpoint's digest
  (``CheckpointReport``); one a quorum agrees on is recorded on the task, and a replica that
  reported another digest for it is disagreed there, mid-run; replicas split with no quorum get
  one more replica to decide (``daemon.ledger.checkpoints``).
- **adaptive replication** (only for jobs whose file asks for it, ``Submit.adaptive``): a
  task's first placement may go to one worker with a long clean record
  (``reputation.WorkerRecord.trusted``), accepted on its word alone (quorum 1), except for
  the spot-checked tasks. The certificate then says 1 volunteer agreed.

Results that are faults of the node rather than of the task (``TIMED_OUT`` by wall clock,
``CRASHED``) never count towards a quorum: they only release the replica.

``drain_events()`` hands the shell what changed (``daemon.ledger.events``: offers to send, tasks
accepted) without it having to diff the state; events are not part of the replicated state.
The records (jobs, tasks, replicas and their states) are ``daemon.ledger.records``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from consensus.statemachine import ClientRequest
from daemon.errors import DaemonError
from daemon.ledger.checkpoints import (AGREED_WINDOW, REPORT_WINDOW, CheckpointMark,
                                       needs_tiebreak, settle)
from daemon.ledger.events import (Accepted, JobEnded, JobSubmitted, LedgerEvent, Offered,
                                  ReplicaFailed, TaskFailed, VotesAsked)
from daemon.ledger.records import (DEADLINE, NO_AGREEMENT, NO_RESULT, Answer, Job, JobState,
                                   ReplicaOutcome, Task, TaskReplica, TaskState, array_header,
                                   job_id)
from daemon.ledger.reputation import PlacingBasis, WorkerRecord, spot_checked
from protocol.attestation import AttestationLevel
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import node_id_from_public_key
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskStatus

RETAIN_ENDED_MS = 24 * 3600 * 1000
"""Ended jobs leave the ledger a day after they end (their results' certificates live with
their submitters), so the replicated state, and every checkpoint of it, stays bounded."""
MAX_PLACE_SKEW_MS = 120_000
UNREACHABLE_WINDOW_MS = 120_000
RUNTIME_SAMPLES = 32
RUNTIME_FAMILIES = ("wasm32-wasi", "python")
"""How many of a job's latest agreed replica run times the ledger keeps: what placement's
duration estimate is the median of (``daemon.ledger.placing.expected_duration``)."""
NODE_FAULTS = frozenset({TaskStatus.TIMED_OUT, TaskStatus.CRASHED})
MAX_TASKS = 100_000
_NO_LEASE = 1 << 63


class JobLedger:
    """``consensus.StateMachine`` for jobs. ``members``: the committee's public keys."""

    def __init__(self, members: list[bytes], f: int) -> None:
        self.members = {node_id_from_public_key(pk) for pk in members}
        self.f = f
        self.jobs: dict[bytes, Job] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self.basis = PlacingBasis()
        """The reputation placements are scored with (``reputation.PlacingBasis``)."""
        self.member_clock: dict[str, int] = {}
        self.unreachable: dict[str, dict[str, int]] = {}
        """Worker -> member -> ledger time the member reported it unreachable."""
        self.now_ms = 0
        self.anchoring: dict[str, int] | None = None
        """While jobs wait for a fresh ledger clock (``_anchor``): member -> its first clock
        report since they came; None when no job waits."""
        self.seq = 0
        self._events: list[LedgerEvent] = []
        self._lease_floor = 0
        """No pending replica's lease ends before this ledger time (derived: see ``_expire``)."""

    # -- the StateMachine interface ---------------------------------------------------------------

    def apply(self, request: ClientRequest) -> bytes:
        client = node_id_from_public_key(request.client)
        return packb(self._apply_one(client, request.operation, request, nested=False))

    def _apply_one(self, client: str, operation: bytes, request: ClientRequest,
                   nested: bool) -> dict[str, Any]:
        self.seq += 1
        try:
            op = ops.decode_op(operation)
            if isinstance(op, ops.Batch):
                if nested:
                    raise _Refused("a batch cannot hold a batch")
                return {"replies": [self._apply_one(client, item, request, nested=True)
                                    for item in op.items]}
            handler = _HANDLERS[type(op)]
            # The job id of a submission is over the operation's own bytes, batched or not.
            sub = request if not nested else ClientRequest(request.client, request.request_id,
                                                           operation, request.raw)
            return handler(self, client, op, sub)
        except RemoteProtocolError as err:
            return {"error": f"malformed operation: {err}"}
        except _Refused as err:
            return {"error": str(err)}

    def read(self, op: ops.Query | ops.WorkerQuery) -> dict[str, Any]:
        """A read-only operation's reply from this replica's state as executed, without
        ordering it (``daemon.committees.service.CommitteeService.local_machine``): the same
        handler as the ordered read, and nothing changes (not even ``seq``)."""
        if not isinstance(op, READ_ONLY):
            raise TypeError(f"{type(op).__name__} is not a read")
        try:
            return _HANDLERS[type(op)](self, "", op, None)  # type: ignore[arg-type]
        except _Refused as err:
            return {"error": str(err)}

    def snapshot(self) -> bytes:
        """The canonical encoding of the whole state: ``packb`` of ``[1, now, seq, jobs, workers,
        clock, unreachable, anchoring, basis]`` (``snapshot_wire``), built from each task's cached encoding.

        A checkpoint comes every few batches and a big job's ledger holds 100,000 tasks: encoding
        them all each time cost the committee about half a second of a free core per checkpoint,
        spent not answering anyone. Tasks keep their bytes until they change (``Task.packed``),
        so a checkpoint now costs what changed since the last one, plus joining the bytes."""
        out = [b"\x99", packb([1, self.now_ms, self.seq], maps=False)[1:],
               array_header(len(self.jobs))]
        for _, j in sorted(self.jobs.items()):
            out += (b"\x99", packb([j.id, j.submitter, ops.encode_op(j.spec), j.submitted_ms,
                                     j.clock_ns], maps=False)[1:], array_header(len(j.tasks)))
            out += _packed_tasks(j.tasks)
            out.append(packb([j.state, j.ended_ms, j.runtimes_ms], maps=False)[1:])
        out.append(packb(self.snapshot_wire(jobs=False)[4:], maps=False)[1:])
        return b"".join(out)

    def snapshot_wire(self, jobs: bool = True) -> list[Any]:
        """The state as plain values, encoded without any cache (``jobs=False``: an empty
        job list, for the parts ``snapshot`` encodes itself). ``snapshot`` must equal
        ``packb(snapshot_wire(), maps=False)`` (the maps, explanations, are decoded canonically
        from the operations that brought them, so they need no sorting)."""
        js = [[j.id, j.submitter, ops.encode_op(j.spec), j.submitted_ms, j.clock_ns,
               [t.to_wire() for t in j.tasks], j.state, j.ended_ms, j.runtimes_ms]
              for _, j in sorted(self.jobs.items())] if jobs else []
        workers = [[w, r.to_wire()] for w, r in sorted(self.workers.items())]
        clock = sorted(self.member_clock.items())
        unreachable = [[w, [[m, t] for m, t in sorted(by.items())]]
                       for w, by in sorted(self.unreachable.items())]
        anchoring = None if self.anchoring is None else [list(a) for a in sorted(self.anchoring.items())]
        return [1, self.now_ms, self.seq, js, workers, [list(c) for c in clock], unreachable,
                anchoring, self.basis.to_wire()]

    def restore(self, snapshot: bytes) -> None:
        try:
            v = unpackb(snapshot, max_size=1 << 30, max_items=1 << 24)  # a job has 100,000 tasks
            # Snapshots from before unreachable reports have six fields.
            version, now_ms, seq, jobs, workers, clock, *newer = v
            if version != 1:
                raise MalformedMessage(f"ledger snapshot version {version} is not supported")
            self.jobs = {}
            for jid, submitter, spec, submitted, clock_ns, tasks, state, ended, *rest in jobs:
                self.jobs[jid] = Job(jid, submitter, ops.decode_stored_submit(spec), submitted, clock_ns,
                                     [Task.from_wire(t) for t in tasks], JobState(state), ended,
                                     [int(x) for x in rest[0]] if rest else [])
            self.workers = {w: WorkerRecord.from_wire(r) for w, r in workers}
            self.member_clock = {m: t for m, t in clock}
            self.unreachable = {w: {m: t for m, t in by} for w, by in newer[0]} if newer else {}
            # ... and from before jobs waited for a fresh clock, seven.
            waiting = newer[1] if len(newer) > 1 else None
            self.anchoring = None if waiting is None else {m: t for m, t in waiting}
            # ... and from before placement named its reputation basis, eight.
            self.basis = PlacingBasis.from_wire(newer[2]) if len(newer) > 2 else PlacingBasis()
            self.now_ms, self.seq = now_ms, seq
            self._lease_floor = 0
            for job in self.jobs.values():
                job.placed = {i for i, t in enumerate(job.tasks)
                              if t.replicas and t.state == TaskState.OPEN}
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise MalformedMessage(f"ledger snapshot is damaged: {type(err).__name__}") from None

    def drain_events(self) -> list[LedgerEvent]:
        events, self._events = self._events, []
        return events

    # -- operations -------------------------------------------------------------------------------

    def _submit(self, client: str, op: ops.Submit, request: ClientRequest) -> dict[str, Any]:
        if not op.inputs or not len(op.inputs) <= op.total_tasks <= MAX_TASKS:
            raise _Refused(f"a job needs 1 to {MAX_TASKS} tasks, and no more inputs than tasks")
        if not 1 <= op.quorum <= op.replicas <= op.max_replicas:
            raise _Refused("need 1 <= quorum <= replicas <= max_replicas")
        if op.min_attestation > max(AttestationLevel):
            raise _Refused(f"unknown attestation level {op.min_attestation}")
        if op.runtime not in RUNTIME_FAMILIES:
            raise _Refused(f"unknown runtime {op.runtime!r}: one of {', '.join(RUNTIME_FAMILIES)}")
        jid = job_id(request.client, request.operation)
        if jid in self.jobs:
            return {"job": jid, "existing": True}
        submitted, clock_ns = self.now_ms, op.clock_ns or self.now_ms * 1_000_000
        if self.now_ms and (self.anchoring is not None or not any(
                j.state in (JobState.OPEN, JobState.LOADING) for j in self.jobs.values())):
            # An idle shard's clock is as old as its last idle tick: the job starts (its
            # deadline, its logical clock, its placement) at the next fresh reading (``_anchor``).
            submitted, clock_ns = 0, op.clock_ns
            self.anchoring = self.anchoring if self.anchoring is not None else {}
        tasks = [Task(inp, quorum=op.quorum) for inp in op.inputs]
        for t in tasks:
            t.packed()  # encoded now, a chunk at a time, not all at the next checkpoint
        state = JobState.OPEN if len(tasks) == op.total_tasks else JobState.LOADING
        self.jobs[jid] = Job(jid, client, op, submitted, clock_ns, tasks, state)
        self._events.append(JobSubmitted(jid))
        return {"job": jid, "tasks": len(tasks), "state": state}

    def _addinputs(self, client: str, op: ops.AddInputs, request: ClientRequest) -> dict[str, Any]:
        job = self._job(op.job)
        if job.submitter != client:
            raise _Refused("only the job's submitter may add its inputs")
        if job.state != JobState.LOADING:
            raise _Refused(f"job is {job.state}, not loading inputs")
        if op.first != len(job.tasks) or len(job.tasks) + len(op.inputs) > job.spec.total_tasks:
            raise _Refused(f"inputs must continue at task {len(job.tasks)} and stop at "
                           f"{job.spec.total_tasks}")
        new = [Task(inp, quorum=job.spec.quorum) for inp in op.inputs]
        for t in new:
            t.packed()  # encoded now, a chunk at a time, not all at the next checkpoint
        job.tasks += new
        if len(job.tasks) == job.spec.total_tasks:
            job.state = JobState.OPEN
        return {"job": job.id, "tasks": len(job.tasks), "state": job.state}

    def _cancel(self, client: str, op: ops.Cancel, request: ClientRequest) -> dict[str, Any]:
        job = self._job(op.job)
        if job.submitter != client:
            raise _Refused("only the job's submitter may cancel it")
        if job.state not in (JobState.OPEN, JobState.LOADING):
            return {"job": job.id, "state": job.state}
        for t in job.tasks:
            if t.state == TaskState.OPEN:
                t.state = TaskState.CANCELLED
                self._release(job, t, ReplicaOutcome.RELEASED, "job cancelled")
        job.state, job.ended_ms = JobState.CANCELLED, self.now_ms
        self._events.append(JobEnded(job.id, JobState.CANCELLED))
        return {"job": job.id, "state": JobState.CANCELLED}

    def _tick(self, client: str, op: ops.Tick, request: ClientRequest) -> dict[str, Any]:
        if client not in self.members:
            raise _Refused("only committee members may tick the ledger clock")
        if op.now_ms <= self.member_clock.get(client, 0):
            return {"now_ms": self.now_ms}
        self.member_clock[client] = op.now_ms
        times = sorted(self.member_clock.values(), reverse=True)
        if len(times) > self.f:
            candidate = times[self.f]  # the (f+1)-th largest: at most an honest member's clock
            if candidate > self.now_ms:
                if not self.now_ms:
                    self._start_waiting_jobs(candidate)
                self.now_ms = candidate
                self.basis.roll(candidate, self.workers)
                self._expire()
        if self.anchoring is not None:
            self.anchoring.setdefault(client, op.now_ms)
            if len(self.anchoring) > self.f and self.now_ms:
                self._anchor()
        return {"now_ms": self.now_ms}

    def _anchor(self) -> None:
        """f+1 members have read their clocks since the waiting jobs came: the ledger clock is
        at least the (f+1)-th largest of those fresh readings (they are among the reports it is
        taken from), so it is fresh: the jobs start now. Idle shards tick rarely
        (``shard.LedgerClocks``); a job stamped with an idle clock lost the idle gap from its
        deadline (up to ten minutes, and a deadline may be one minute)."""
        self._start_waiting_jobs(self.now_ms)
        self.anchoring = None

    def _start_waiting_jobs(self, start_ms: int) -> None:
        """Jobs stamped with time 0 start at ``start_ms``: those submitted before the first
        tick (their deadline and logical clock count from it, not from 1970, which failed them
        at once), and those sent to an idle shard (``_anchor``). A job cancelled before the
        first tick ended at time 0: its day of retention starts here too (``_expire`` dropped it
        at that tick, as if it had ended in 1970)."""
        for job in self.jobs.values():
            if not job.submitted_ms:
                job.submitted_ms = start_ms
                if not job.spec.clock_ns:
                    job.clock_ns = start_ms * 1_000_000
            if job.state in (JobState.DONE, JobState.CANCELLED) and not job.ended_ms:
                job.ended_ms = start_ms

    def _place(self, client: str, op: ops.Place, request: ClientRequest) -> dict[str, Any]:
        # late: keeps numpy out of decoding
        from daemon.ledger.placing import (check_proposal, majority_runtime, retried_workers,
                                           task_runtime, used_workers)

        if client not in self.members:
            raise _Refused("only committee members may propose placements")
        job = self._job(op.job)
        if job.state != JobState.OPEN:
            raise _Refused(f"job is {job.state}")
        if not self.now_ms:
            raise _Refused("the ledger clock has not started yet (no ticks): leases need it")
        if not job.submitted_ms:
            raise _Refused("the job starts at the committee's next clock reading")
        if abs(op.now_ms - self.now_ms) > MAX_PLACE_SKEW_MS:
            raise _Refused("placement time is too far from the ledger clock")
        reputation = self.basis.reputations(op.basis, self.workers)
        if reputation is None:
            raise _Refused(f"the reputation of period {op.basis} the proposal scored with is no"
                           f" longer kept (now {self.basis.latest}): propose again")
        placed, refused = 0, []
        extra: Counter[str] = Counter()  # tasks given to each worker earlier in this operation
        majority = majority_runtime(op.candidates, job.spec.runtime)
        for a in op.assignments:
            seen = Counter(extra)
            for w in a.workers:
                extra[w] += 1  # counted even if refused below: the proposer counted it too
            if a.task >= len(job.tasks):
                refused.append([a.task, "no such task"])
                continue
            task = job.tasks[a.task]
            slots = self.open_slots(job, task)
            if slots == 0:
                refused.append([a.task, "needs no replica"])
                continue
            used = used_workers(task)
            if len(a.workers) > slots or len(set(a.workers)) != len(a.workers) or used & set(a.workers):
                refused.append([a.task, "workers repeat, or more than the open slots"])
                continue
            runtime = task_runtime(task, majority)
            problem, explanation = check_proposal(job, a.task, a.workers, op, reputation,
                                                  used, slots, runtime, seen,
                                                  retried_workers(task))
            if problem:
                refused.append([a.task, problem])
                continue
            workers = list(a.workers)
            first = not task.replicas
            if job.spec.adaptive and first and self._worker(workers[0]).trusted \
                    and not spot_checked(job.id, a.task) and task.quorum > 1:
                # Adaptive replication: one trusted worker, unchecked. Also when the proposal
                # names only that one (the others' queues were full): a busy network's first
                # placements are often one worker at a time.
                workers = workers[:1]
                task.quorum = 1
            self._lease_floor = min(self._lease_floor, self.now_ms + job.lease_ms)
            for w in workers:
                k = job.add_replica(a.task, TaskReplica(w, self.now_ms, self.now_ms + job.lease_ms))
                self._events.append(Offered(job.id, a.task, k, w))
            task.explanation, task.runtime = explanation, runtime
            placed += 1
        return {"placed": placed, "refused": refused}

    def _start(self, client: str, op: ops.Start, request: ClientRequest) -> dict[str, Any]:
        job, task, rep = self._replica(op.job, op.task, op.replica, client)
        self.unreachable.pop(client, None)  # it speaks: it is not gone
        if rep.outcome == ReplicaOutcome.PENDING and not rep.started:
            rep.started, rep.started_ms = True, self.now_ms
        return {"state": rep.outcome}

    def _result(self, client: str, op: ops.Result, request: ClientRequest) -> dict[str, Any]:
        job, task, rep = self._replica(op.job, op.task, op.replica, client)
        self.unreachable.pop(client, None)
        if rep.outcome != ReplicaOutcome.PENDING or rep.result is not None:
            return {"state": rep.outcome}
        try:
            status = TaskStatus(op.status)
        except ValueError:
            raise _Refused(f"unknown task status {op.status}") from None
        rep.detail = op.detail[:256]
        rep.reported_ms = self.now_ms
        rep.fuel_used = op.fuel_used
        if status in NODE_FAULTS:
            rep.outcome = ReplicaOutcome.TIMEOUT
            self._worker(client).timeouts += 1
            self._events.append(ReplicaFailed(job.id, op.task, op.replica))
            self._exhausted(job, op.task, task)
            self._maybe_done(job)
            return {"state": rep.outcome}
        rep.result = Answer(int(status), op.output_hash, op.output_size, op.exit_code,
                            op.stderr_hash, op.stderr_size)
        self._decide(job, op.task, task)
        return {"state": rep.outcome, "task": task.state}

    def _checkpoint(self, client: str, op: ops.CheckpointReport,
                    request: ClientRequest) -> dict[str, Any]:
        job, task, rep = self._replica(op.job, op.task, op.replica, client)
        self.unreachable.pop(client, None)
        if rep.outcome != ReplicaOutcome.PENDING or rep.result is not None \
                or task.state != TaskState.OPEN:
            return {"state": rep.outcome}
        if rep.checkpoints and op.seq <= rep.checkpoints[-1].seq:
            return {"state": rep.outcome, "duplicate": True}
        mark = CheckpointMark(op.seq, op.digest, op.steps, op.fuel_used, op.blob, op.keyframe)
        rep.checkpoints = (rep.checkpoints + [mark])[-REPORT_WINDOW:]
        self._settle_checkpoints(job, op.task, task)
        latest = task.checkpoints[-1].seq if task.checkpoints else None
        return {"state": rep.outcome, "agreed": latest}

    def _settle_checkpoints(self, job: Job, index: int, task: Task) -> None:
        """Record checkpoints a quorum agrees on; drop the replicas they catch (``checkpoints``)."""
        live = {k: r.checkpoints for k, r in enumerate(task.replicas)
                if r.outcome in (ReplicaOutcome.PENDING, ReplicaOutcome.AGREED) and r.checkpoints}
        new, caught = settle(task.checkpoints, live, task.quorum)
        task.checkpoints = (task.checkpoints + new)[-AGREED_WINDOW:]
        for k, seq in caught:
            r = task.replicas[k]
            if r.outcome != ReplicaOutcome.PENDING or r.result is not None:
                continue
            r.outcome = ReplicaOutcome.DISAGREED
            r.detail = f"checkpoint {seq} differs from the one {task.quorum} replicas agreed on"
            rec = self._worker(r.worker)
            rec.disagreed += 1
            rec.run = 0
            self._events.append(ReplicaFailed(job.id, index, k))
        if caught:  # a replica ended without a result: the task may have run out (``_expire``)
            self._exhausted(job, index, task)
            self._maybe_done(job)

    def _leave(self, client: str, op: ops.Leave, request: ClientRequest) -> dict[str, Any]:
        self.unreachable.pop(client, None)
        return {"released": self._release_worker(client, f"worker left: {op.reason[:200]}")}

    def _unreachable(self, client: str, op: ops.Unreachable,
                     request: ClientRequest) -> dict[str, Any]:
        if client not in self.members:
            raise _Refused("only committee members report unreachable workers")
        if op.worker not in self.pending_by_worker():
            # Kept only for workers holding replicas: a member cannot grow the state with ids.
            self.unreachable.pop(op.worker, None)
            return {"reports": 0, "holds": 0}
        claims = {m: t for m, t in self.unreachable.get(op.worker, {}).items()
                  if self.now_ms - t <= UNREACHABLE_WINDOW_MS}
        claims[client] = self.now_ms
        self.unreachable[op.worker] = claims
        recent = len(claims)
        if recent < self.f + 1:
            return {"reports": recent}
        del self.unreachable[op.worker]
        released = self._release_worker(op.worker, f"worker unreachable to {recent} "
                                                   "committee members")
        if released:
            self._worker(op.worker).timeouts += 1  # as one lease expiry, not one per replica
        return {"released": released}

    def _release_worker(self, worker: str, why: str) -> int:
        """Time out ``worker``'s unreported replicas (their slots are placed again)."""
        released = 0
        for job in self.jobs.values():
            for i, t in list(job.unsettled()):  # only open tasks hold pending replicas
                hit = False
                for k, r in enumerate(t.replicas):
                    if r.worker == worker and r.outcome == ReplicaOutcome.PENDING and r.result is None:
                        r.outcome, r.detail = ReplicaOutcome.TIMEOUT, why
                        released += 1
                        hit = True
                        self._events.append(ReplicaFailed(job.id, i, k))
                if hit and job.state == JobState.OPEN:
                    self._exhausted(job, i, t)
            if released:
                self._maybe_done(job)
        return released

    def _worker_query(self, client: str, op: ops.WorkerQuery,
                      request: ClientRequest) -> dict[str, Any]:
        """One worker's record here; a worker this shard never heard of has an empty one."""
        rec = self.workers.get(op.worker)
        if rec is None:
            return {"worker": op.worker, "known": False, "agreed": 0, "disagreed": 0,
                    "timeouts": 0, "reputation": WorkerRecord().reputation, "trusted": False}
        return {"worker": op.worker, "known": True, "agreed": rec.agreed,
                "disagreed": rec.disagreed, "timeouts": rec.timeouts,
                "reputation": round(rec.reputation, 4), "trusted": rec.trusted}

    def _ask_votes(self, client: str, op: ops.AskVotes, request: ClientRequest) -> dict[str, Any]:
        job = self._job(op.job)
        if job.submitter != client:
            raise _Refused("only the job's submitter may ask for its votes")
        tasks = tuple(sorted({i for i in op.tasks if i < len(job.tasks)
                              and job.tasks[i].state == TaskState.ACCEPTED}))
        if tasks:
            self._events.append(VotesAsked(job.id, tasks))
        return {"job": job.id, "asked": len(tasks), "state": job.state}

    def _query(self, client: str, op: ops.Query, request: ClientRequest) -> dict[str, Any]:
        job = self._job(op.job)
        out: dict[str, Any] = {
            "job": job.id, "name": job.spec.name, "state": job.state, "submitter": job.submitter,
            "submitted_ms": job.submitted_ms,
            "deadline_ms": job.deadline_ms if job.submitted_ms else 0,  # 0: not started yet
            "now_ms": self.now_ms, "counts": job.counts(), "replicas": job.spec.replicas,
            "quorum": job.spec.quorum, "adaptive": job.spec.adaptive, "spec": _spec_view(job.spec),
        }
        last = min(len(job.tasks), op.first + min(op.count, ops.MAX_QUERY_TASKS))
        # A reply is one message of at most 64 KiB, and 500 rows of accepted tasks are ~79 KB
        # (one task's detail can be more): rows stop at QUERY_ROWS_BYTES and the reply says
        # so; the caller asks again from the next task. Without this the replica refused its
        # own reply (``Service.execute``).
        tasks: list[dict[str, Any]] = []
        size = 0
        for i in range(op.first, last):
            t = job.tasks[i]
            row: dict[str, Any] = {
                "i": i, "state": t.state,
                "running": sum(1 for r in t.replicas if r.outcome == ReplicaOutcome.PENDING and r.result is None),
                "result": list(t.accepted) if t.accepted else None,
                "agreed": t.agreed, "outcome": t.outcome_kind,
            }
            if t.checkpoints:
                mark = t.checkpoints[-1]
                row["checkpoint"] = {"seq": mark.seq, "steps": mark.steps,
                                     "fuel_used": mark.fuel_used, "digest": mark.digest}
            if op.detail:
                row["explanation"] = t.explanation
                row["quorum"] = t.quorum
                room = QUERY_ROWS_BYTES - size - len(packb(row))
                reps: list[dict[str, Any]] = []
                for r in t.replicas:
                    rep = {"worker": r.worker, "outcome": r.outcome, "started": r.started,
                           "result": list(r.result) if r.result else None,
                           "runtime_ms": r.runtime_ms, "fuel_used": r.fuel_used,
                           "detail": r.detail, "placed_ms": r.placed_ms,
                           "started_ms": r.started_ms or None,
                           "reported_ms": r.reported_ms or None}
                    room -= len(packb(rep))
                    if room < 0:
                        row["replicas_not_shown"] = len(t.replicas) - len(reps)
                        break
                    reps.append(rep)
                row["replicas"] = reps
            row_size = len(packb(row))
            if tasks and size + row_size > QUERY_ROWS_BYTES:
                out["more"] = True
                break
            size += row_size
            tasks.append(row)
        out["tasks"] = tasks
        return out

    # -- decisions --------------------------------------------------------------------------------

    def pending_by_worker(self) -> Counter[str]:
        """Replicas each worker holds and has not reported yet, over all open jobs."""
        out: Counter[str] = Counter()
        for job in self.jobs.values():
            if job.state == JobState.OPEN:
                for _, t in job.unsettled():
                    for r in t.replicas:
                        if r.outcome == ReplicaOutcome.PENDING and r.result is None:
                            out[r.worker] += 1
        return out

    def unstarted(self, placed_before_ms: int) -> Iterator[tuple[Job, int, int, str]]:
        """(job, task, replica, worker) of replicas placed before ``placed_before_ms`` whose
        worker has reported neither a start nor a result: their offers may not have arrived."""
        for job in self.jobs.values():
            if job.state == JobState.OPEN:
                for i, t in job.unsettled():
                    for k, r in enumerate(t.replicas):
                        if r.outcome == ReplicaOutcome.PENDING and r.result is None and \
                                not r.started and r.placed_ms <= placed_before_ms:
                            yield job, i, k, r.worker

    def open_slots(self, job: Job, task: Task) -> int:
        """How many more replicas this task needs placed now (0 when done or out of budget)."""
        if task.state != TaskState.OPEN or job.state != JobState.OPEN or not job.submitted_ms:
            return 0  # (a job not started yet is placed once the clock is fresh: ``_anchor``)
        if not task.replicas:
            return job.spec.replicas
        groups = Counter(r.result for r in task.replicas if r.result is not None and r.outcome != ReplicaOutcome.DISAGREED)
        best = max(groups.values(), default=0)
        active = sum(1 for r in task.replicas if r.outcome == ReplicaOutcome.PENDING and r.result is None)
        need = task.quorum - best - active
        if need <= 0 and any(r.checkpoints for r in task.replicas):
            live = {k: r.checkpoints for k, r in enumerate(task.replicas)
                    if r.outcome == ReplicaOutcome.PENDING and r.result is None}
            if needs_tiebreak(task.checkpoints, live, task.quorum):
                need = 1  # the live replicas split on a checkpoint: one more decides
        budget = job.spec.max_replicas - len(task.replicas)
        return max(0, min(need, budget))

    def _decide(self, job: Job, index: int, task: Task) -> None:
        groups = Counter(r.result for r in task.replicas if r.result is not None)
        winner, votes = max(groups.items(), key=lambda kv: (kv[1], kv[0]), default=(None, 0))
        if winner is not None and votes >= task.quorum:
            task.state, task.accepted, task.accepted_seq = TaskState.ACCEPTED, winner, self.seq
            for r in task.replicas:
                if r.result == winner:
                    r.outcome = ReplicaOutcome.AGREED
                    if r.runtime_ms is not None:
                        job.runtimes_ms = (job.runtimes_ms + [r.runtime_ms])[-RUNTIME_SAMPLES:]
                    rec = self._worker(r.worker)
                    rec.agreed += 1
                    rec.run += 1
                elif r.result is not None:
                    r.outcome = ReplicaOutcome.DISAGREED
                    rec = self._worker(r.worker)
                    rec.disagreed += 1
                    rec.run = 0
                elif r.outcome == ReplicaOutcome.PENDING:
                    r.outcome, r.detail = ReplicaOutcome.RELEASED, "task accepted without it"
            self._events.append(Accepted(job.id, index, winner))
            self._maybe_done(job)
            return
        if self.open_slots(job, task) == 0 and not any(
                r.outcome == ReplicaOutcome.PENDING and r.result is None for r in task.replicas):
            if len(task.replicas) >= job.spec.max_replicas:
                task.state, task.failure = TaskState.FAILED, NO_AGREEMENT
                self._events.append(TaskFailed(job.id, index, "replicas disagree"))
                self._maybe_done(job)

    def _expire(self) -> None:
        """Leases, deadlines and retention, at each advance of the ledger clock.

        Walking every open task at every tick cost a 100,000-task job's committee a fifth of a
        second per tick, so the walk is skipped while ``_lease_floor`` (no pending replica's
        lease ends before it) and every deadline are ahead. The skip must never change what
        happens, or replicas holding another floor (one restored from a snapshot starts at 0)
        would diverge: the walk's only other effect, failing a task that ran out of replicas, is
        done at once where a replica ends without a result (``_exhausted``), so a walk that
        finds no lease or deadline due changes nothing."""
        for jid in [j.id for j in self.jobs.values()
                    if j.state in (JobState.DONE, JobState.CANCELLED) and j.ended_ms + RETAIN_ENDED_MS <= self.now_ms]:
            del self.jobs[jid]
        if self.now_ms < self._lease_floor and all(
                self.now_ms < j.deadline_ms for j in self.jobs.values() if j.state == JobState.OPEN):
            return
        floor = _NO_LEASE
        for job in self.jobs.values():
            if job.state != JobState.OPEN:
                continue
            for i, t in list(job.unsettled()):
                for k, r in enumerate(t.replicas):
                    if r.outcome == ReplicaOutcome.PENDING and r.result is None:
                        if r.lease_ms <= self.now_ms:
                            r.outcome, r.detail = ReplicaOutcome.TIMEOUT, "no result within the lease"
                            self._worker(r.worker).timeouts += 1
                            self._events.append(ReplicaFailed(job.id, i, k))
                        else:
                            floor = min(floor, r.lease_ms)
                if self.now_ms < job.deadline_ms:
                    self._exhausted(job, i, t)  # (a task without replicas never is)
            if self.now_ms >= job.deadline_ms:
                for i, t in list(job.open_tasks()):
                    t.state, t.failure = TaskState.FAILED, DEADLINE
                    self._release(job, t, ReplicaOutcome.RELEASED, "job deadline passed")
                    self._events.append(TaskFailed(job.id, i, "deadline"))
            self._maybe_done(job)
        self._lease_floor = floor

    def _exhausted(self, job: Job, index: int, t: Task) -> None:
        """Fail an open task that needs no more replicas, has none running and has used its
        budget: no replica finished (a task whose results disagree fails in ``_decide``)."""
        if t.state == TaskState.OPEN and self.open_slots(job, t) == 0 and not any(
                r.outcome == ReplicaOutcome.PENDING and r.result is None for r in t.replicas) \
                and len(t.replicas) >= job.spec.max_replicas:
            t.state, t.failure = TaskState.FAILED, NO_RESULT
            self._events.append(TaskFailed(job.id, index, "no replica finished"))

    def _maybe_done(self, job: Job) -> None:
        if job.state == JobState.OPEN and next(job.open_tasks(), None) is None:
            job.state, job.ended_ms = JobState.DONE, self.now_ms
            self._events.append(JobEnded(job.id, JobState.DONE))

    def _release(self, job: Job, task: Task, outcome: ReplicaOutcome, why: str) -> None:
        for r in task.replicas:
            if r.outcome == ReplicaOutcome.PENDING and r.result is None:
                r.outcome, r.detail = outcome, why

    # -- lookups ----------------------------------------------------------------------------------

    def _job(self, jid: bytes) -> Job:
        job = self.jobs.get(jid)
        if job is None:
            raise _Refused(f"no job {jid.hex()[:16]}")
        return job

    def _replica(self, jid: bytes, index: int, k: int, client: str) -> tuple[Job, Task, TaskReplica]:
        job = self._job(jid)
        if index >= len(job.tasks) or k >= len(job.tasks[index].replicas):
            raise _Refused(f"no replica {k} of task {index}")
        task = job.tasks[index]
        rep = task.replicas[k]
        if rep.worker != client:
            raise _Refused(f"replica {k} of task {index} is not assigned to you")
        return job, task, rep

    def _worker(self, node_id: str) -> WorkerRecord:
        rec = self.workers.get(node_id)
        if rec is None:
            rec = self.workers[node_id] = WorkerRecord()
        return rec

    def reputation(self, node_id: str) -> float:
        rec = self.workers.get(node_id)
        return rec.reputation if rec else WorkerRecord().reputation


QUERY_ROWS_BYTES = 48_000
"""Bytes of task rows in one query reply (a reply is at most 64 KiB, with the counts and the
spec beside the rows)."""
MAX_ARGV_SHOWN = 1024
"""Characters of a job's argv a query reply carries (a reply is at most 64 KiB; argv may
be 16 KiB); ``argv_truncated`` says when more was cut."""


def _spec_view(spec: ops.Submit) -> dict[str, Any]:
    """What the job runs and under which limits, for ``describe``: bounded whatever the spec."""
    argv: list[str] = []
    room = MAX_ARGV_SHOWN
    for arg in spec.argv:
        if len(arg) > room:
            break
        argv.append(arg)
        room -= len(arg)
    return {"module_hash": spec.module_hash.hex(), "module_size": spec.module_size,
            "runtime": spec.runtime, "argv": argv, "argv_truncated": len(argv) < len(spec.argv),
            "fuel": spec.fuel, "memory_pages": spec.memory_pages, "wall_ms": spec.wall_ms,
            "max_output": spec.max_output, "max_replicas": spec.max_replicas,
            "min_attestation": spec.min_attestation, "deadline_s": spec.deadline_s}


def _packed_tasks(tasks: list[Task]) -> list[bytes]:
    """Each task's ``Task.packed()``, with its common cases inlined (a task with no replica or
    one unchanged replica): at 100,000 tasks the method call was most of a checkpoint."""
    out: list[bytes] = []
    append = out.append
    for t in tasks:
        c = t.__dict__["_packed"]
        if c is not None:
            reps, seen = t.replicas, c[1]
            n = len(reps)
            if n == len(seen) and (n == 0 or (n == 1 and reps[0].__dict__["_packed"] is seen[0])):
                append(c[0])
                continue
        append(t.packed())
    return out


class _Refused(DaemonError):
    """The operation is well formed but not allowed now; the reply says why."""


Handler = Callable[[JobLedger, str, Any, ClientRequest], dict[str, Any]]
READ_ONLY = (ops.Query, ops.WorkerQuery)
"""Operations that change nothing: a member may answer them from its own state (``read``)."""

_HANDLERS: dict[type, Handler] = {
    ops.Submit: JobLedger._submit,
    ops.AddInputs: JobLedger._addinputs,
    ops.Cancel: JobLedger._cancel,
    ops.Tick: JobLedger._tick,
    ops.Place: JobLedger._place,
    ops.Start: JobLedger._start,
    ops.Result: JobLedger._result,
    ops.Leave: JobLedger._leave,
    ops.CheckpointReport: JobLedger._checkpoint,
    ops.Unreachable: JobLedger._unreachable,
    ops.Query: JobLedger._query,
    ops.WorkerQuery: JobLedger._worker_query,
    ops.AskVotes: JobLedger._ask_votes,
}
"""Each operation's handler (``Batch`` is unpacked before this): an operation without one is
refused at import by ``test_every_operation_has_a_handler``."""
