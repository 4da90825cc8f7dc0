"""Checking a TPM 2.0 quote: who signed it, over what, for which nonce and key, and its PCRs.

The checks, each a ``Check`` in the result (see ``result`` for how they set the level):

- ``ak``: the attestation key is a *restricted signing* key created inside a TPM (fixedTPM,
  fixedParent, sensitiveDataOrigin). Restricted is what makes a quote mean anything: the TPM
  refuses to sign, with such a key, any data that starts with TPM_GENERATED_VALUE unless the
  TPM itself produced it.
- ``structure``: the signed blob is a ``TPMS_ATTEST`` quote that starts with that magic.
- ``signature``: the AK's signature over the blob verifies.
- ``nonce`` and ``node-key``: ``extraData`` equals ``SHA-256(nonce || node public key)`` for
  the nonce the verifier issued. A quote made for another nonce is a replay; one made for
  another key belongs to another node.
- ``pcr-digest``: the PCR values sent along hash to the quote's ``pcrDigest`` (a tampered
  value is caught here), and cover exactly the quoted selection.
- ``event-log``: when a log is supplied, replaying it gives the quoted values.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from daemon.attest.binding import tpm_qualifying_data
from daemon.attest.binding_checks import binding_checks, short
from daemon.attest.evidence import TpmEvidence
from daemon.attest.result import Check, failed, passed, unchecked
from daemon.attest.tpm.eventlog import parse_event_log, replay
from daemon.attest.tpm.structures import (ALG_ECDSA, ALG_NULL, ALG_RSAPSS, ALG_RSASSA, DECRYPT,
                                          FIXED_PARENT, FIXED_TPM, HASH_NAMES, RESTRICTED,
                                          SENSITIVE_DATA_ORIGIN, SIGN, TPM_GENERATED_VALUE,
                                          QuoteInfo, TpmPublic, TpmSignature, crypto_hash, digest,
                                          parse_attest, parse_signature)
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage

TOP = AttestationLevel.TEE  # caps of a check that only informs


def ak_check(ak: TpmPublic) -> Check:
    need = RESTRICTED | SIGN | FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN
    if not ak.has(need) or ak.has(DECRYPT):
        return failed("ak", f"attestation key attributes 0x{ak.attributes:08x} are not those of a "
                      "restricted signing key created in the TPM (restricted, sign, fixedTPM, "
                      "fixedParent, sensitiveDataOrigin; not decrypt)")
    return passed("ak", f"{ak.describe()} restricted signing key, fixedTPM, name "
                  f"{short(ak.name)}")


def verify_signature(ak: TpmPublic, sig: TpmSignature, message: bytes) -> str | None:
    """None when ``sig`` is ``ak``'s valid signature over ``message``, else the reason."""
    key = ak.public_key()
    algorithm = crypto_hash(sig.hash_alg)
    try:
        if sig.sig_alg in (ALG_RSASSA, ALG_RSAPSS):
            if not isinstance(key, rsa.RSAPublicKey):
                return "an RSA signature from a non-RSA key"
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if sig.sig_alg == ALG_RSASSA
                else padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO))
            key.verify(sig.rsa_signature, message, pad, algorithm)
        elif sig.sig_alg == ALG_ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "an ECDSA signature from a non-ECC key"
            der = encode_dss_signature(int.from_bytes(sig.ecdsa_r, "big"),
                                       int.from_bytes(sig.ecdsa_s, "big"))
            key.verify(der, message, ec.ECDSA(algorithm))
    except InvalidSignature:
        return "the signature does not verify with the attestation key"
    if ak.scheme not in (ALG_NULL, sig.sig_alg) or (ak.scheme_hash
                                                    and ak.scheme_hash != sig.hash_alg):
        return "the signature scheme differs from the one the key is restricted to"
    return None


def pcr_checks(info: QuoteInfo, sig: TpmSignature, evidence: TpmEvidence) -> list[Check]:
    bank = HASH_NAMES.get(evidence.pcr_alg, hex(evidence.pcr_alg))
    selected = [(s.hash_alg, pcr) for s in info.selections for pcr in s.pcrs]
    reported = [(evidence.pcr_alg, i) for i, _ in evidence.pcrs]
    if selected != reported:
        return [failed("pcr-digest", "the PCR list sent does not match the quote's selection "
                       f"({len(reported)} PCRs sent, {len(selected)} quoted)")]
    computed = digest(sig.hash_alg, b"".join(v for _, v in evidence.pcrs))
    if computed != info.pcr_digest:
        return [failed("pcr-digest", f"the {len(reported)} {bank} PCR values sent do not hash to "
                       "the quoted pcrDigest: a PCR value was altered")]
    return [passed("pcr-digest", f"{len(reported)} {bank} PCR values match the quoted digest")]


def event_log_check(evidence: TpmEvidence) -> Check:
    if evidence.event_log is None:
        return unchecked("event-log", "no event log supplied: the PCR values are proven but not "
                         "explained", TOP)
    try:
        log = parse_event_log(evidence.event_log)
        values = replay(log, evidence.pcr_alg)
    except MalformedMessage as err:
        return failed("event-log", f"event log unusable: {err}")
    quoted = dict(evidence.pcrs)
    bad = [pcr for pcr, value in sorted(values.items()) if pcr in quoted and quoted[pcr] != value]
    if bad:
        return failed("event-log", f"replaying the event log does not give the quoted value of "
                      f"PCR {', '.join(map(str, bad))}: the log is incomplete or altered")
    covered = sorted(p for p in values if p in quoted)
    return passed("event-log", f"{len(log.events)} events replay to the quoted PCRs "
                  f"{', '.join(map(str, covered)) or '(none)'}")


def quote_checks(evidence: TpmEvidence, ak: TpmPublic, issued_nonce: bytes,
                 node_public_key: bytes) -> list[Check]:
    """All quote checks in order; parse failures become failed checks, never exceptions."""
    checks = [ak_check(ak)]
    try:
        info = parse_attest(evidence.attest)
        sig = parse_signature(evidence.signature)
    except MalformedMessage as err:
        return [*checks, failed("structure", str(err))]
    if info.magic != TPM_GENERATED_VALUE:
        return [*checks, failed("structure", "quote does not start with TPM_GENERATED_VALUE: "
                                "not produced by a TPM")]
    checks.append(passed("structure", f"TPMS_ATTEST quote, reset count {info.reset_count}, "
                         f"firmware 0x{info.firmware_version:016x}"))
    problem = verify_signature(ak, sig, evidence.attest)
    checks.append(failed("signature", problem) if problem else
                  passed("signature", f"{ak.describe()} signature over the quote verifies"))
    checks += binding_checks(info.extra_data, tpm_qualifying_data, "qualifying data",
                             evidence.nonce, issued_nonce, node_public_key)
    checks += pcr_checks(info, sig, evidence)
    checks.append(event_log_check(evidence))
    checks.append(unchecked("pcr-policy", "PCR values not compared with reference values (a job "
                            "owner's policy, not part of attestation)", TOP))
    return checks


