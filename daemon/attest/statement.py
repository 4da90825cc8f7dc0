"""Verifier statements: "verifier V checked node S's evidence at time t and concluded level L".

A node cannot vouch for itself: the level in its capability record means something only when
a verifier signed it. After verifying a node, a verifier signs a ``VerifierStatement`` with its
own node key; the statements travel in the report's ``verified_by`` field, and the scheduler
believes the ones from verifiers *it* trusts (for example the members of the current
committee), that are recent enough, and that name this node (``attested_level``).

Signed bytes: ``STATEMENT_DOMAIN || msgpack([verifier, subject, kind, level, checked_at,
evidence_digest])``; the domain keeps these signatures from ever verifying as anything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from daemon.attest.evidence import Evidence, EvidenceKind
from daemon.attest.result import VerificationResult
from daemon.attest.wire import as_map, get_bytes, get_int, get_str, packb
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage
from protocol.identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, NodeIdentity, verify_signature

STATEMENT_DOMAIN = b"novacron/attest/verifier-statement/v1\x00"


def evidence_digest(evidence: Evidence) -> bytes:
    """SHA-256 of the evidence's canonical msgpack form: which evidence a statement is about."""
    return hashlib.sha256(packb(evidence.to_wire())).digest()


@dataclass(frozen=True, slots=True)
class VerifierStatement:
    verifier: bytes
    subject: bytes
    kind: str
    level: AttestationLevel
    checked_at: int
    evidence_digest: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return STATEMENT_DOMAIN + packb([self.verifier, self.subject, self.kind, int(self.level),
                                         self.checked_at, self.evidence_digest])

    def is_valid(self) -> bool:
        """The signature is the verifier's over the statement. Never raises."""
        return verify_signature(self.verifier, self.signed_bytes(), self.signature)

    def to_wire(self) -> dict[str, Any]:
        return {"verifier": self.verifier, "subject": self.subject, "kind": self.kind,
                "level": int(self.level), "checked_at": self.checked_at,
                "evidence_digest": self.evidence_digest, "signature": self.signature}

    @classmethod
    def from_wire(cls, obj: Any) -> "VerifierStatement":
        w = "verifier statement"
        m = as_map(obj, w, {"verifier", "subject", "kind", "level", "checked_at",
                            "evidence_digest", "signature"})
        kind = get_str(m, "kind", w, 16)
        if kind not in {k.value for k in EvidenceKind}:
            raise MalformedMessage(f"{w}.kind: unknown kind {kind!r}")
        return cls(get_bytes(m, "verifier", w, PUBLIC_KEY_SIZE, exact=PUBLIC_KEY_SIZE),
                   get_bytes(m, "subject", w, PUBLIC_KEY_SIZE, exact=PUBLIC_KEY_SIZE), kind,
                   AttestationLevel(get_int(m, "level", w, 0, max(AttestationLevel))),
                   get_int(m, "checked_at", w, 0, 1 << 40),
                   get_bytes(m, "evidence_digest", w, 32, exact=32),
                   get_bytes(m, "signature", w, SIGNATURE_SIZE, exact=SIGNATURE_SIZE))


def sign_statement(verifier: NodeIdentity, subject: bytes, evidence: Evidence,
                   result: VerificationResult, now: float) -> VerifierStatement:
    """The statement ``verifier`` makes after checking ``subject``'s ``evidence``."""
    unsigned = VerifierStatement(verifier.public_key, subject, result.kind, result.level,
                                 int(now), evidence_digest(evidence), bytes(SIGNATURE_SIZE))
    return VerifierStatement(unsigned.verifier, unsigned.subject, unsigned.kind, unsigned.level,
                             unsigned.checked_at, unsigned.evidence_digest,
                             verifier.sign(unsigned.signed_bytes()))


def attested_level(statements: Iterable[VerifierStatement], *, subject: bytes,
                   trusted_verifiers: Collection[bytes], now: float, max_age: float,
                   max_skew: float = 60.0) -> AttestationLevel:
    """The highest level a trusted verifier signed for ``subject`` within ``max_age`` seconds
    (tolerating verifier clocks up to ``max_skew`` ahead); ``NONE`` when there is no such
    statement. This is what the scheduler compares with a job's minimum level."""
    best = AttestationLevel.NONE
    for s in statements:
        if (s.subject == subject and s.verifier in trusted_verifiers
                and -max_skew <= now - s.checked_at <= max_age and s.is_valid()):
            best = max(best, s.level)
    return AttestationLevel(best)
