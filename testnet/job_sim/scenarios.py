"""Seeded job-protocol scenarios: one seed decides everything and replays exactly.

A seed picks 1 or 2 shards (committees of 4 or 7, mostly 1 and 4), 5 to 12 workers with behaviours
(``worker.BEHAVIOURS``), 1 to 3 jobs of 1 to 8 tasks (quorum 2 or 3, a few spare replicas,
one job often submitted before its shard's first ledger tick), and a fault plan. Until
``heal_at`` the network drops, duplicates and delays messages and may be partitioned; up to f
members of each committee crash and restart (keeping their disk); workers crash, come back or
leave for good (churn), or (``TRACE_CHURN`` of the seeds) come and go as the hosts of a
synthetic availability trace do, a day of it compressed into the faulty phase. Then the network heals, crashed members come back, and the run goes on
until every job has ended on every member (or the last deadline has long passed) and the
submitter holds a certificate for every accepted task (it asks for lost votes again).
Half the seeds change epoch after the heal, while tasks run: every shard's ledger is handed
over to a new committee (``_hand_over``) and the jobs must finish there.

Colluders are fewer than every job's quorum: that is what a job's quorum assumes. The checker
(``checker.check``) then requires no wrong result accepted, no job stuck, every certificate
valid offline.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from consensus.committee import max_faulty
from consensus.config import ReplicaConfig
from consensus.reconfig import Handoff
from daemon.capabilities import offered_runtimes
from daemon.jobs.tally import ASK_VOTES_S
from daemon.ledger.records import JobState, TaskState
from daemon.sched import AvailabilityHistory, summarize
from protocol.messages import ledger as ops
from protocol.messages.pbft import EndEpoch
from testnet.job_sim.checker import Findings, check
from testnet.job_sim.member import MemberNode
from testnet.job_sim.submitter import PlannedJob, SubmitterNode
from testnet.job_sim.worker import BYZANTINE, WorkerNode
from testnet.job_sim.world import SIM_CONFIG, WALL_START_MS, Keys, World
from testnet.sim import LinkFaults, Network, Simulation

DEADLINE_S = 400
WALL_MS = 5000
HEAL_AT = 20.0
TICK_S = 0.25


@dataclass
class Outcome:
    seed: int
    shards: int = 0
    committee: int = 0
    workers: dict[str, str] = field(default_factory=dict)
    """Worker name -> behaviour."""
    jobs: int = 0
    tasks: int = 0
    findings: Findings = field(default_factory=Findings)
    injected: Counter[str] = field(default_factory=Counter)
    lies: int = 0
    ended_at: float = 0.0
    """Virtual seconds until every job had ended everywhere."""
    certified_at: float = 0.0
    """... and until the submitter held a certificate for every accepted task."""
    steps: int = 0
    wall: float = 0.0
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        f = self.findings
        return not (f.violations or f.wrong_accepted or f.stuck or f.certificates_failed
                    or f.uncertified)

    def summary(self) -> dict[str, Any]:
        f = self.findings
        return {"seed": self.seed, "ok": self.ok, "shards": self.shards,
                "committee": self.committee, "workers": dict(Counter(self.workers.values())),
                "jobs": self.jobs, "tasks": f.tasks, "wrong_accepted": f.wrong_accepted,
                "stuck": f.stuck, "certificates": f.certificates,
                "certificates_failed": f.certificates_failed, "uncertified": f.uncertified,
                "lies": self.lies, "injected": dict(self.injected), "ended_at": self.ended_at,
                "certified_at": self.certified_at,
                "violations": f.violations}


def _behaviours(rng: random.Random, count: int, min_quorum: int, max_quorum: int) -> list[str]:
    """Honest workers enough for the largest quorum and two spares; colluders below the
    smallest quorum; liars, flaky, withholders and crashers at random."""
    out = []
    byzantine = rng.randint(0, max(0, count - max_quorum - 2))
    for _ in range(byzantine):
        out.append(rng.choice(("liar", "liar", "flaky", "equivocator", "withholder", "crasher",
                               "colluder")))
    while out.count("colluder") > min_quorum - 1:
        out.remove("colluder")
        out.append("liar")
    out += ["honest"] * (count - len(out))
    rng.shuffle(out)
    return out


def _candidates(world: World, workers: list[WorkerNode]) -> tuple[ops.CandidateWire, ...]:
    """Every worker's capability record as the soft state has it (a month of uptime; records
    of crashed workers stay until they expire, as gossip's do)."""
    now_s = WALL_START_MS / 1000
    summary = summarize(AvailabilityHistory().started(now_s - 30 * 86400).alive(now_s),
                        now_s).to_wire()
    return tuple(ops.CandidateWire(w.ident.node_id, summary, 2, 4096, offered_runtimes("sim"),
                                   0, 0, 10, f"d{i}", 0) for i, w in enumerate(workers))


TRACE_CHURN = 0.3
"""The share of seeds whose workers come and go as hosts of an availability trace do."""
TRACE_HOURS_PER_SECOND = 0.5
"""Trace time runs this many hours per simulated second (a day of churn before the heal)."""


def _trace_churn(workers: list[WorkerNode], rng: random.Random, out: Outcome
                 ) -> list[tuple[float, str, str]]:
    """Crash and restart events following synthetic availability traces (Failure Trace
    Archive fits and office desktops, ``testnet.traces``), time compressed: a host that goes
    down in its trace crashes here, and restarts when its trace has it up again."""
    from testnet.traces import generate_traces

    traces = generate_traces(len(workers), seed=rng.getrandbits(32), duration_s=4 * 86400.0)
    speed = TRACE_HOURS_PER_SECOND * 3600
    events: list[tuple[float, str, str]] = []
    for w, tr in zip(workers, traces):
        start = float(tr.up[0][0]) + rng.uniform(0, 2 * 86400) if len(tr.up) else 0.0
        was_up = True
        for a, b in tr.up:
            for t, up in ((float(a), True), (float(b), False)):
                at = (t - start) / speed
                if 0 < at < HEAL_AT - 0.5 and up != was_up:
                    events.append((at, "restart" if up else "crash", w.name))
                    was_up = up
        out.injected["trace_churn_worker"] += 1
    return events


HANDOVER_AFTER_HEAL = (0.0, 20.0)
"""When the epoch changes, after the heal: while tasks run, are reissued and are accepted."""


def _hand_over(sim: Simulation, world: World, members: list[MemberNode], rng: random.Random,
               out: Outcome, candidates: Any) -> None:
    """Epoch 1 -> 2 on every shard, as the daemon does it: every old member submits
    ``EndEpoch`` to its committee; once the epoch has ended (``EpochEnded``: the final
    checkpoint and its proof), a new committee of fresh members fetches the final state and
    carries on, and every node's requests follow the shard to it."""
    sim.run_until(sim.now + rng.uniform(*HANDOVER_AFTER_HEAL))
    for shard, cfg in sorted(world.shards.items()):
        old = [m for m in members if m.shard == shard and m.epoch == cfg.epoch]
        for m in old:
            if sim.is_up(m.name):
                raw = m.signer.seal(EndEpoch(shard, cfg.epoch), sim.now)
                for pk in cfg.committee:
                    world.send_raw(m.name, pk, raw)
        if not sim.run_until(sim.now + 60, stop=lambda: any(m.ended for m in old)):
            out.findings.add(f"shard {shard}: epoch {cfg.epoch} did not end within 60 s")
            continue
        ended = next(m.ended for m in old if m.ended is not None)
        handoff = Handoff(shard, cfg.epoch, ended.seq, ended.digest, ended.proof)
        idents = [world.keys.new() for _ in cfg.committee]
        new = ReplicaConfig(shard, cfg.epoch + 1, tuple(i.public_key for i in idents),
                            **SIM_CONFIG)
        world.set_committee(new)
        for k, ident in enumerate(idents):
            name = f"s{shard}e{new.epoch}m{k}"
            world.add(name, ident)
            node = MemberNode(world, name, ident, new, candidates, handoff=handoff)
            members.append(node)
            sim.add_node(name, node)
        out.injected["epoch_handover"] += 1


def run_seed(seed: int, *, faults: bool = True, trace: bool = False,
             colluders: int | None = None, handover: float = 0.5) -> Outcome:
    """``colluders``: that many workers collude whatever the jobs' quorums (to show the
    checker catching what a quorum cannot prevent); default: fewer than every quorum.
    ``handover``: the probability of an epoch change (a new committee for every shard)."""
    t0 = time.perf_counter()
    rng = random.Random(f"jobsim-{seed}")
    sim = Simulation(seed, Network(), tick_interval=TICK_S)
    sim.keep_log = trace
    world = World(sim, Keys(random.Random(rng.getrandbits(64))))
    out = Outcome(seed)

    # -- the network: shards, committees, workers, one submitter -----------------------------
    out.shards = rng.choice((1, 1, 1, 2))
    out.committee = rng.choice((4, 4, 4, 4, 7))
    members: list[MemberNode] = []
    workers: list[WorkerNode] = []
    cands: list[Any] = []
    for shard in range(out.shards):
        idents = [world.keys.new() for _ in range(out.committee)]
        cfg = ReplicaConfig(shard, 1, tuple(i.public_key for i in idents), **SIM_CONFIG)
        world.set_committee(cfg)
        for k, ident in enumerate(idents):
            name = f"s{shard}m{k}"
            world.add(name, ident)
            world.skew_ms[name] = rng.randint(-2000, 2000)
            members.append(MemberNode(world, name, ident, cfg, lambda: cands[0]))
    quorums = [rng.choice((2, 2, 3)) for _ in range(rng.randint(1, 3))]
    kinds = _behaviours(rng, rng.randint(5, 12), min(quorums), max(quorums))
    if colluders is not None:
        kinds = ["colluder"] * colluders + [k for k in kinds if k == "honest"][colluders:]
    for k, kind in enumerate(kinds):
        ident = world.keys.new()
        name = f"w{k}"
        world.add(name, ident)
        workers.append(WorkerNode(world, name, ident, kind, rng.uniform(0.5, 4.0)))
        out.workers[name] = kind
    cands.append(_candidates(world, workers))
    planned = []
    for j, q in enumerate(quorums):
        n = rng.randint(1, 8)
        inputs = tuple(ops.TaskInput(bytes([j, i]) * 16, 2, bytes([j, i])) for i in range(n))
        spec = ops.Submit(name=f"job{j}", module_hash=bytes([j]) * 32, module_size=100,
                          argv=("m",), inputs=inputs, fuel=10**9, memory_pages=16,
                          wall_ms=WALL_MS, max_output=1024, replicas=q, quorum=q,
                          max_replicas=q + rng.randint(2, 4), min_attestation=0,
                          deadline_s=DEADLINE_S, clock_ns=0, nonce=seed * 10 + j, total_tasks=n,
                          runtime="wasm32-wasi")
        at = 0.0 if j == 0 and rng.random() < 0.5 else rng.uniform(0, HEAL_AT / 2)
        planned.append(PlannedJob(at, spec))
        out.tasks += n
    out.jobs = len(planned)
    sub_ident = world.keys.new()
    world.add("sub", sub_ident)
    submitter = SubmitterNode(world, "sub", sub_ident, planned)
    for node in [*members, *workers]:
        sim.add_node(node.name, node)
    sim.add_node("sub", submitter)

    # -- faults until the heal ----------------------------------------------------------------
    events: list[tuple[float, str, str]] = []
    if faults:
        sim.network.faults = LinkFaults(drop=rng.uniform(0, 0.1), duplicate=rng.uniform(0, 0.1),
                                        min_delay=0.001, max_delay=rng.choice((0.01, 0.05, 0.2)))
        out.injected["lossy_network"] += 1
        names = [n.name for n in (*members, *workers)] + ["sub"]
        for _ in range(rng.choice((0, 0, 1, 2))):
            start = rng.uniform(0, HEAL_AT - 5)
            end = rng.uniform(start, HEAL_AT)
            nodes = list(names)
            rng.shuffle(nodes)
            cut = rng.randint(1, len(nodes) - 1)
            events += [(start, "partition", repr((nodes[:cut], nodes[cut:]))),
                       (end, "unpartition", "")]
        for shard in range(out.shards):
            cm = [m.name for m in members if m.shard == shard]
            for name in rng.sample(cm, k=rng.randint(0, max_faulty(len(cm)))):
                t = rng.uniform(0, HEAL_AT - 1)
                events += [(t, "crash", name), (rng.uniform(t, HEAL_AT), "restart", name)]
        if rng.random() < TRACE_CHURN:
            events += _trace_churn(workers, rng, out)
        else:
            for w in rng.sample(workers, k=rng.randint(0, max(0, len(workers) // 3))):
                t = rng.uniform(1, HEAL_AT - 1)
                events.append((t, "crash", w.name))
                if rng.random() < 0.7:  # else it left for good (churn)
                    events.append((rng.uniform(t, HEAL_AT + 60), "restart", w.name))
                else:
                    out.injected["worker_left"] += 1
    events.sort(key=lambda e: e[0])
    for t, what, arg in events:
        sim.run_until(t)
        out.injected[what] += 1
        if what == "partition":
            sim.network.partition(*eval(arg))  # noqa: S307 - our own repr of two name lists
        elif what == "unpartition":
            sim.network._partition = None
        elif what == "crash":
            sim.crash(arg)
        elif what == "restart" and not sim.is_up(arg):
            sim.restart(arg, keep_state=True)
    if sim.now < HEAL_AT:
        sim.run_until(HEAL_AT)
    sim.network.heal()
    for m in members:
        if not sim.is_up(m.name):
            sim.restart(m.name, keep_state=True)
    if not sim.is_up("sub"):
        sim.restart("sub", keep_state=True)

    # -- an epoch change: each shard's state goes to a new committee, jobs in flight ----------
    if rng.random() < handover:
        _hand_over(sim, world, members, rng, out, lambda: cands[0])

    # -- until every job has ended on every member ----------------------------------------------
    def ended() -> bool:
        for m in members:
            if not m.current:
                continue
            ledger = m.ledger
            for p in submitter.jobs.values():
                if p.shard != m.shard:
                    continue
                job = ledger.jobs.get(p.id) if ledger is not None else None
                if job is None or job.state not in (JobState.DONE, JobState.CANCELLED):
                    return False
        return True

    def certified() -> bool:
        for m in members:
            if not m.current:
                continue
            ledger = m.ledger
            for p in submitter.jobs.values():
                job = ledger.jobs.get(p.id) if ledger is not None and p.shard == m.shard else None
                if job is not None and any(t.state == TaskState.ACCEPTED and
                                           (p.id, i) not in submitter.certificates
                                           for i, t in enumerate(job.tasks)):
                    return False
        return True

    limit = DEADLINE_S + HEAL_AT + 60
    while sim.now < limit and not ended():
        sim.run_for(2.0)
    out.ended_at = round(sim.now, 1)
    # Votes lost on the way come again when the submitter asks (``AskVotes``).
    limit = sim.now + 2 * ASK_VOTES_S + 5
    while sim.now < limit and not certified():
        sim.run_for(2.0)
    out.certified_at = round(sim.now, 1)

    ledgers: dict[int, list[tuple[str, Any]]] = {}
    for m in members:
        if not m.current:
            continue
        if m.ledger is not None and m.diverged is None:
            ledgers.setdefault(m.shard, []).append((m.name, m.ledger))
        elif m.diverged is not None:
            out.findings.add(f"{m.name} diverged: {m.diverged}")
    found = check(submitter, ledgers)
    found.violations = out.findings.violations + found.violations
    out.findings = found
    out.lies = sum(w.lied for w in workers if w.behaviour in BYZANTINE)
    out.steps = sim.steps
    out.trace = sim.log
    out.wall = time.perf_counter() - t0
    return out
