"""The capability record's attestation report: wire form, validation, verifier statements."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import msgpack
import pytest

from daemon.attest.binding import tee_report_data
from daemon.attest.evidence import (Challenge, EvidenceBundle, EvidenceKind, SnpEvidence,
                                    TdxEvidence, TpmEvidence, evidence_from_wire)
from daemon.attest.facts import SelfReportedFacts
from daemon.attest.report import AttestationReport
from daemon.attest.statement import attested_level, sign_statement
from daemon.attest.tpm.credential import Credential
from daemon.attest.verify import VerifierConfig, verify_evidence
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage, MessageTooLarge
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import NOW, build_tdx_quote, make_intel_pki

NODE = NodeIdentity(hashlib.sha256(b"node").digest())
VERIFIER = NodeIdentity(hashlib.sha256(b"verifier").digest())
NONCE = hashlib.sha256(b"nonce").digest()
FACTS = SelfReportedFacts("Test CPU", 4, 8 << 30, "TestOS", "6.8.0", "x86_64")
PKI = make_intel_pki()
TDX = TdxEvidence(NONCE, build_tdx_quote(tee_report_data(NONCE, NODE.public_key), PKI))
TPM = TpmEvidence(NONCE, b"attest", b"sig", 0x000B, ((0, bytes(32)), (7, b"\x01" * 32)),
                  b"ak", b"ek", b"cert", (b"inter",), b"log", None)
SNP = SnpEvidence(NONCE, bytes(0x4A0), b"vcek", (b"ask", b"ark"))


def report(evidence=None, reasons=("TPM 2.0: /dev/tpmrm0: no device node",)) -> AttestationReport:
    kind = EvidenceKind.NONE if evidence is None else evidence.kind
    return AttestationReport(kind, evidence, (), tuple(reasons), FACTS)


@pytest.mark.parametrize("evidence", [None, TPM, SNP, TDX])
def test_round_trip(evidence) -> None:
    r = report(evidence)
    assert AttestationReport.decode(r.encode()) == r
    wire = r.to_wire()
    assert set(wire) == {"kind", "evidence", "verified_by", "reasons", "self_reported"}
    assert wire["self_reported"]["label"] == "self-reported"


def test_kind_none_carries_the_reasons() -> None:
    wire = report().to_wire()
    assert wire["kind"] == "none" and wire["evidence"] is None
    assert wire["reasons"] == ["TPM 2.0: /dev/tpmrm0: no device node"]


def mutate(path: list[str], value) -> dict:
    wire = report(TPM).to_wire()
    target = wire
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return wire


@pytest.mark.parametrize(("path", "value", "message"), [
    (["kind"], "tpm3", "unknown kind 'tpm3'"),
    (["kind"], "none", "kind 'none' but evidence of kind 'tpm2'"),
    (["evidence", "nonce"], b"short", "must be 32 bytes"),
    (["evidence", "pcr_alg"], 0x0099, "unsupported hash algorithm"),
    (["evidence", "pcrs"], [[7, bytes(32)], [0, bytes(32)]], "out of range or order"),
    (["evidence", "pcrs"], [[0, bytes(20)]], "the bank's digests are 32"),
    (["evidence", "attest"], "text", "expected bytes, got str"),
    (["evidence", "ek_certificate"], b"x" * 10_000, "at most 8192"),
    (["evidence", "surprise"], 1, "unknown field(s) surprise"),
    (["evidence", "signature"], KeyError, "missing field(s) signature"),
    (["reasons"], ["x" * 401], "at most 400"),
    (["self_reported", "label"], "attested", "must be labelled 'self-reported'"),
    (["verified_by"], [{"verifier": b"x"}], "missing field"),
])
def test_bad_reports_are_malformed(path, value, message: str) -> None:
    with pytest.raises(MalformedMessage, match=re.escape(message)):
        AttestationReport.from_wire(mutate(path, value))


def test_bad_bytes_are_malformed_or_too_large() -> None:
    with pytest.raises(MalformedMessage, match="not valid msgpack"):
        AttestationReport.decode(b"\xc1")
    with pytest.raises(MalformedMessage, match="expected a map"):
        AttestationReport.decode(msgpack.packb([1, 2]))
    with pytest.raises(MessageTooLarge):
        AttestationReport.decode(bytes(600 * 1024))
    with pytest.raises(MalformedMessage, match="unknown kind"):
        evidence_from_wire({"kind": 7})


def test_challenge_and_bundle_round_trip() -> None:
    c = Challenge(NONCE, Credential(b"id", b"seed"))
    assert Challenge.from_wire(c.to_wire()) == c
    b = EvidenceBundle(NODE.public_key, TDX)
    assert EvidenceBundle.decode(b.encode()) == b
    with pytest.raises(MalformedMessage, match="format is not"):
        EvidenceBundle.decode(msgpack.packb({"format": "x", "node_public_key": bytes(32),
                                             "evidence": TDX.to_wire()}))


def verified_statement(now: float = NOW):
    result = verify_evidence(TDX, nonce=NONCE, node_public_key=NODE.public_key,
                             config=VerifierConfig(trusted_intel_roots=(PKI.root,)), now=now)
    assert result.level is AttestationLevel.TEE
    return sign_statement(VERIFIER, NODE.public_key, TDX, result, now)


def test_scheduler_believes_only_trusted_recent_valid_statements() -> None:
    s = verified_statement()
    r = report(TDX).with_statement(s)
    assert AttestationReport.decode(r.encode()).verified_by == (s,)
    trusted = {VERIFIER.public_key}
    level = lambda **kw: r.attested_level(**{"subject": NODE.public_key,  # noqa: E731
                                             "trusted_verifiers": trusted, "now": NOW + 10,
                                             "max_age": 3600, **kw})
    assert level() is AttestationLevel.TEE
    assert level(trusted_verifiers=set()) is AttestationLevel.NONE
    assert level(now=NOW + 7200) is AttestationLevel.NONE
    assert level(subject=VERIFIER.public_key) is AttestationLevel.NONE
    forged = dataclasses.replace(s, level=AttestationLevel.TEE, checked_at=s.checked_at + 1)
    assert not forged.is_valid()
    assert attested_level([forged], subject=NODE.public_key, trusted_verifiers=trusted,
                          now=NOW + 10, max_age=3600) is AttestationLevel.NONE


def test_a_verifiers_newer_statement_replaces_its_older_one() -> None:
    old, new = verified_statement(NOW - 100), verified_statement(NOW)
    r = report(TDX).with_statement(old).with_statement(new)
    assert r.verified_by == (new,)
