"""The safety checker: runs after every simulator step.

What must hold among *correct* replicas (faulty ones - Byzantine, Twins, restarted with lost
state - are not checked, only blamed):

- each executes batches in sequence order without gaps (state transfer may jump to a stable
  checkpoint; a restart re-executes from its stable checkpoint);
- no two execute different batches at one sequence number - so their committed logs are
  prefixes of one another;
- no two have different state digests at one stable checkpoint.

When a conflict happens anyway (only possible with more than f faulty replicas), the checker
names the offenders from signed evidence: members who signed both quorum certificates of the
conflicting slot (``consensus.evidence.conflicting_qcs``), and equivocations that correct
replicas caught on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consensus.actions import Committed, Misbehaviour
from consensus.evidence import VoteConflict, conflicting_qcs


@dataclass
class Conflict:
    seq: int
    first: tuple[str, bytes, Any]
    second: tuple[str, bytes, Any]
    """(replica name, digest, quorum certificate) of each side."""
    offenders: list[VoteConflict] = field(default_factory=list)


class SafetyChecker:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.by_seq: dict[int, tuple[str, bytes, Any]] = {}
        self.last: dict[str, int] = {}
        self.stable_digests: dict[int, tuple[str, bytes]] = {}
        self.violations: list[str] = []
        self.conflicts: list[Conflict] = []
        self.evidence: list[Misbehaviour] = []
        self.commits = 0
        self.raise_on_violation = True

    def _correct(self, name: str) -> bool:
        return not self.cluster.replicas[name].faulty

    def committed(self, name: str, a: Committed) -> None:
        if not self._correct(name):
            return
        self.commits += 1
        last = self.last.get(name, 0)
        if a.seq != last + 1:
            self.violations.append(f"{name} executed {a.seq} after {last}")
        self.last[name] = a.seq
        prev = self.by_seq.get(a.seq)
        if prev is None:
            self.by_seq[a.seq] = (name, a.digest, a.qc)
        elif prev[1] != a.digest:
            c = Conflict(a.seq, prev, (name, a.digest, a.qc))
            if prev[2] is not None and a.qc is not None:
                c.offenders = conflicting_qcs(prev[2], a.qc, self.cluster.cfg.committee,
                                              self.cluster.keys.verifier.verify_vote)
            self.conflicts.append(c)
            self.violations.append(f"{prev[0]} and {name} committed different batches at "
                                   f"seq {a.seq}")

    def installed(self, name: str, seq: int, digest: bytes) -> None:
        if self._correct(name):
            self.last[name] = seq
            self.stable(name, seq, digest)

    def restarted(self, name: str, stable_seq: int) -> None:
        self.last[name] = stable_seq

    def stable(self, name: str, seq: int, digest: bytes) -> None:
        if seq == 0 or not self._correct(name):
            return
        prev = self.stable_digests.get(seq)
        if prev is None:
            self.stable_digests[seq] = (name, digest)
        elif prev[1] != digest:
            self.violations.append(f"{prev[0]} and {name} have different stable checkpoints "
                                   f"at seq {seq}")

    def misbehaviour(self, name: str, a: Misbehaviour) -> None:
        if self._correct(name) and a.evidence is not None:
            self.evidence.append(a)

    def diverged(self, name: str, err: Exception) -> None:
        if self._correct(name):
            self.violations.append(f"{name}: {err}")

    def offender_keys(self) -> set[bytes]:
        """Keys proven faulty by signed evidence (conflicting certificates, equivocations)."""
        keys = {v.offender for c in self.conflicts for v in c.offenders}
        keys |= {m.offender for m in self.evidence}
        return keys

    def invariant(self, sim: Any) -> str | None:
        if self.violations and self.raise_on_violation:
            return self.violations[0]
        return None
