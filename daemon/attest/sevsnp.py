"""AMD SEV-SNP attestation reports: parse the published layout and check what can be offline.

Layout: ``ATTESTATION_REPORT`` of the SEV Secure Nested Paging Firmware ABI Specification
(AMD 56860), 0x4A0 bytes, little-endian. The firmware signs bytes 0x000-0x29F with ECDSA
P-384/SHA-384 using the chip's VCEK (or a cloud's VLEK); the signature at 0x2A0 holds R and S
as 72-byte little-endian integers. Fields used here:

    0x000 VERSION u32 (2 to 5)       0x008 POLICY u64 (bit 19: debugging allowed)
    0x030 VMPL u32                   0x034 SIGNATURE_ALGO u32 (1 = ECDSA P-384 with SHA-384)
    0x038 CURRENT_TCB u64            0x048 flags u32 (bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_ID,
    0x050 REPORT_DATA [64]                             bits 4:2 SIGNING_KEY: 0 VCEK, 1 VLEK,
    0x090 MEASUREMENT [48]                             7 none)
    0x0C0 HOST_DATA [32]             0x140 REPORT_ID [32]
    0x180 REPORTED_TCB u64           0x188 CPUID family, model, stepping u8 (version >= 3)
    0x1A0 CHIP_ID [64]               0x1E0 COMMITTED_TCB u64     0x1F0 LAUNCH_TCB u64
    0x2A0 SIGNATURE [0x200]

The certificates come from the host's certificate table (GHCB extended guest request; what
configfs-tsm returns as ``auxblob``): 24-byte entries {GUID, u32 offset, u32 length} ending in
an all-zero entry, GUIDs naming the VCEK, VLEK, ASK and ARK.
"""

from __future__ import annotations

import datetime as dt
import uuid
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
from daemon.attest.evidence import SnpEvidence
from daemon.attest.result import Check, failed, passed, unchecked
from daemon.attest.x509chain import chain_to_anchor, load_certificate, public_key_of
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SUPPORTED_VERSIONS = (2, 3, 4, 5)
SIG_ALGO_ECDSA_P384_SHA384 = 1
POLICY_DEBUG = 1 << 19
SIGNING_KEYS = {0: "VCEK", 1: "VLEK", 7: "none"}
_P384_ORDER = int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
                  "581a0db248b0a77aecec196accc52973", 16)

CERT_GUIDS = {uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "vcek",
              uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "vlek",
              uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ask",
              uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ark"}
MAX_CERT_TABLE = 32 * 1024

# VCEK certificate extensions (AMD "Versioned Chip Endorsement Key" specification).
OID_BL_SPL = "1.3.6.1.4.1.3704.1.3.1"
OID_TEE_SPL = "1.3.6.1.4.1.3704.1.3.2"
OID_SNP_SPL = "1.3.6.1.4.1.3704.1.3.3"
OID_UCODE_SPL = "1.3.6.1.4.1.3704.1.3.8"
OID_HWID = "1.3.6.1.4.1.3704.1.4"


@dataclass(frozen=True, slots=True)
class TcbVersion:
    raw: int
    boot_loader: int
    tee: int
    snp: int
    microcode: int

    @classmethod
    def decode(cls, raw: int, turin: bool) -> "TcbVersion":
        b = raw.to_bytes(8, "little")
        if turin:  # Turin (family 0x1A): FMC, boot loader, TEE, SNP, reserved x3, microcode
            return cls(raw, b[1], b[2], b[3], b[7])
        return cls(raw, b[0], b[1], b[6], b[7])  # Milan, Genoa: BL, TEE, reserved x4, SNP, ucode


@dataclass(frozen=True, slots=True)
class SnpReport:
    raw: bytes
    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signature_algo: int
    current_tcb: TcbVersion
    author_key_en: bool
    mask_chip_id: bool
    signing_key: str
    report_data: bytes
    measurement: bytes
    host_data: bytes
    report_id: bytes
    reported_tcb: TcbVersion
    cpuid_family: int | None
    chip_id: bytes
    launch_tcb: TcbVersion
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def debug_allowed(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def parse_report(data: bytes) -> SnpReport:
    """Parse an ``ATTESTATION_REPORT``; ``MalformedMessage`` says what is wrong."""
    if not isinstance(data, bytes):
        raise MalformedMessage("SEV-SNP report: expected bytes")
    if len(data) != REPORT_SIZE:
        what = "truncated" if len(data) < REPORT_SIZE else "too long"
        raise MalformedMessage(f"SEV-SNP report: {what}: {len(data)} bytes, an "
                               f"ATTESTATION_REPORT is {REPORT_SIZE}")
    r = ByteReader(data, "SEV-SNP report", big_endian=False)
    version = r.u32("VERSION")
    if version not in SUPPORTED_VERSIONS:
        raise MalformedMessage(f"SEV-SNP report: unsupported VERSION {version} "
                               f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
    guest_svn, policy = r.u32("GUEST_SVN"), r.u64("POLICY")
    r.take(32, "FAMILY_ID, IMAGE_ID")
    vmpl, sig_algo = r.u32("VMPL"), r.u32("SIGNATURE_ALGO")
    if vmpl > 3:
        raise MalformedMessage(f"SEV-SNP report: VMPL {vmpl} is not 0-3")
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise MalformedMessage(f"SEV-SNP report: SIGNATURE_ALGO {sig_algo} is not 1 "
                               "(ECDSA P-384 with SHA-384)")
    family = data[0x188] if version >= 3 else None
    turin = family == 0x1A
    current_tcb = TcbVersion.decode(r.u64("CURRENT_TCB"), turin)
    r.u64("PLATFORM_INFO")
    flags = r.u32("flags")
    key_code = (flags >> 2) & 7
    if key_code not in SIGNING_KEYS:
        raise MalformedMessage(f"SEV-SNP report: reserved SIGNING_KEY value {key_code}")
    sig = data[SIGNED_SIZE:]
    sig_r, sig_s = int.from_bytes(sig[0:72], "little"), int.from_bytes(sig[72:144], "little")
    return SnpReport(
        raw=data, version=version, guest_svn=guest_svn, policy=policy, vmpl=vmpl,
        signature_algo=sig_algo, current_tcb=current_tcb, author_key_en=bool(flags & 1),
        mask_chip_id=bool(flags & 2), signing_key=SIGNING_KEYS[key_code],
        report_data=data[0x50:0x90], measurement=data[0x90:0xC0], host_data=data[0xC0:0xE0],
        report_id=data[0x140:0x160],
        reported_tcb=TcbVersion.decode(int.from_bytes(data[0x180:0x188], "little"), turin),
        cpuid_family=family, chip_id=data[0x1A0:0x1E0],
        launch_tcb=TcbVersion.decode(int.from_bytes(data[0x1F0:0x1F8], "little"), turin),
        signature_r=sig_r, signature_s=sig_s)


def parse_cert_table(blob: bytes) -> dict[str, bytes]:
    """Certificates by name (``vcek``, ``vlek``, ``ask``, ``ark``, or an unknown GUID).

    GUIDs are read in RFC 4122 byte order as the AMD and virtee tools write them; the
    mixed-endian form some hosts use is accepted too.
    """
    if len(blob) > MAX_CERT_TABLE:
        raise MalformedMessage(f"SEV-SNP certificate table: {len(blob)} bytes, at most "
                               f"{MAX_CERT_TABLE}")
    r = ByteReader(blob, "SEV-SNP certificate table", big_endian=False)
    certs: dict[str, bytes] = {}
    while True:
        raw_guid = r.take(16, "GUID")
        offset, length = r.u32("offset"), r.u32("length")
        if raw_guid == bytes(16):
            break
        if offset + length > len(blob) or length == 0:
            raise MalformedMessage(f"SEV-SNP certificate table: entry points at bytes "
                                   f"{offset}..{offset + length} of a {len(blob)}-byte table")
        name = (CERT_GUIDS.get(uuid.UUID(bytes=raw_guid))
                or CERT_GUIDS.get(uuid.UUID(bytes_le=raw_guid))
                or str(uuid.UUID(bytes=raw_guid)))
        if name in certs:
            raise MalformedMessage(f"SEV-SNP certificate table: {name} listed twice")
        certs[name] = blob[offset:offset + length]
    return certs


def _der_value(ext_value: bytes) -> bytes | int:
    """AMD's VCEK extensions hold a DER INTEGER (SPLs) or OCTET STRING (hwID); some older
    certificates hold the hwID's raw 64 bytes."""
    if len(ext_value) >= 2 and ext_value[0] in (0x02, 0x04) and ext_value[1] == len(ext_value) - 2:
        body = ext_value[2:]
        return int.from_bytes(body, "big") if ext_value[0] == 0x02 else body
    return ext_value


def vcek_tcb_check(vcek: x509.Certificate, report: SnpReport) -> Check:
    exts = {e.oid.dotted_string: e.value for e in vcek.extensions}

    def value(oid: str) -> bytes | int | None:
        ext = exts.get(oid)
        return None if ext is None else _der_value(getattr(ext, "value", b""))

    problems = []
    hwid = value(OID_HWID)
    if hwid is not None and not report.mask_chip_id and hwid != report.chip_id:
        problems.append("its hwID is another chip's")
    tcb = report.reported_tcb
    for oid, name, want in ((OID_BL_SPL, "boot loader", tcb.boot_loader),
                            (OID_TEE_SPL, "TEE", tcb.tee), (OID_SNP_SPL, "SNP", tcb.snp),
                            (OID_UCODE_SPL, "microcode", tcb.microcode)):
        got = value(oid)
        if got is not None and got != want:
            problems.append(f"{name} SPL {got!r} differs from the report's {want}")
    if problems:
        return failed("vcek-tcb", "the VCEK does not match the report: " + "; ".join(problems))
    if not any(o in exts for o in (OID_HWID, OID_BL_SPL, OID_SNP_SPL)):
        return unchecked("vcek-tcb", "the signing certificate carries no chip or TCB "
                         "extensions to compare", AttestationLevel.TEE)
    return passed("vcek-tcb", "VCEK is for this chip and the report's TCB")


def signature_check(key_cert: x509.Certificate, report: SnpReport) -> Check:
    key = public_key_of(key_cert)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        return failed("signature", "the signing certificate's key is not ECDSA P-384")
    if not (0 < report.signature_r < _P384_ORDER and 0 < report.signature_s < _P384_ORDER):
        return failed("signature", "signature R or S is out of range (corrupted)")
    try:
        key.verify(encode_dss_signature(report.signature_r, report.signature_s),
                   report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return failed("signature", f"the {report.signing_key} signature over bytes "
                      "0x000-0x29F does not verify (report altered or another chip's key)")
    return passed("signature", f"{report.signing_key} ECDSA P-384 signature verifies")


def snp_checks(evidence: SnpEvidence, issued_nonce: bytes, node_public_key: bytes,
               trusted_arks: Sequence[x509.Certificate], now: dt.datetime) -> list[Check]:
    try:
        report = parse_report(evidence.report)
    except MalformedMessage as err:
        return [failed("structure", str(err))]
    checks = [passed("structure", f"SEV-SNP report v{report.version}, VMPL {report.vmpl}, "
                     f"signed by {report.signing_key}")]
    checks += binding_checks(report.report_data, tee_report_data, "report data", evidence.nonce,
                             issued_nonce, node_public_key)
    checks.append(failed("policy", "guest policy allows debugging (POLICY bit 19): the host can "
                         "read guest memory") if report.debug_allowed else
                  passed("policy", "guest policy forbids debugging"))
    if report.signing_key == "none" or evidence.vcek is None:
        why = ("the report is unsigned (SIGNING_KEY none)" if report.signing_key == "none" else
               "no VCEK certificate supplied (the host's certificate table has none; AMD's key "
               "distribution server has it for this chip id and TCB)")
        return [*checks, unchecked("signature", why, AttestationLevel.NONE)]
    try:
        vcek = load_certificate(evidence.vcek)
        chain = [load_certificate(c) for c in evidence.chain]
    except ValueError as err:
        return [*checks, failed("signature", f"signing certificate does not parse: {err}")]
    checks.append(signature_check(vcek, report))
    checks.append(vcek_tcb_check(vcek, report))
    if not trusted_arks:
        checks.append(unchecked("vcek-chain", f"{report.signing_key} not chained to a trusted "
                                "AMD root (none configured)", AttestationLevel.NONE))
    else:
        ok, how = chain_to_anchor(vcek, chain, trusted_arks, now)
        checks.append(passed("vcek-chain", f"chains to a trusted AMD root: {how}") if ok else
                      failed("vcek-chain", f"{report.signing_key} not chained to a trusted AMD "
                             f"root: {how}"))
    top = AttestationLevel.TEE
    checks += [unchecked("tcb-currency", "TCB not compared with AMD's current TCB (needs AMD's "
                         "key distribution server, online)", top),
               unchecked("revocation", "VCEK and ASK revocation not checked (needs AMD's CRL, "
                         "online)", top),
               unchecked("measurement", f"launch measurement {report.measurement[:8].hex()}… not "
                         "compared with reference values (a job owner's policy)", top)]
    return checks
