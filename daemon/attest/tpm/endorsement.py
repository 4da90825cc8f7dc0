"""Is the quoting key a real TPM's? The endorsement key, its certificate, and the AK-EK link.

A valid quote only shows that *some* restricted key signed it; a software TPM makes those as
easily as a chip does. What makes a TPM trustworthy is its endorsement key (EK), whose
certificate the manufacturer signs, and a proof that the AK lives in the same TPM as the EK:

- ``ek``: the EK public area has the TCG EK template shape (restricted decryption key,
  fixedTPM, policy-only admin), so credential activation means what it should.
- ``ek-certificate``: the certificate from the TPM's NV storage certifies exactly this EK.
- ``ek-chain``: the certificate chains to a CA the verifier trusts. The CA list is empty by
  default, so no TPM, and in particular no software TPM, is trusted until someone configures it.
- ``signer-parent``: the quote's ``qualifiedSigner`` (computed by the TPM) says the AK's parent
  is this EK in the endorsement hierarchy.
- ``ak-ek-binding``: the node recovered the secret of a credential the verifier made for this
  EK and AK name (see ``credential``). This needs a challenge that carries the credential, so
  the verifier must know the AK before it challenges; a one-message file cannot prove it.

Each of these failing or missing caps the level at ``TPM_UNENDORSED``, except a wrong answer
to a credential, which is a lie and caps at ``NONE``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from daemon.attest.evidence import TpmEvidence
from daemon.attest.result import Check, failed, passed, unchecked
from daemon.attest.tpm.structures import (ADMIN_WITH_POLICY, DECRYPT, FIXED_PARENT, FIXED_TPM,
                                          RESTRICTED, SENSITIVE_DATA_ORIGIN, SIGN, QuoteInfo,
                                          TpmPublic, hash_name, parse_attest, parse_public)
from daemon.attest.x509chain import chain_to_anchor, describe, load_certificate, public_key_of
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage

UNENDORSED = AttestationLevel.TPM_UNENDORSED
TOP = AttestationLevel.TEE
TPM_RH_ENDORSEMENT = 0x4000000B


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What the verifier remembers about a credential it put in a challenge."""

    ek_name: bytes
    ak_name: bytes
    secret: bytes


def qualified_name(parent_qualified_name: bytes, public: TpmPublic) -> bytes:
    """TPM 2.0 Part 1, 16: QN = nameAlg || H(parent's QN || name); a hierarchy's QN is its
    handle."""
    h = hashlib.new(hash_name(public.name_alg), parent_qualified_name + public.name).digest()
    return public.name_alg.to_bytes(2, "big") + h


def ek_shape_check(ek: TpmPublic) -> Check:
    need = (RESTRICTED | DECRYPT | FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN
            | ADMIN_WITH_POLICY)
    if not ek.has(need) or ek.has(SIGN):
        return failed("ek", f"endorsement key attributes 0x{ek.attributes:08x} are not the TCG "
                      "EK template's (restricted decryption key, fixedTPM, policy admin)",
                      UNENDORSED)
    return passed("ek", f"{ek.describe()} endorsement key of the TCG template shape")


def signer_parent_check(info: QuoteInfo, ek: TpmPublic, ak: TpmPublic) -> Check:
    ek_qn = qualified_name(TPM_RH_ENDORSEMENT.to_bytes(4, "big"), ek)
    if info.qualified_signer == qualified_name(ek_qn, ak):
        return passed("signer-parent", "the TPM names the AK as a child of this EK in the "
                      "endorsement hierarchy")
    return failed("signer-parent", "the quote's qualifiedSigner is not this AK under this EK",
                  UNENDORSED)


def certificate_checks(evidence: TpmEvidence, ek: TpmPublic,
                       trusted_cas: Sequence[x509.Certificate], now: dt.datetime) -> list[Check]:
    if evidence.ek_certificate is None:
        return [unchecked("ek-certificate", "no EK certificate supplied (the TPM's NV storage "
                          "holds none; some vendors publish it online)", UNENDORSED),
                unchecked("ek-chain", "EK certificate not chained to a trusted CA (no "
                          "certificate)", UNENDORSED)]
    try:
        cert = load_certificate(evidence.ek_certificate)
        intermediates = [load_certificate(c) for c in evidence.ek_chain]
    except ValueError as err:
        return [failed("ek-certificate", f"EK certificate does not parse: {err}", UNENDORSED)]
    cert_key = public_key_of(cert)
    same_key = (isinstance(cert_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
                and type(cert_key.public_numbers()) is type(ek.public_key().public_numbers())
                and cert_key.public_numbers() == ek.public_key().public_numbers())
    if not same_key:
        return [failed("ek-certificate", f"EK certificate ({describe(cert)}, issuer "
                       f"{cert.issuer.rfc4514_string()}) certifies another key than this EK",
                       UNENDORSED)]
    checks = [passed("ek-certificate", f"certificate issued by {cert.issuer.rfc4514_string()} "
                     f"certifies this EK")]
    if not trusted_cas:
        checks.append(unchecked("ek-chain", "EK certificate not chained to a trusted CA (none "
                                "configured)", UNENDORSED))
    else:
        ok, how = chain_to_anchor(cert, intermediates, trusted_cas, now)
        checks.append(passed("ek-chain", f"chains to a trusted CA: {how}") if ok else
                      failed("ek-chain", f"EK certificate not chained to a trusted CA: {how}",
                             UNENDORSED))
    checks.append(unchecked("ek-revocation", "EK certificate revocation not checked (needs the "
                            "manufacturer's CRL, online)", TOP))
    return checks


def binding_check(ek: TpmPublic, ak: TpmPublic, issued: IssuedCredential | None,
                  answered: bytes | None) -> Check:
    if issued is None:
        return unchecked("ak-ek-binding", "AK not proven to live in the EK's TPM: that needs a "
                         "challenge carrying a credential for this AK (a verifier sends one once "
                         "it knows the AK; a file alone cannot prove it)", UNENDORSED)
    if issued.ek_name != ek.name or issued.ak_name != ak.name:
        return failed("ak-ek-binding", "the evidence's AK or EK differs from the ones the "
                      "challenge's credential was made for")
    if answered is None:
        return failed("ak-ek-binding", "the challenge carried a credential but the evidence "
                      "holds no activated secret")
    if not hmac.compare_digest(issued.secret, answered):
        return failed("ak-ek-binding", "the activated secret is wrong: this AK and EK are not in "
                      "one TPM")
    return passed("ak-ek-binding", "the TPM activated a credential bound to this EK and AK name")


def endorsement_checks(evidence: TpmEvidence, ak: TpmPublic,
                       trusted_cas: Sequence[x509.Certificate], now: dt.datetime,
                       issued: IssuedCredential | None) -> list[Check]:
    try:
        ek = parse_public(evidence.ek_public)
        ek.public_key()
    except MalformedMessage as err:
        return [failed("ek", f"endorsement key unusable: {err}", UNENDORSED)]
    checks = [ek_shape_check(ek)]
    try:
        checks.append(signer_parent_check(parse_attest(evidence.attest), ek, ak))
    except MalformedMessage:
        pass  # the quote checks already report the broken structure
    checks += certificate_checks(evidence, ek, trusted_cas, now)
    checks.append(binding_check(ek, ak, issued, evidence.activated_secret))
    return checks
