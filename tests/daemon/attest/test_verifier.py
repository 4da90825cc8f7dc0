"""The verifier's nonce bookkeeping (pure; TDX fixtures stand in for any evidence)."""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest

from daemon.attest.binding import NONCE_SIZE, tee_report_data, tpm_qualifying_data
from daemon.attest.evidence import TdxEvidence
from daemon.attest.result import Status
from daemon.attest.tpm.credential import Credential, make_credential
from daemon.attest.tpm.structures import ALG_AES, ALG_CFB, SymDef, parse_public
from daemon.attest.verify import Verifier, VerifierConfig
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import (NOW, build_tdx_quote, ecc_public,
                                                 make_intel_pki, rsa_public)

NODE = NodeIdentity(hashlib.sha256(b"node").digest())
PKI = make_intel_pki()
SEED = 11


def answer(nonce: bytes) -> TdxEvidence:
    return TdxEvidence(nonce, build_tdx_quote(tee_report_data(nonce, NODE.public_key), PKI))


def only_check(result) -> tuple[str, Status, str]:
    [c] = result.checks
    return c.name, c.status, c.detail


def test_a_nonce_is_answered_once() -> None:
    v = Verifier(VerifierConfig(trusted_intel_roots=(PKI.root,)))
    c = v.challenge(random.Random(SEED), NOW)
    assert len(c.nonce) == NONCE_SIZE and c.credential is None
    first = v.verify(answer(c.nonce), nonce=c.nonce, node_public_key=NODE.public_key, now=NOW + 1)
    assert first.level is AttestationLevel.TEE
    again = v.verify(answer(c.nonce), nonce=c.nonce, node_public_key=NODE.public_key, now=NOW + 2)
    assert only_check(again) == ("nonce", Status.FAIL, f"nonce {c.nonce[:8].hex()}… was already "
                                 "answered: a replayed answer")


def test_unknown_and_expired_nonces() -> None:
    v = Verifier(VerifierConfig(challenge_ttl=60))
    stranger = bytes(32)
    assert only_check(v.verify(answer(stranger), nonce=stranger, node_public_key=NODE.public_key,
                               now=NOW))[2].endswith("was not issued by this verifier (or its "
                                                     "challenge was forgotten)")
    c = v.challenge(random.Random(SEED), NOW)
    late = v.verify(answer(c.nonce), nonce=c.nonce, node_public_key=NODE.public_key, now=NOW + 61)
    assert only_check(late)[2] == "challenge expired: answered after 61 s, the limit is 60 s"
    assert late.level is AttestationLevel.NONE


def test_outstanding_challenges_are_bounded() -> None:
    v = Verifier(VerifierConfig(max_outstanding=3))
    rng = random.Random(SEED)
    nonces = [v.challenge(rng, NOW).nonce for _ in range(5)]
    assert v.outstanding() == 3
    oldest = v.verify(answer(nonces[0]), nonce=nonces[0], node_public_key=NODE.public_key, now=NOW)
    assert "not issued by this verifier" in only_check(oldest)[2]


def test_seeded_nonces_replay() -> None:
    a = [Verifier().challenge(random.Random(SEED), NOW).nonce for _ in range(2)]
    assert a[0] == a[1]


def test_credential_needs_an_rsa_ek() -> None:
    v = Verifier()
    with pytest.raises(MalformedMessage, match="needs an RSA endorsement key"):
        v.challenge(random.Random(SEED), NOW, ek_public=ecc_public(), ak_public=rsa_public())


def test_credential_file_format_round_trips() -> None:
    c = Credential(b"i" * 68, b"s" * 256)
    assert Credential.from_tools_file(c.to_tools_file()) == c
    with pytest.raises(MalformedMessage, match="bad header"):
        Credential.from_tools_file(b"\x00" * 12)
    ek = parse_public(rsa_public())
    with pytest.raises(MalformedMessage, match="symmetric scheme is not AES-CFB"):
        make_credential(ek, b"name", b"x" * 32, random.Random(1))
    aes_ek = dataclasses.replace(ek, symmetric=SymDef(ALG_AES, 128, ALG_CFB))
    with pytest.raises(ValueError, match="1..digest-size"):
        make_credential(aes_ek, b"name", b"x" * 33, random.Random(1))


def test_bindings_are_the_published_formulas() -> None:
    nonce, key = bytes(range(32)), NODE.public_key
    assert tpm_qualifying_data(nonce, key) == hashlib.sha256(nonce + key).digest()
    assert tee_report_data(nonce, key) == hashlib.sha512(
        b"novacron/attest/tee-report-data/v1\x00" + nonce + key).digest()
    with pytest.raises(MalformedMessage, match="nonce must be 32 bytes"):
        tpm_qualifying_data(b"short", key)
