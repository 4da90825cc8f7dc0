"""The attestation report in a node's capability record: ``{kind, evidence, verified_by,
reasons}`` plus the machine's self-reported facts.

- ``kind``: ``tpm2``, ``sev-snp``, ``tdx``, or ``none`` when the machine offers nothing usable.
- ``evidence``: the latest evidence the node produced (``None`` for kind ``none``). Verifiers
  do not take it on trust: they challenge the node with their own nonce.
- ``verified_by``: signed statements from verifiers that checked the node (``statement``); the
  level the scheduler uses comes from here, never from the node itself.
- ``reasons``: why the kind is what it is, in words: every missing mechanism and why
  ("/dev/tpmrm0: no device node"), and what the evidence lacks ("no EK certificate").
- ``self_reported``: CPU, memory, OS, labelled as claims nobody checked.

``to_wire()``/``from_wire()`` give and validate msgpack-ready primitives; ``encode()``/
``decode()`` add the msgpack bytes with a size cap. Decoding raises only ``MalformedMessage`` or
``MessageTooLarge``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from daemon.attest.evidence import (Evidence, EvidenceKind, SnpEvidence, TdxEvidence, TpmEvidence,
                                    evidence_from_wire)
from daemon.attest.facts import SelfReportedFacts
from daemon.attest.statement import VerifierStatement, attested_level
from daemon.attest.tpm.structures import HASH_NAMES
from daemon.attest.wire import as_map, get_list, get_str, packb, str_list, unpackb
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage
from protocol.identity import node_id_from_public_key

MAX_REASONS = 32
MAX_REASON_LEN = 400
MAX_STATEMENTS = 16
MAX_REPORT = 512 * 1024


@dataclass(frozen=True, slots=True)
class AttestationReport:
    kind: EvidenceKind
    evidence: Evidence | None
    verified_by: tuple[VerifierStatement, ...]
    reasons: tuple[str, ...]
    self_reported: SelfReportedFacts

    def __post_init__(self) -> None:
        actual = EvidenceKind.NONE if self.evidence is None else self.evidence.kind
        if actual is not self.kind:
            raise MalformedMessage(f"attestation report: kind {self.kind.value!r} but evidence "
                                   f"of kind {actual.value!r}")
        if len(self.reasons) > MAX_REASONS or len(self.verified_by) > MAX_STATEMENTS:
            raise MalformedMessage("attestation report: too many reasons or statements")

    # -- wire -----------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind.value,
                "evidence": None if self.evidence is None else self.evidence.to_wire(),
                "verified_by": [s.to_wire() for s in self.verified_by],
                "reasons": list(self.reasons), "self_reported": self.self_reported.to_wire()}

    @classmethod
    def from_wire(cls, obj: Any) -> "AttestationReport":
        w = "attestation report"
        m = as_map(obj, w, {"kind", "evidence", "verified_by", "reasons", "self_reported"})
        kind_text = get_str(m, "kind", w, 16)
        try:
            kind = EvidenceKind(kind_text)
        except ValueError:
            raise MalformedMessage(f"{w}.kind: unknown kind {kind_text!r}") from None
        evidence = None if m["evidence"] is None else evidence_from_wire(m["evidence"])
        statements = tuple(VerifierStatement.from_wire(s)
                           for s in get_list(m, "verified_by", w, MAX_STATEMENTS))
        return cls(kind, evidence, statements,
                   str_list(m, "reasons", w, MAX_REASONS, MAX_REASON_LEN),
                   SelfReportedFacts.from_wire(m["self_reported"]))

    def encode(self) -> bytes:
        return packb(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> "AttestationReport":
        return cls.from_wire(unpackb(data, "attestation report", MAX_REPORT))

    # -- use ------------------------------------------------------------------------------------

    def with_statement(self, statement: VerifierStatement) -> "AttestationReport":
        """This report with ``statement`` added, replacing an older one by the same verifier
        and dropping the oldest when full."""
        kept = [s for s in self.verified_by if s.verifier != statement.verifier]
        kept.append(statement)
        kept.sort(key=lambda s: s.checked_at)
        return replace(self, verified_by=tuple(kept[-MAX_STATEMENTS:]))

    def attested_level(self, *, subject: bytes, trusted_verifiers: Collection[bytes], now: float,
                       max_age: float) -> AttestationLevel:
        """The level the scheduler may rely on (see ``statement.attested_level``)."""
        return attested_level(self.verified_by, subject=subject,
                              trusted_verifiers=trusted_verifiers, now=now, max_age=max_age)

    def lines(self) -> list[str]:
        """Human-readable, as ``novacron attest`` prints it."""
        out = [f"kind: {self.kind.value}", f"evidence: {describe_evidence(self.evidence)}"]
        if self.verified_by:
            out.append("verified_by:")
            out += [f"  - {node_id_from_public_key(s.verifier)}: {s.level.name} at "
                    f"{s.checked_at}" for s in self.verified_by]
        else:
            out.append("verified_by: nobody yet (peers verify evidence against their own nonce)")
        out.append("reasons:" if self.reasons else "reasons: none")
        out += [f"  - {r}" for r in self.reasons]
        out.append("self-reported (claims, not attested):")
        out += [f"  {line}" for line in self.self_reported.lines()]
        return out


def describe_evidence(evidence: Evidence | None) -> str:
    if evidence is None:
        return "none"
    nonce = evidence.nonce.hex()[:16] + "…"
    if isinstance(evidence, TpmEvidence):
        bank = HASH_NAMES.get(evidence.pcr_alg, hex(evidence.pcr_alg))
        extras = [f"EK certificate {'included' if evidence.ek_certificate else 'missing'}",
                  f"event log {'included' if evidence.event_log else 'missing'}"]
        return (f"TPM 2.0 quote over {len(evidence.pcrs)} {bank} PCRs for nonce {nonce} "
                f"({', '.join(extras)})")
    if isinstance(evidence, SnpEvidence):
        return (f"SEV-SNP attestation report for nonce {nonce} (VCEK "
                f"{'included' if evidence.vcek else 'missing'})")
    assert isinstance(evidence, TdxEvidence)
    return f"TDX quote ({len(evidence.quote)} bytes) for nonce {nonce}"
