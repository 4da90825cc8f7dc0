"""The outcome of verifying attestation evidence: every check with its status and reason.

One rule turns checks into a level. Each check carries ``caps``, the highest level still
possible when that check does not pass: a bad quote signature caps at ``NONE``; an endorsement
key that chains to no trusted CA caps at ``TPM_UNENDORSED``; "launch measurement not compared
with reference values" (a job owner's policy, not ours) caps at the top and so only informs.
The level is the evidence kind's top level lowered by every check that did not pass. Nothing
is promoted by default: an unchecked item that matters says so through its cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocol.attestation import AttestationLevel


class Status(Enum):
    PASS = "pass"
    FAIL = "fail"
    UNCHECKED = "unchecked"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    """Short stable name, e.g. ``nonce``, ``signature``, ``pcr-digest``, ``ek-chain``."""
    status: Status
    detail: str
    """What was found, in words: the reason when it failed or was not checked."""
    caps: AttestationLevel = AttestationLevel.NONE
    """The highest level the evidence can reach when this check does not pass."""

    def line(self) -> str:
        return f"{self.status.value.upper():9} {self.name}: {self.detail}"


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail, AttestationLevel.TEE)


def failed(name: str, detail: str, caps: AttestationLevel = AttestationLevel.NONE) -> Check:
    return Check(name, Status.FAIL, detail, caps)


def unchecked(name: str, detail: str, caps: AttestationLevel) -> Check:
    return Check(name, Status.UNCHECKED, detail, caps)


@dataclass(frozen=True, slots=True)
class VerificationResult:
    kind: str
    """The evidence kind (``tpm2``, ``sev-snp``, ``tdx``, ``none``)."""
    top: AttestationLevel
    """The level this kind of evidence reaches when every check passes."""
    checks: tuple[Check, ...]

    @property
    def level(self) -> AttestationLevel:
        level = self.top
        for check in self.checks:
            if check.status is not Status.PASS:
                level = min(level, check.caps)
        return AttestationLevel(level)

    @property
    def ok(self) -> bool:
        """True when no check failed (unchecked items may still limit the level)."""
        return not self.failed

    @property
    def passed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.PASS)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.FAIL)

    @property
    def unchecked(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.UNCHECKED)

    def reasons(self) -> tuple[str, ...]:
        """Why the level is below ``top``: the detail of every check that lowered it."""
        return tuple(f"{c.name}: {c.detail}" for c in self.checks
                     if c.status is not Status.PASS and c.caps < self.top)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks] + [f"level: {self.level.name}"]
