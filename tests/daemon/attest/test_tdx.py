"""TDX v4 quote parsing and offline checks on hand-built quotes (see attest_fixtures)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.attest.binding import tee_report_data
from daemon.attest.evidence import TdxEvidence
from daemon.attest.result import Status, VerificationResult
from daemon.attest.tdx import HEADER_SIZE, SIGNED_SIZE, parse_quote
from daemon.attest.verify import VerifierConfig, verify_evidence
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import (NOW, IntelPki, build_tdx_quote, ec_key,
                                                 make_cert, make_intel_pki)

NODE = NodeIdentity(hashlib.sha256(b"tdx node").digest())
NONCE = hashlib.sha256(b"tdx nonce").digest()
PKI = make_intel_pki()
GOOD = build_tdx_quote(tee_report_data(NONCE, NODE.public_key), PKI)


def verify(quote: bytes, pki: IntelPki | None = PKI, *, nonce: bytes = NONCE,
           key: bytes = NODE.public_key) -> VerificationResult:
    config = VerifierConfig(trusted_intel_roots=(pki.root,) if pki else ())
    return verify_evidence(TdxEvidence(NONCE, quote), nonce=nonce, node_public_key=key,
                           config=config, now=NOW)


def status(result: VerificationResult, name: str) -> tuple[Status, str]:
    [c] = [c for c in result.checks if c.name == name]
    return c.status, c.detail


def quote(**kw: object) -> bytes:
    return build_tdx_quote(tee_report_data(NONCE, NODE.public_key), PKI,
                           **kw)  # type: ignore[arg-type]


def test_fields_are_read_from_the_published_offsets() -> None:
    q = parse_quote(GOOD)
    assert (q.version, q.att_key_type, q.tee_type) == (4, 2, 0x81)
    assert q.body.report_data == tee_report_data(NONCE, NODE.public_key)
    assert q.body.mr_td == hashlib.sha384(b"td").digest()
    assert q.body.rtmrs[3] == hashlib.sha384(b"rtmr3").digest()
    assert q.body.tee_tcb_svn == bytes(range(16)) and q.body.td_attributes == 0
    assert q.signed_bytes == GOOD[:HEADER_SIZE + 584]
    assert q.qe_auth_data == b"qe authentication data"
    assert q.pck_chain_pem == PKI.chain_pem


def test_genuine_quote_with_trusted_root_is_tee_level() -> None:
    result = verify(GOOD)
    assert result.level is AttestationLevel.TEE, result.lines()
    assert [c.name for c in result.unchecked] == ["tcb-status", "revocation", "measurement"]


def test_without_a_configured_intel_root_the_level_is_none() -> None:
    result = verify(GOOD, None)
    assert result.ok and result.level is AttestationLevel.NONE
    assert result.reasons() == ("pck-chain: PCK certificate not chained to a trusted Intel root "
                                "(none configured)",)


def test_a_root_with_the_same_name_but_another_key_is_not_trusted() -> None:
    other = ec_key(ec.SECP256R1(), "other root")
    other_root = make_cert("Intel SGX Root CA", other, "Intel SGX Root CA", other, ca=True,
                           serial=9)
    result = verify_evidence(TdxEvidence(NONCE, GOOD), nonce=NONCE, node_public_key=NODE.public_key,
                             config=VerifierConfig(trusted_intel_roots=(other_root,)), now=NOW)
    s, detail = status(result, "pck-chain")
    assert s is Status.FAIL and "does not verify with the key of CN=Intel SGX Root CA" in detail


def test_altered_td_report_breaks_the_quote_signature() -> None:
    raw = bytearray(GOOD)
    raw[HEADER_SIZE + 200] ^= 1  # inside MRTD
    assert status(verify(bytes(raw)), "signature") == (
        Status.FAIL, "quote signature does not verify with the attestation key (quote altered)")


def test_altered_qe_report_breaks_its_signature() -> None:
    raw = bytearray(GOOD)
    raw[SIGNED_SIZE + 4 + 128 + 6 + 10] ^= 1  # a byte of the QE report
    result = verify(bytes(raw))
    assert status(result, "qe-signature")[0] is Status.FAIL
    assert result.level is AttestationLevel.NONE


def test_attestation_key_not_vouched_for_by_the_qe() -> None:
    result = verify(quote(bind_key=False))
    assert status(result, "qe-binding")[0] is Status.FAIL
    assert status(result, "signature")[0] is Status.PASS
    assert result.level is AttestationLevel.NONE


def test_debuggable_td_is_refused() -> None:
    result = verify(quote(td_attributes=1))
    assert status(result, "td-attributes") == (
        Status.FAIL, "TD is debuggable (TDATTRIBUTES bit 0): the host can read its memory")


def test_wrong_nonce_and_wrong_key() -> None:
    assert status(verify(GOOD, nonce=bytes(32)), "nonce")[0] is Status.FAIL
    stranger = NodeIdentity(hashlib.sha256(b"stranger").digest())
    assert status(verify(GOOD, key=stranger.public_key), "node-key")[0] is Status.FAIL


@pytest.mark.parametrize(("kw", "message"), [
    ({"version": 3}, "version 3, only version 4"), ({"tee_type": 0}, "TEE type 0x0 is not TDX"),
    ({"key_type": 3}, "attestation key type 3 is not 2"),
    ({"cert_type": 5}, "not type 6"), ({"chain_type": 3}, "not type 5")])
def test_invalid_fields_are_named(kw: dict[str, int], message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_quote(quote(**kw))
    assert verify(quote(**kw)).checks[0].name == "structure"


def test_unparsable_pck_chain_is_a_failed_check() -> None:
    s, detail = status(verify(quote(chain=b"-----BEGIN CERTIFICATE-----\nnope\n")), "qe-signature")
    assert s is Status.FAIL and detail.startswith("PCK certificate chain does not parse")


@pytest.mark.parametrize("cut", [0, 1, 47, 48, 300, 631, 632, 635, 700, 900, 1100, -1])
def test_truncated_quotes_are_clear_errors(cut: int) -> None:
    with pytest.raises(MalformedMessage, match="truncated"):
        parse_quote(GOOD[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(MalformedMessage, match="unexpected trailing bytes"):
        parse_quote(GOOD + b"\x00")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_any_corruption_gives_a_result_never_a_crash(data: st.DataObject) -> None:
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([len(raw), data.draw(st.integers(0, len(raw)))]))
    result = verify(bytes(raw[:cut]))
    # Every byte of a v4 quote is either signed or checked, except the QE's reserved fields
    # inside its signed report and free-form auth data bound by the QE report hash.
    if bytes(raw[:cut]) != GOOD:
        assert result.level is AttestationLevel.NONE or bytes(raw[:cut])[:SIGNED_SIZE] == \
            GOOD[:SIGNED_SIZE]
