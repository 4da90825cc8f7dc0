"""Churn simulation: place a stream of tasks on hosts that come and go, under five policies.

Theory of operation. Hosts follow their traces (ground truth). Each host runs at most one
task at a time. Jobs arrive (Poisson) over the window, each a bag of tasks whose durations
are log-uniform between 10 minutes and 8 hours. Pending tasks wait in one queue: jobs in
arrival order, longest task first within a job, preempted tasks back at the head. Whenever a
host comes up, finishes a task or a job arrives, the queue is served in order: the policy
picks one of the hosts that are up and idle, or the task waits. A host that goes down while
running a task preempts it; the task restarts from scratch on another host.

Fairness: every policy sees the same hosts, the same task stream, the same capacity rule and
the same queue discipline; only the choice of host differs.

- ``random``      - uniform among idle up hosts (seeded);
- ``on_fraction`` - BOINC's statistic: the highest long-run on-fraction (from the summaries);
- ``ours``        - ``daemon.sched.place`` over idle up hosts, forecasting from the gossiped
  summaries and each host's current session start, exactly as the committee would;
- ``known_law``   - our rule (the idle host most likely to finish the task) with a perfect
  model: P(finish) from the law each host's sessions were drawn from (``HostTrace.law``),
  conditioned on the current session's age; hosts without a closed-form law (office
  desktops) are forecast as ``ours`` forecasts them. It knows the distribution, not the
  future: the bound for any forecaster of these hosts, and the measure of how much of our
  gap to the oracle is the forecast's fault;
- ``oracle``      - knows each host's true remaining uptime: the idle host whose remaining
  uptime covers the task with the least to spare (best fit, keeping long-lived hosts for long
  tasks), else the one that stays up longest. A hindsight bound, not a policy anyone can run.

Reported per policy: preemptions (and per task), compute hours lost to them, mean and 95th
percentile job makespan (last task done minus job arrival), mean task flow time.

Resumable tasks (``Resumable``): the task checkpoints every ``interval_s`` of its own run time
and a preempted task continues on the next host from its last checkpoint, paying
``resume_cost_s`` there first (fetching and restoring the snapshot: no task progress, counted as
lost if that host leaves too). Only the work since the last checkpoint, plus those resume
costs, is lost. The chooser is asked to place the *next* ``horizon_s`` of the task's work (or
what remains, if less), not the whole of it: a resumable task needs a host likely to reach its
next checkpoints, not one that stays up for its whole run. ``short_host_placements`` counts
placements on hosts whose true remaining uptime was shorter than the whole task, and
``short_host_work_h`` the task work those placements kept (checkpointed or finished): always 0
when tasks restart from zero.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from daemon.sched.placement import SCORE_QUANTUM, Candidate, PlacementInputs, TaskNeeds, place
from daemon.sched.predictor import ModelTable, Predictor
from daemon.sched.summary import AvailabilitySummary
from daemon.sched.timebase import HOUR
from protocol.attestation import AttestationLevel
from protocol.identity import NodeId
from testnet.traces.trace import HostTrace

MIN_TASK_S = 600.0
MAX_TASK_S = 8 * HOUR


@dataclass(frozen=True, slots=True)
class SimTask:
    task_id: int
    job_id: int
    arrival: float
    duration_s: float


def make_workload(
    rng: np.random.Generator, t0: float, t1: float, *, mean_gap_s: float, tasks_per_job: int,
) -> list[SimTask]:
    """Jobs arriving as a Poisson process in ``[t0, t1)``, each ``tasks_per_job`` tasks."""
    tasks: list[SimTask] = []
    t = t0 + rng.exponential(mean_gap_s)
    job = 0
    while t < t1:
        durs = np.exp(rng.uniform(np.log(MIN_TASK_S), np.log(MAX_TASK_S), tasks_per_job))
        for d in sorted(durs.tolist(), reverse=True):
            tasks.append(SimTask(len(tasks), job, t, d))
        job += 1
        t += rng.exponential(mean_gap_s)
    return tasks


Chooser = Callable[[SimTask, list[int], float], int]
"""Given a task, the idle up hosts (indices, ascending) and now: the host to run it on."""


def random_policy(seed: int) -> Chooser:
    rng = np.random.default_rng(seed)
    return lambda task, idle, now: idle[int(rng.integers(len(idle)))]


class _Sessions:
    """Each host's current up session, looked up in its trace once per session, not per query."""

    def __init__(self, traces: Sequence[HostTrace]) -> None:
        self._traces = traces
        self._cache: dict[int, tuple[float, float]] = {}

    def current(self, h: int, now: float) -> tuple[float, float]:
        hit = self._cache.get(h)
        if hit is None or not hit[0] <= now < hit[1]:
            start = float(self._traces[h].session_start(now))
            hit = (start, now + float(self._traces[h].remaining_up(now)))
            self._cache[h] = hit
        return hit


def _tie(task: SimTask, host: int) -> bytes:
    return hashlib.blake2b(f"{task.task_id}/{host}".encode(), digest_size=8).digest()


def on_fraction_policy(summaries: Sequence[AvailabilitySummary]) -> Chooser:
    onf = [s.on_fraction for s in summaries]
    return lambda task, idle, now: min(idle, key=lambda h: (-onf[h], _tie(task, h)))


def oracle_policy(traces: Sequence[HostTrace]) -> Chooser:
    sessions = _Sessions(traces)

    def choose(task: SimTask, idle: list[int], now: float) -> int:
        rem = [sessions.current(h, now)[1] - now for h in idle]
        fits = [(r, _tie(task, h), h) for r, h in zip(rem, idle) if r >= task.duration_s]
        if fits:
            return min(fits)[2]
        return max((r, _tie(task, h), h) for r, h in zip(rem, idle))[2]
    return choose


def known_law_policy(
    traces: Sequence[HostTrace], summaries: Sequence[AvailabilitySummary], predictor: Predictor,
) -> Chooser:
    """The host most likely to finish, forecast from each host's true law (see the module
    docstring); ties broken as ``place`` breaks them, per task."""
    sessions = _Sessions(traces)
    table = ModelTable.from_summaries(summaries)
    has_law = np.array([tr.law is not None for tr in traces])
    shape = np.array([tr.law.shape if tr.law is not None else 1.0 for tr in traces])
    scale_h = np.array([tr.law.scale_h if tr.law is not None else 1.0 for tr in traces])

    def choose(task: SimTask, idle: list[int], now: float) -> int:
        rows = np.array(idle, dtype=np.int64)
        start = np.array([sessions.current(h, now)[0] for h in idle])
        age_h = (now - start) / HOUR
        k, lam = shape[rows], scale_h[rows]
        p = np.exp((age_h / lam) ** k - ((age_h + task.duration_s / HOUR) / lam) ** k)
        guess = ~has_law[rows]
        if guess.any():
            p[guess] = predictor.p_up_table(table, rows[guess], now, task.duration_s, up_since=start[guess])
        q = np.round(p / SCORE_QUANTUM).astype(np.int64)
        return min(zip((-q).tolist(), (_tie(task, h) for h in idle), idle))[2]
    return choose


def ours_policy(
    traces: Sequence[HostTrace], summaries: Sequence[AvailabilitySummary], predictor: Predictor,
) -> Chooser:
    """The real placement: candidates carry the gossiped summary with the current up_since."""
    cache: dict[int, tuple[float, Candidate]] = {}
    sessions = _Sessions(traces)

    def candidate(h: int, now: float) -> Candidate:
        start = sessions.current(h, now)[0]
        hit = cache.get(h)
        if hit is None or hit[0] != start:
            cand = Candidate(
                node_id=NodeId(traces[h].host_id),
                availability=replace(summaries[h], up_since=start),
                cores=1, memory_mib=4096, runtimes=frozenset({"wasm32-wasi"}),
                attestation=AttestationLevel.NONE, reputation=1.0, load=0.0, link_s=0.0,
                domain=traces[h].host_id,
            )
            cache[h] = hit = (start, cand)
        return hit[1]

    index = {tr.host_id: i for i, tr in enumerate(traces)}
    if len(index) != len(traces):
        raise ValueError("host ids must be unique (archives reuse names: key hosts by node id)")

    def choose(task: SimTask, idle: list[int], now: float) -> int:
        inputs = PlacementInputs(
            needs=TaskNeeds(duration_s=task.duration_s),
            candidates=tuple(candidate(h, now) for h in idle),
            now=now, tie_seed=task.task_id.to_bytes(8, "big"), predictor=predictor, max_rejected=0,
        )
        return index[place(inputs).chosen[0]]
    return choose


@dataclass(frozen=True, slots=True)
class ChurnResult:
    policy: str
    tasks: int
    completed: int
    preemptions: int
    lost_h: float
    mean_job_makespan_h: float
    p95_job_makespan_h: float
    mean_flow_h: float
    short_host_placements: int = 0
    short_host_work_h: float = 0.0
    resumes: int = 0

    @property
    def preemptions_per_task(self) -> float:
        return self.preemptions / self.tasks if self.tasks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks, "completed": self.completed, "preemptions": self.preemptions,
            "preemptions_per_task": round(self.preemptions_per_task, 4),
            "lost_compute_h": round(self.lost_h, 1),
            "mean_job_makespan_h": round(self.mean_job_makespan_h, 3),
            "p95_job_makespan_h": round(self.p95_job_makespan_h, 3),
            "mean_task_flow_h": round(self.mean_flow_h, 3),
            "short_host_placements": self.short_host_placements,
            "short_host_work_kept_h": round(self.short_host_work_h, 1), "resumes": self.resumes,
        }


@dataclass(frozen=True, slots=True)
class Resumable:
    """Tasks checkpoint every ``interval_s`` of run time (see the module docstring)."""

    interval_s: float
    resume_cost_s: float = 60.0
    horizon_s: float = 2 * HOUR

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.resume_cost_s < 0 or self.horizon_s <= 0:
            raise ValueError("checkpoint interval and horizon must be positive, cost >= 0")


_DONE, _DOWN, _UP, _ARRIVE = 0, 1, 2, 3  # at equal times: finish before leaving, then arrivals


def simulate(
    name: str, traces: Sequence[HostTrace], tasks: Sequence[SimTask], choose: Chooser,
    t0: float, t_end: float, resumable: Resumable | None = None,
) -> ChurnResult:
    """Run ``tasks`` on ``traces`` from ``t0`` until all finish or ``t_end``; with
    ``resumable``, preempted tasks continue from their last checkpoint."""
    events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, payload)
    seq = 0
    up = [bool(tr.is_up(t0)) for tr in traces]
    for h, tr in enumerate(traces):
        for s, e in tr.up:
            if e <= t0 or s >= t_end:
                continue
            if s > t0:
                events.append((s, _UP, seq, h))
                seq += 1
            events.append((e, _DOWN, seq, h))
            seq += 1
    by_arrival: dict[float, list[int]] = {}
    for tk in tasks:
        by_arrival.setdefault(tk.arrival, []).append(tk.task_id)
    for t, ids in by_arrival.items():
        events.append((t, _ARRIVE, seq, ids[0]))
        seq += 1
    heapq.heapify(events)
    running: dict[int, tuple[int, float, int, float, bool]] = {}  # host -> (task, start, seq,
    # setup, placed on a host that could not have run the whole task)
    idle = {h for h in range(len(traces)) if up[h]}
    queue: deque[int] = deque()
    done_at: dict[int, float] = {}
    remaining = [t.duration_s for t in tasks]  # work left, after the last checkpoint
    preemptions = resumes = short = 0
    lost = short_work = 0.0

    def dispatch(now: float) -> None:
        nonlocal seq, resumes, short
        while queue and idle:
            tid = queue.popleft()
            left = remaining[tid]
            ask = tasks[tid]
            if resumable is not None:
                ask = replace(ask, duration_s=min(left, resumable.horizon_s))
            h = choose(ask, sorted(idle), now)
            idle.discard(h)
            seq += 1
            setup = 0.0
            if resumable is not None and left < tasks[tid].duration_s:
                setup = resumable.resume_cost_s
                resumes += 1
            too_short = float(traces[h].remaining_up(now)) < tasks[tid].duration_s
            short += too_short
            running[h] = (tid, now, seq, setup, too_short)
            heapq.heappush(events, (now + setup + left, _DONE, seq, h))

    while events and len(done_at) < len(tasks):
        now, kind, ev_seq, x = heapq.heappop(events)
        if now > t_end:
            break
        if kind == _DONE:
            run = running.get(x)
            if run is None or run[2] != ev_seq:
                continue  # that attempt was preempted
            del running[x]
            done_at[run[0]] = now
            if run[4]:
                short_work += remaining[run[0]]
            if up[x]:
                idle.add(x)
        elif kind == _DOWN:
            up[x] = False
            idle.discard(x)
            run = running.pop(x, None)
            if run is not None:
                tid, began, _, setup, too_short = run
                saved = 0.0
                if resumable is not None:
                    worked = max(0.0, now - began - setup)
                    saved = (worked // resumable.interval_s) * resumable.interval_s
                    remaining[tid] -= saved
                    short_work += saved if too_short else 0.0
                preemptions += 1
                lost += now - began - saved
                queue.appendleft(tid)
        elif kind == _UP:
            up[x] = True
            if x not in running:
                idle.add(x)
        else:
            queue.extend(by_arrival[tasks[x].arrival])
        dispatch(now)

    jobs: dict[int, list[SimTask]] = {}
    for tk in tasks:
        jobs.setdefault(tk.job_id, []).append(tk)
    spans = [
        (max(done_at[t.task_id] for t in job) - job[0].arrival) / HOUR
        for job in jobs.values() if all(t.task_id in done_at for t in job)
    ]
    flows = [(done_at[t.task_id] - t.arrival) / HOUR for t in tasks if t.task_id in done_at]
    return ChurnResult(
        policy=name, tasks=len(tasks), completed=len(done_at), preemptions=preemptions,
        lost_h=lost / HOUR,
        mean_job_makespan_h=float(np.mean(spans)) if spans else float("nan"),
        p95_job_makespan_h=float(np.percentile(spans, 95)) if spans else float("nan"),
        mean_flow_h=float(np.mean(flows)) if flows else float("nan"),
        short_host_placements=short, short_host_work_h=short_work / HOUR, resumes=resumes,
    )
