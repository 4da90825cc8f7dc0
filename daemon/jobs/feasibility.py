"""Can the network place a job at all? Decided at submit, on the submitter's own view.

Theory of operation: a task's replicas must run on distinct volunteers that offer its runtime,
its memory and its attestation level. A job asking for more of them than exist would be
accepted and then wait, task by task, until its deadline (a ``replicas = 10`` job on four
nodes sat at ``3/4 done`` for a day). So the submitter checks first, from what it knows:

- the current epoch's **members** (hard state: everyone who could ever be a worker now), and
- the **candidates** its soft state knows (live peers' gossiped capability records, at most
  ``ops.MAX_CANDIDATES``).

``assess`` returns a ``Verdict``: ``refuse`` (one line: what no current network can give, and
how to change the job) when fewer members exist than replicas, or when every member's record is
known and too few are feasible (a runtime nobody runs, an attestation level nobody has, too
little memory); ``waiting`` when feasible volunteers are short only because not every member's
record is known yet (a node just started, a sparse bootstrap): the job is accepted and
``status``/``watch`` say what it waits for. Pure: the caller passes both views in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.attestation import AttestationLevel
from protocol.messages.ledger import CandidateWire
from daemon.jobs.spec import LEVELS


@dataclass(frozen=True, slots=True)
class Needs:
    """What every replica of a task needs from its volunteer."""

    replicas: int
    memory_mib: int
    min_attestation: int
    runtime: str = "wasm32-wasi"


@dataclass(frozen=True, slots=True)
class Verdict:
    feasible: int
    """Known candidates that could run a replica."""
    refuse: str | None = None
    waiting: str | None = None


def assess(needs: Needs, candidates: Sequence[CandidateWire], members: int) -> Verdict:
    """Whether ``needs`` can be placed, given the known ``candidates`` and ``members`` in the
    current epoch (see the module docstring)."""
    runs = [c for c in candidates if needs.runtime in c.runtimes
            or any(r.startswith(needs.runtime + "@") for r in c.runtimes)]
    roomy = [c for c in runs if c.memory_mib >= needs.memory_mib]
    feasible = [c for c in roomy if c.attestation >= needs.min_attestation]
    n = len(feasible)
    if n >= needs.replicas:
        return Verdict(n)
    want = f"replicas = {needs.replicas} needs {needs.replicas} distinct volunteers"
    if members < needs.replicas:
        return Verdict(n, refuse=f"{want}, and the network has {members} member(s) now: lower "
                                 f"[replication] replicas (and quorum) to at most {members}")
    # Why the known candidates fall short, the first rule that cuts them below the need.
    level = next((k for k, v in LEVELS.items() if v == needs.min_attestation),
                 AttestationLevel(needs.min_attestation).name)
    if len(runs) < needs.replicas:
        why = f"{len(runs)} of the known volunteers run {needs.runtime}"
    elif len(roomy) < needs.replicas:
        why = (f"{len(roomy)} of the known volunteers offer {needs.memory_mib} MiB of memory "
               f"(lower [limits] memory_mb)")
    else:
        why = (f"{n} of the known volunteers have attestation {level} or better "
               f"(lower [replication] min_attestation)")
    if len(candidates) >= members:
        return Verdict(n, refuse=f"{want}, and only {why}")
    return Verdict(n, waiting=f"{n} of {needs.replicas} feasible volunteers known: {why}; "
                              f"{members - len(candidates)} of the {members} members not heard "
                              "from yet")
