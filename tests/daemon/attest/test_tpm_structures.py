"""TPM 2.0 structure parsers on hand-built bytes (TPM 2.0 Library Part 2 layouts)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.attest.tpm.structures import (ALG_ECDSA, ALG_RSA, ALG_RSASSA, ALG_SHA256,
                                          PcrSelection, parse_attest, parse_public,
                                          parse_signature, unwrap_tpm2b_public)
from protocol.errors import MalformedMessage
from tests.daemon.attest.attest_fixtures import ec_key, ecc_public, rsa_public, tpm2b


def attest(extra: bytes = b"q" * 32, pcrs: tuple[int, ...] = (0, 1, 7)) -> bytes:
    sel = PcrSelection(ALG_SHA256, pcrs).to_tpm()
    return (struct.pack(">IH", 0xFF544347, 0x8018) + tpm2b(b"\x00\x0b" + bytes(32)) + tpm2b(extra)
            + struct.pack(">QIIB", 1234, 5, 6, 1) + struct.pack(">Q", 0x2019102300163636)
            + struct.pack(">I", 1) + sel + tpm2b(hashlib.sha256(b"pcrs").digest()))


def test_rsa_public_and_its_name() -> None:
    raw = rsa_public()
    pub = parse_public(raw)
    assert (pub.rsa_bits, pub.rsa_exponent, pub.scheme, pub.describe()) == (2048, 0, ALG_RSASSA,
                                                                            "RSA-2048")
    assert pub.name == b"\x00\x0b" + hashlib.sha256(raw).digest()
    assert pub.public_key().public_numbers().e == 65537  # type: ignore[union-attr]
    assert unwrap_tpm2b_public(tpm2b(raw)) == raw


def test_ecc_public_gives_the_same_point() -> None:
    pub = parse_public(ecc_public())
    assert pub.describe() == "ECC-secp256r1"
    assert pub.public_key().public_numbers() == \
        ec_key(ec.SECP256R1(), "ak").public_key().public_numbers()  # type: ignore[union-attr]


def test_quote_fields() -> None:
    info = parse_attest(attest())
    assert (info.magic, info.clock, info.reset_count, info.restart_count, info.safe) == (
        0xFF544347, 1234, 5, 6, True)
    assert info.extra_data == b"q" * 32
    assert info.selections == (PcrSelection(ALG_SHA256, (0, 1, 7)),)


def test_signature_forms() -> None:
    rsa_sig = parse_signature(struct.pack(">HH", ALG_RSASSA, ALG_SHA256) + tpm2b(b"s" * 256))
    assert rsa_sig.rsa_signature == b"s" * 256
    ecdsa = parse_signature(struct.pack(">HH", ALG_ECDSA, ALG_SHA256) + tpm2b(b"r" * 32)
                            + tpm2b(b"s" * 32))
    assert (ecdsa.ecdsa_r, ecdsa.ecdsa_s) == (b"r" * 32, b"s" * 32)


@pytest.mark.parametrize(("data", "message"), [
    (rsa_public()[:-1], "truncated: RSA modulus"),
    (rsa_public() + b"\x00", "1 unexpected trailing bytes"),
    (struct.pack(">HHI", 0x0008, ALG_SHA256, 0) + tpm2b(b"") + bytes(8), "unsupported key type"),
    (struct.pack(">HHI", ALG_RSA, 0x0099, 0), "unsupported TPM hash algorithm 0x0099"),
    (rsa_public(bits=1000), "keyBits 1000"),
])
def test_bad_public_areas(data: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_public(data)


@pytest.mark.parametrize(("data", "message"), [
    (attest()[:40], "truncated"),
    (attest()[:4] + b"\x80\x17" + attest()[6:], "is not a quote"),
    (attest(extra=b"x" * 65), "extraData claims 65 bytes"),
    (attest() + b"!", "trailing"),
])
def test_bad_quotes(data: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_attest(data)


def test_bad_signatures() -> None:
    with pytest.raises(MalformedMessage, match="unsupported algorithm 0x0001"):
        parse_signature(struct.pack(">HH", 0x0001, ALG_SHA256))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.binary(max_size=600), st.sampled_from([parse_public, parse_attest, parse_signature]))
def test_parsers_raise_only_malformed_message(data: bytes, parser) -> None:
    try:
        parser(data)
    except MalformedMessage:
        pass


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(0, len(attest()) - 1))
def test_every_truncation_of_a_quote_is_refused(cut: int) -> None:
    with pytest.raises(MalformedMessage):
        parse_attest(attest()[:cut])
