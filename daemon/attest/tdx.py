"""Intel TDX DCAP quotes (version 4): parse the published layout and check what can be offline.

Layout (Intel TDX DCAP Quoting Library API, appendix "Quote format"), little-endian:

    header (48)      u16 version = 4, u16 attestation key type = 2 (ECDSA-256 with P-256),
                     u32 TEE type = 0x81 (TDX), u16 reserved, u16 reserved,
                     QE vendor id [16], user data [20]
    TD report (584)  TEE_TCB_SVN [16], MRSEAM [48], MRSIGNERSEAM [48], SEAMATTRIBUTES [8],
                     TDATTRIBUTES [8] (bit 0: debug), XFAM [8], MRTD [48], MRCONFIGID [48],
                     MROWNER [48], MROWNERCONFIG [48], RTMR0..3 [4 x 48], REPORTDATA [64]
    u32 signature data length, then the signature data:
        quote signature [64] (ECDSA P-256 r||s over header || TD report)
        attestation key [64] (P-256 x||y)
        certification data: u16 type = 6 (QE report certification data), u32 size, then
            QE report [384] (an SGX report body; its REPORTDATA[0:32] must be
                             SHA-256(attestation key || QE authentication data))
            QE report signature [64] (by the PCK key)
            u16 QE authentication data size, data
            certification data: u16 type = 5 (PCK certificate chain, PEM), u32 size, data

Checked offline: quote signature by the attestation key, the QE report's binding of that key,
the QE report's signature by the PCK certificate, the PCK chain to a configured Intel root, the
TD's debug attribute, and the report data's binding to nonce and node key. Not checked (they
need Intel's collateral, online): TCB status, QE identity, CRLs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from daemon.attest.binding import tee_report_data
from daemon.attest.binding_checks import binding_checks
from daemon.attest.bytereader import ByteReader
from daemon.attest.evidence import MAX_TDX_QUOTE, TdxEvidence
from daemon.attest.result import Check, failed, passed, unchecked
from daemon.attest.x509chain import chain_to_anchor, load_pem_bundle, public_key_of
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage

HEADER_SIZE = 48
BODY_SIZE = 584
SIGNED_SIZE = HEADER_SIZE + BODY_SIZE
QE_REPORT_SIZE = 384
TEE_TYPE_TDX = 0x00000081
ATT_KEY_ECDSA_P256 = 2
CERT_QE_REPORT = 6
CERT_PCK_CHAIN = 5
TD_ATTR_DEBUG = 1
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


@dataclass(frozen=True, slots=True)
class TdReport:
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: int
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes


@dataclass(frozen=True, slots=True)
class TdxQuote:
    raw: bytes
    version: int
    att_key_type: int
    tee_type: int
    qe_vendor_id: bytes
    user_data: bytes
    body: TdReport
    signature: bytes
    attestation_key: bytes
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def qe_report_data(self) -> bytes:
        return self.qe_report[320:384]

    @property
    def debug(self) -> bool:
        return bool(self.body.td_attributes & TD_ATTR_DEBUG)


def _body(r: ByteReader) -> TdReport:
    t = r.take
    return TdReport(t(16, "TEE_TCB_SVN"), t(48, "MRSEAM"), t(48, "MRSIGNERSEAM"),
                    t(8, "SEAMATTRIBUTES"), int.from_bytes(t(8, "TDATTRIBUTES"), "little"),
                    t(8, "XFAM"), t(48, "MRTD"), t(48, "MRCONFIGID"), t(48, "MROWNER"),
                    t(48, "MROWNERCONFIG"),
                    (t(48, "RTMR0"), t(48, "RTMR1"), t(48, "RTMR2"), t(48, "RTMR3")),
                    t(64, "REPORTDATA"))


def parse_quote(data: bytes) -> TdxQuote:
    """Parse a TDX DCAP v4 quote; ``MalformedMessage`` says what is wrong and where."""
    if len(data) > MAX_TDX_QUOTE:
        raise MalformedMessage(f"TDX quote: {len(data)} bytes, at most {MAX_TDX_QUOTE}")
    r = ByteReader(data, "TDX quote", big_endian=False)
    version, key_type, tee_type = r.u16("version"), r.u16("attestation key type"), r.u32("TEE type")
    if version != 4:
        raise MalformedMessage(f"TDX quote: version {version}, only version 4 is supported")
    if tee_type != TEE_TYPE_TDX:
        raise MalformedMessage(f"TDX quote: TEE type 0x{tee_type:x} is not TDX (0x81)")
    if key_type != ATT_KEY_ECDSA_P256:
        raise MalformedMessage(f"TDX quote: attestation key type {key_type} is not 2 "
                               "(ECDSA-256 with P-256)")
    r.take(4, "reserved")
    vendor, user_data = r.take(16, "QE vendor id"), r.take(20, "user data")
    body = _body(r)
    sig_data = ByteReader(r.sized(4, "signature data", MAX_TDX_QUOTE), "TDX quote signature data",
                          big_endian=False)
    r.end()
    signature, att_key = sig_data.take(64, "quote signature"), sig_data.take(64, "attestation key")
    if sig_data.u16("certification data type") != CERT_QE_REPORT:
        raise MalformedMessage("TDX quote: certification data is not type 6 (QE report)")
    qe = ByteReader(sig_data.sized(4, "QE report certification data", MAX_TDX_QUOTE),
                    "TDX QE report certification data", big_endian=False)
    sig_data.end()
    qe_report, qe_sig = qe.take(QE_REPORT_SIZE, "QE report"), qe.take(64, "QE report signature")
    auth = qe.sized(2, "QE authentication data", 4096)
    if qe.u16("PCK certification data type") != CERT_PCK_CHAIN:
        raise MalformedMessage("TDX quote: QE certification data is not type 5 (PCK chain)")
    chain = qe.sized(4, "PCK certificate chain", MAX_TDX_QUOTE)
    qe.end()
    return TdxQuote(bytes(data), version, key_type, tee_type, vendor, user_data, body,
                    signature, att_key, qe_report, qe_sig, auth, chain)


def _p256_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        raise MalformedMessage("TDX quote: attestation key is not a point on P-256") from None


def _verify_p256(key: ec.EllipticCurvePublicKey, raw_sig: bytes, message: bytes) -> bool:
    der = encode_dss_signature(int.from_bytes(raw_sig[:32], "big"),
                               int.from_bytes(raw_sig[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def tdx_checks(evidence: TdxEvidence, issued_nonce: bytes, node_public_key: bytes,
               trusted_roots: Sequence[x509.Certificate], now: dt.datetime) -> list[Check]:
    try:
        quote = parse_quote(evidence.quote)
    except MalformedMessage as err:
        return [failed("structure", str(err))]
    vendor = "Intel" if quote.qe_vendor_id == INTEL_QE_VENDOR_ID else quote.qe_vendor_id.hex()
    checks = [passed("structure", f"TDX quote v4, QE vendor {vendor}")]
    checks += binding_checks(quote.body.report_data, tee_report_data, "report data",
                             evidence.nonce, issued_nonce, node_public_key)
    checks.append(failed("td-attributes", "TD is debuggable (TDATTRIBUTES bit 0): the host can "
                         "read its memory") if quote.debug else
                  passed("td-attributes", "TD is not debuggable"))
    try:
        att_key = _p256_point(quote.attestation_key)
    except MalformedMessage as err:
        return [*checks, failed("signature", str(err))]
    checks.append(passed("signature", "attestation key signs header and TD report")
                  if _verify_p256(att_key, quote.signature, quote.signed_bytes) else
                  failed("signature", "quote signature does not verify with the attestation key "
                         "(quote altered)"))
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + bytes(32)
    checks.append(passed("qe-binding", "QE report binds the attestation key")
                  if quote.qe_report_data == expected else
                  failed("qe-binding", "QE report data is not SHA-256(attestation key || QE "
                         "authentication data): the key was not vouched for by the QE"))
    try:
        pck_chain = load_pem_bundle(quote.pck_chain_pem)
    except ValueError as err:
        return [*checks, failed("qe-signature", f"PCK certificate chain does not parse: {err}")]
    if not pck_chain:
        return [*checks, failed("qe-signature", "PCK certificate chain is empty")]
    pck_key = public_key_of(pck_chain[0])
    if not isinstance(pck_key, ec.EllipticCurvePublicKey):
        return [*checks, failed("qe-signature", "PCK key is not an ECDSA key")]
    checks.append(passed("qe-signature", "PCK key signs the QE report")
                  if _verify_p256(pck_key, quote.qe_report_signature, quote.qe_report) else
                  failed("qe-signature", "QE report signature does not verify with the PCK key"))
    if not trusted_roots:
        checks.append(unchecked("pck-chain", "PCK certificate not chained to a trusted Intel root "
                                "(none configured)", AttestationLevel.NONE))
    else:
        ok, how = chain_to_anchor(pck_chain[0], pck_chain[1:], trusted_roots, now)
        checks.append(passed("pck-chain", f"chains to a trusted Intel root: {how}") if ok else
                      failed("pck-chain", f"PCK certificate not chained to a trusted Intel "
                             f"root: {how}"))
    top = AttestationLevel.TEE
    checks += [unchecked("tcb-status", "TCB status and QE identity not checked (need Intel's "
                         "TCB info and QE identity collateral, online)", top),
               unchecked("revocation", "PCK revocation not checked (needs Intel's CRLs, online)",
                         top),
               unchecked("measurement", f"MRTD {quote.body.mr_td[:8].hex()}… and RTMRs not "
                         "compared with reference values (a job owner's policy)", top)]
    return checks
