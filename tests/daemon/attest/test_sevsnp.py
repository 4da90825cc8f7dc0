"""SEV-SNP report parsing and offline checks on hand-built reports (see attest_fixtures)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.attest.binding import tee_report_data
from daemon.attest.evidence import SnpEvidence
from daemon.attest.result import Status, VerificationResult
from daemon.attest.sevsnp import REPORT_SIZE, TcbVersion, parse_cert_table, parse_report, snp_checks
from daemon.attest.verify import VerifierConfig, verify_evidence
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import (CHIP_ID, NOW, TCB, AmdPki, build_cert_table,
                                                 build_snp_report, der, make_amd_pki)

NODE = NodeIdentity(hashlib.sha256(b"snp node").digest())
NONCE = hashlib.sha256(b"nonce").digest()
WHEN = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)


@pytest.fixture(scope="module")
def pki() -> AmdPki:
    return make_amd_pki()


def evidence(pki: AmdPki, report: bytes | None = None, **kw: object) -> SnpEvidence:
    report = report or build_snp_report(tee_report_data(NONCE, NODE.public_key), pki.vcek_key,
                                        **kw)  # type: ignore[arg-type]
    return SnpEvidence(NONCE, report, der(pki.vcek), (der(pki.ask), der(pki.ark)))


def verify(ev: SnpEvidence, pki: AmdPki | None, *, nonce: bytes = NONCE,
           key: bytes = NODE.public_key) -> VerificationResult:
    config = VerifierConfig(trusted_amd_roots=(pki.ark,) if pki else ())
    return verify_evidence(ev, nonce=nonce, node_public_key=key, config=config, now=NOW)


def status(result: VerificationResult, name: str) -> tuple[Status, str]:
    [c] = [c for c in result.checks if c.name == name]
    return c.status, c.detail


def test_fields_are_read_from_the_published_offsets(pki: AmdPki) -> None:
    raw = build_snp_report(tee_report_data(NONCE, NODE.public_key), pki.vcek_key, version=3,
                           vmpl=1, policy=0x30000)
    report = parse_report(raw)
    assert (report.version, report.vmpl, report.policy, report.signing_key) == (3, 1, 0x30000,
                                                                               "VCEK")
    assert report.report_data == tee_report_data(NONCE, NODE.public_key)
    assert report.measurement == hashlib.sha384(b"guest image").digest()
    assert report.chip_id == CHIP_ID and report.cpuid_family == 0x19
    assert (report.reported_tcb.boot_loader, report.reported_tcb.snp,
            report.reported_tcb.microcode) == (TCB["bl"], TCB["snp"], TCB["ucode"])
    assert report.signed_bytes == raw[:0x2A0] and not report.debug_allowed


def test_turin_tcb_layout_differs() -> None:
    raw = int.from_bytes(bytes([9, 3, 1, 8, 0, 0, 0, 115]), "little")
    assert TcbVersion.decode(raw, turin=True) == TcbVersion(raw, 3, 1, 8, 115)
    assert TcbVersion.decode(raw, turin=False).boot_loader == 9


def test_genuine_report_with_trusted_ark_is_tee_level(pki: AmdPki) -> None:
    result = verify(evidence(pki), pki)
    assert result.level is AttestationLevel.TEE, result.lines()
    assert [c.name for c in result.unchecked] == ["tcb-currency", "revocation", "measurement"]
    assert status(result, "vcek-chain")[1] == ("chains to a trusted AMD root: CN=SEV-VCEK -> "
                                               "CN=SEV-Milan -> CN=ARK-Milan")


def test_without_a_configured_amd_root_the_level_is_none(pki: AmdPki) -> None:
    result = verify(evidence(pki), None)
    assert result.ok and result.level is AttestationLevel.NONE
    assert result.reasons() == ("vcek-chain: VCEK not chained to a trusted AMD root (none "
                                "configured)",)


def test_missing_vcek_is_stated(pki: AmdPki) -> None:
    result = verify(dataclasses.replace(evidence(pki), vcek=None), pki)
    assert result.level is AttestationLevel.NONE
    assert status(result, "signature")[1].startswith("no VCEK certificate supplied")


def test_altered_measurement_breaks_the_signature(pki: AmdPki) -> None:
    raw = bytearray(evidence(pki).report)
    raw[0x95] ^= 0x40
    result = verify(evidence(pki, bytes(raw)), pki)
    assert result.level is AttestationLevel.NONE
    assert status(result, "signature") == (Status.FAIL, "the VCEK signature over bytes "
                                           "0x000-0x29F does not verify (report altered or "
                                           "another chip's key)")


def test_corrupted_signature_value_is_out_of_range(pki: AmdPki) -> None:
    raw = bytearray(evidence(pki).report)
    raw[0x2A0:0x2A0 + 72] = b"\xff" * 72
    assert status(verify(evidence(pki, bytes(raw)), pki), "signature") == (
        Status.FAIL, "signature R or S is out of range (corrupted)")


def test_another_chips_vcek_is_refused(pki: AmdPki) -> None:
    other = make_amd_pki(chip_id=hashlib.sha512(b"other chip").digest(),
                         tcb={**TCB, "snp": 7})
    ev = SnpEvidence(NONCE, build_snp_report(tee_report_data(NONCE, NODE.public_key),
                                             other.vcek_key),
                     der(other.vcek), (der(other.ask), der(other.ark)))
    s, detail = status(verify(ev, other), "vcek-tcb")
    assert s is Status.FAIL
    assert detail == ("the VCEK does not match the report: its hwID is another chip's; SNP SPL 7 "
                      "differs from the report's 8")


def test_debuggable_guest_is_refused(pki: AmdPki) -> None:
    result = verify(evidence(pki, policy=0x30000 | 1 << 19), pki)
    assert result.level is AttestationLevel.NONE
    assert status(result, "policy")[0] is Status.FAIL


def test_wrong_nonce_and_wrong_key(pki: AmdPki) -> None:
    other_nonce = hashlib.sha256(b"fresh").digest()
    replay = verify(evidence(pki), pki, nonce=other_nonce)
    assert status(replay, "nonce")[0] is Status.FAIL and "replayed" in status(replay, "nonce")[1]
    stranger = NodeIdentity(hashlib.sha256(b"stranger").digest())
    wrong_key = verify(evidence(pki), pki, key=stranger.public_key)
    assert status(wrong_key, "node-key") == (
        Status.FAIL, f"report data does not bind the key of {stranger.node_id}: the evidence "
                     "belongs to another node key (or was altered)")
    assert replay.level is wrong_key.level is AttestationLevel.NONE


@pytest.mark.parametrize("length", [0, 1, 0x50, 0x29F, 0x2A0, REPORT_SIZE - 1, REPORT_SIZE + 1])
def test_wrong_lengths_are_clear_errors(pki: AmdPki, length: int) -> None:
    raw = (evidence(pki).report + bytes(8))[:length]
    with pytest.raises(MalformedMessage, match=f"{length} bytes, an ATTESTATION_REPORT is 1184"):
        parse_report(raw)


@pytest.mark.parametrize(("kw", "message"), [
    ({"version": 1}, "unsupported VERSION 1"), ({"version": 99}, "unsupported VERSION 99"),
    ({"sig_algo": 2}, "SIGNATURE_ALGO 2 is not 1"), ({"vmpl": 4}, "VMPL 4 is not 0-3"),
    ({"signing_key": 3}, "reserved SIGNING_KEY value 3")])
def test_invalid_fields_are_named(pki: AmdPki, kw: dict[str, int], message: str) -> None:
    raw = build_snp_report(bytes(64), pki.vcek_key, **kw)  # type: ignore[arg-type]
    with pytest.raises(MalformedMessage, match=message):
        parse_report(raw)
    result = verify(evidence(pki, raw), pki)
    assert result.checks[0].name == "structure" and result.level is AttestationLevel.NONE


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_any_corruption_gives_a_result_never_a_crash(pki: AmdPki, data: st.DataObject) -> None:
    raw = bytearray(evidence(pki).report)
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([len(raw), data.draw(st.integers(0, len(raw)))]))
    result = verify(evidence(pki, bytes(raw[:cut]) or b"\x00"), pki)
    # Only the reserved tail of the signature field is unsigned: any other change is caught.
    intact = cut == len(raw) and raw[:0x2A0 + 144] == evidence(pki).report[:0x2A0 + 144]
    assert result.level is (AttestationLevel.TEE if intact else AttestationLevel.NONE)


def test_cert_table_finds_the_vcek_and_chain(pki: AmdPki) -> None:
    certs = {"vcek": der(pki.vcek), "ask": der(pki.ask), "ark": der(pki.ark)}
    for mixed in (False, True):
        assert parse_cert_table(build_cert_table(certs, mixed_endian=mixed)) == certs


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t[:20], "truncated"),
    (lambda t: t[:16] + (10_000).to_bytes(4, "little") + t[20:], "entry points at bytes"),
    (lambda t: t[:24] + t[:24] + t[48:], "listed twice"),
])
def test_bad_cert_tables_are_clear_errors(pki: AmdPki, mutate, message: str) -> None:
    table = build_cert_table({"vcek": der(pki.vcek), "ask": der(pki.ask)})
    with pytest.raises(MalformedMessage, match=message):
        parse_cert_table(mutate(table))


def test_snp_checks_never_see_an_unparsed_vcek(pki: AmdPki) -> None:
    junk = dataclasses.replace(evidence(pki), vcek=random.Random(1).randbytes(300))
    assert status(verify(junk, pki), "signature")[1].startswith("signing certificate does not "
                                                                 "parse")
    assert snp_checks(junk, NONCE, NODE.public_key, (), WHEN)[-1].status is Status.FAIL


def test_certificate_damaged_inside_is_a_failed_check(pki: AmdPki) -> None:
    """However a certificate is damaged (cryptography decodes some parts only when first used),
    the check fails with the reason instead of raising."""
    raw = der(pki.vcek)
    at = raw.index(pki.vcek.subject.public_bytes())
    damaged = raw[:at] + b"\xfc" + raw[at + 1:]  # SEQUENCE tag -> private constructed tag 28
    result = verify(dataclasses.replace(evidence(pki), vcek=damaged), pki)
    s, detail = status(result, "signature")
    assert s is Status.FAIL and detail.startswith("signing certificate does not parse: ")
    assert "TbsCertificate::subject" in detail
