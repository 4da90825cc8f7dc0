"""What must hold at the end of every job simulation, checked on every live member's ledger.

- **no wrong result accepted**: an accepted task's output is the honest one (the run keeps
  colluders below every job's quorum: that is the assumption a job's quorum makes);
- **no stuck job**: every job ends (done or cancelled) by its deadline, and every task that
  failed names why (no agreement, no result, deadline);
- **every certificate verifies offline** (``verify_certificate``: 2f+1 member signatures, the
  agreement count the job's quorum asks, the honest output's hash), was signed by the shard's
  committee, and states what the ledger accepted;
- **replicas agree**: the members of a shard hold the same job and task states.

- **every accepted task is certified**: the submitter holds its certificate (lost votes
  come again when it asks, ``AskVotes``), counted as ``uncertified``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from daemon.ledger.certificate import verify_certificate
from daemon.ledger.records import DEADLINE, NO_AGREEMENT, NO_RESULT, JobState, TaskState
from daemon.ledger.shard import LEDGER_TICK_ACTIVE_S
from daemon.ledger.state import JobLedger
from protocol.messages.tasks import TaskStatus
from testnet.job_sim.world import honest_output

FAILURE_KINDS = frozenset({NO_AGREEMENT, NO_RESULT, DEADLINE})
DEADLINE_SLACK_MS = int(4 * LEDGER_TICK_ACTIVE_S * 1000)
"""A deadline is noticed at the first ledger tick at or after it."""


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    wrong_accepted: int = 0
    stuck: int = 0
    certificates: int = 0
    certificates_failed: int = 0
    uncertified: int = 0
    tasks: dict[str, int] = field(default_factory=dict)
    """Tasks by outcome (``OK``, ``NO_AGREEMENT``, ...), on one ledger per shard."""

    def add(self, problem: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(problem)


def check(submitter: Any, ledgers: dict[int, list[tuple[str, JobLedger]]]) -> Findings:
    """``ledgers``: shard -> (member name, its ledger) of every live, non-diverged member."""
    out = Findings()
    for p in submitter.jobs.values():
        name = p.id.hex()[:12]
        if p.reply is None or "error" in p.reply:
            out.stuck += 1
            out.add(f"job {name}: submission not ordered: {p.reply}")
            continue
        views = []
        for member, ledger in ledgers.get(p.shard, []):
            job = ledger.jobs.get(p.id)
            if job is None:
                out.add(f"job {name}: missing on {member}")
                out.stuck += 1
                continue
            views.append((member, [(t.state, t.accepted, t.failure) for t in job.tasks],
                          job.state))
            if job.state not in (JobState.DONE, JobState.CANCELLED):
                out.stuck += 1
                open_ = [i for i, t in enumerate(job.tasks) if t.state == TaskState.OPEN]
                out.add(f"job {name}: still {job.state} on {member} (open tasks {open_[:8]}, "
                        f"ledger time {ledger.now_ms - job.submitted_ms} ms after submission)")
                continue
            if job.ended_ms > job.deadline_ms + DEADLINE_SLACK_MS:
                out.stuck += 1
                out.add(f"job {name}: ended {job.ended_ms - job.deadline_ms} ms after its deadline")
            for i, t in enumerate(job.tasks):
                if t.state == TaskState.FAILED and t.failure not in FAILURE_KINDS:
                    out.add(f"job {name} task {i}: failed without a reason ({t.failure!r})")
                if t.state == TaskState.ACCEPTED and t.accepted is not None:
                    right = hashlib.sha256(honest_output(p.id, i, t.input.hash)).digest()
                    if t.accepted.status != TaskStatus.OK or t.accepted.output_hash != right:
                        out.wrong_accepted += 1
                        out.add(f"job {name} task {i}: WRONG result accepted on {member} "
                                f"({t.agreed} agreed, quorum {t.quorum})")
        if len({repr((v[1], v[2])) for v in views}) > 1:
            out.add(f"job {name}: members disagree: {[(m, s) for m, _, s in views]}")
        if not views:
            continue
        _, tasks, _ = views[0]
        for i, (state, accepted, failure) in enumerate(tasks):
            kind = failure if state == TaskState.FAILED else (
                TaskStatus(accepted.status).name if accepted else str(state))
            out.tasks[kind] = out.tasks.get(kind, 0) + 1
            if state == TaskState.ACCEPTED and (p.id, i) not in submitter.certificates:
                out.uncertified += 1
                out.add(f"job {name} task {i}: accepted, but the submitter has no certificate")
    for (jid, task), cert in sorted(submitter.certificates.items()):
        out.certificates += 1
        p = submitter.jobs[jid]
        inp = p.op.inputs[task]
        checks = verify_certificate(cert, None, honest_output(jid, task, inp.hash),
                                    min_agree=p.op.quorum)
        problems = [c.what for c in checks if not c.ok]
        if cert.committee != submitter.world.committee_of(p.shard, cert.epoch):
            problems.append(f"signed by a committee other than the shard's in epoch {cert.epoch}")
        for member, ledger in ledgers.get(p.shard, [])[:1]:
            job = ledger.jobs.get(jid)
            t = job.tasks[task] if job else None
            if t is None or t.accepted is None or t.accepted.output_hash != cert.output_hash \
                    or t.agreed != cert.agreed:
                problems.append(f"does not state what {member}'s ledger accepted")
        if problems:
            out.certificates_failed += 1
            out.add(f"certificate of job {jid.hex()[:12]} task {task}: {'; '.join(problems)}")
    return out
