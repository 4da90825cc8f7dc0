"""Result certificates: 2f+1 committee signatures over the whole result, exit code included."""

import dataclasses
import hashlib
import json
import random

import pytest

from daemon.ledger.certificate import (
    FORMAT,
    CertificateError,
    ResultCertificate,
    verify_certificate,
)
from protocol.identity import NodeIdentity
from protocol.messages.tasks import TaskStatus

COMMITTEE = [NodeIdentity(random.Random(i).randbytes(32)) for i in range(4)]
OUTPUT = b"exit 3 after this line\n"


def certificate(signers=range(3), signed=None, **changes) -> ResultCertificate:
    """A certificate signed over its fields with ``signed`` applied, then ``changes`` (a forgery)."""
    cert = ResultCertificate(network="testnet", shard=0, epoch=2, seq=17, job=b"j" * 32, task=5,
                             status=int(TaskStatus.EXITED), exit_code=3,
                             output_hash=hashlib.sha256(OUTPUT).digest(), output_size=len(OUTPUT),
                             committee=tuple(m.public_key for m in COMMITTEE), signatures=(),
                             agreed=2, stderr_hash=hashlib.sha256(b"oops\n").digest(), stderr_size=5)
    cert = dataclasses.replace(cert, **(signed or {}))
    sigs = tuple((i, COMMITTEE[i].sign(cert.statement())) for i in signers)
    return dataclasses.replace(cert, signatures=sigs, **changes)


def test_a_quorum_of_signatures_and_the_output_verify():
    checks = verify_certificate(certificate(), None, OUTPUT)
    assert all(c.ok for c in checks[:2]), checks


def test_the_exit_code_is_signed_so_it_cannot_be_changed():
    checks = verify_certificate(certificate(exit_code=1), None, OUTPUT)
    assert not checks[0].ok and "0 valid of 4" in checks[0].what


def test_too_few_signatures_fail():
    assert not verify_certificate(certificate(signers=range(2)), None, None)[0].ok


def test_json_round_trips_and_names_its_format():
    cert = certificate()
    doc = json.loads(json.dumps(cert.to_json()))
    assert doc["format"] == FORMAT and doc["exit_code"] == 3 and doc["status"] == "EXITED"
    assert ResultCertificate.from_json(doc) == cert
    old = {k: v for k, v in doc.items() if k != "exit_code"}
    with pytest.raises(CertificateError, match="damaged"):
        ResultCertificate.from_json(old)


def test_the_agreement_count_is_signed_so_it_cannot_be_inflated():
    forged = verify_certificate(certificate(signed={"agreed": 1}, agreed=3), None, OUTPUT)
    assert not forged[0].ok and "0 valid of 4" in forged[0].what


def test_min_agree_fails_certificates_fewer_volunteers_agreed_on():
    lone = certificate(signed={"agreed": 1})
    assert all(c.ok for c in verify_certificate(lone, None, OUTPUT))
    checks = verify_certificate(lone, None, OUTPUT, min_agree=2)
    assert [c.what for c in checks if not c.ok] == [
        "agreement: 1 distinct volunteer(s) reported this result, 2 required"]
    assert all(c.ok for c in verify_certificate(certificate(), None, OUTPUT, min_agree=2))


def test_the_stderr_hash_is_signed():
    forged = certificate(stderr_hash=hashlib.sha256(b"all fine\n").digest())
    assert not verify_certificate(forged, None, OUTPUT)[0].ok


def test_v2_certificates_still_verify_but_state_no_agreement():
    old = certificate(signed={"agreed": None})
    doc = json.loads(json.dumps(old.to_json()))
    assert doc["format"] == "novacron-result-certificate-v2" and "agreed" not in doc
    back = ResultCertificate.from_json(doc)
    assert back.agreed is None
    assert all(c.ok for c in verify_certificate(back, None, OUTPUT))
    failed = [c.what for c in verify_certificate(back, None, OUTPUT, min_agree=1) if not c.ok]
    assert failed == ["agreement: not stated (a v2 certificate, from before certificates counted "
                      "the volunteers that agreed)"]
