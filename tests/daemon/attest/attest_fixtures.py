"""Hand-built attestation evidence that follows the published layouts byte for byte.

Real SEV-SNP and TDX hardware is not available to the tests, so these builders play the
vendor: they make a small PKI shaped like AMD's (RSA-PSS ARK -> ASK -> P-384 VCEK) or Intel's
(P-256 root -> intermediate -> PCK), lay out an ``ATTESTATION_REPORT`` or a v4 quote at the
offsets the specifications give, and sign them as the firmware / quoting enclave would. EC keys
are derived from fixed scalars and report/quote signatures are deterministic (RFC 6979); RSA
keys (AMD's roots) and certificate signatures are fresh each run, which changes no outcome.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from daemon.attest.tdx import INTEL_QE_VENDOR_ID
from daemon.attest.tpm.structures import (ALG_ECC, ALG_ECDSA, ALG_NULL, ALG_RSA, ALG_RSASSA,
                                          ALG_SHA256, FIXED_TPM, RESTRICTED, SIGN)
from daemon.attest.tpm.eventlog import EV_NO_ACTION

NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2050, 1, 1, tzinfo=dt.timezone.utc)
NOW = 1_800_000_000.0  # 2027-01-15, inside every fixture certificate's validity


def ec_key(curve: ec.EllipticCurve, label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (1 << 200) + 1
    return ec.derive_private_key(scalar, curve)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(subject: str, key, issuer: str, issuer_key, *, ca: bool, serial: int,
              pss: bool = False, extensions: list[x509.ExtensionType] = (),
              not_after: dt.datetime = NOT_AFTER) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOT_BEFORE).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    if pss:
        return builder.sign(issuer_key, hashes.SHA384(),
                            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA384()), 48))
    algorithm = hashes.SHA384() if isinstance(issuer_key, rsa.RSAPrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# -- AMD SEV-SNP ------------------------------------------------------------------------------

CHIP_ID = hashlib.sha512(b"chip").digest()
TCB = {"bl": 3, "tee": 0, "snp": 8, "ucode": 115}


def _spl(oid: str, value: int) -> x509.UnrecognizedExtension:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), bytes([2, len(body)]) + body)


@dataclass
class AmdPki:
    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate
    vcek_key: ec.EllipticCurvePrivateKey


def make_amd_pki(chip_id: bytes = CHIP_ID, tcb: dict[str, int] = TCB) -> AmdPki:
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    vcek_key = ec_key(ec.SECP384R1(), "vcek")
    ark = make_cert("ARK-Milan", ark_key, "ARK-Milan", ark_key, ca=True, serial=1, pss=True)
    ask = make_cert("SEV-Milan", ask_key, "ARK-Milan", ark_key, ca=True, serial=2, pss=True)
    exts = [_spl("1.3.6.1.4.1.3704.1.3.1", tcb["bl"]), _spl("1.3.6.1.4.1.3704.1.3.2", tcb["tee"]),
            _spl("1.3.6.1.4.1.3704.1.3.3", tcb["snp"]),
            _spl("1.3.6.1.4.1.3704.1.3.8", tcb["ucode"]),
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4"),
                                       bytes([4, 64]) + chip_id)]
    vcek = make_cert("SEV-VCEK", vcek_key, "SEV-Milan", ask_key, ca=False, serial=3, pss=True,
                     extensions=exts)
    return AmdPki(ark, ask, vcek, vcek_key)


def tcb_u64(tcb: dict[str, int]) -> int:
    """Milan/Genoa TCB_VERSION: boot loader, TEE, 4 reserved, SNP, microcode."""
    return int.from_bytes(bytes([tcb["bl"], tcb["tee"], 0, 0, 0, 0, tcb["snp"], tcb["ucode"]]),
                          "little")


def build_snp_report(report_data: bytes, key: ec.EllipticCurvePrivateKey | None, *,
                     version: int = 2, policy: int = 0x30000, vmpl: int = 0,
                     sig_algo: int = 1, signing_key: int = 0, chip_id: bytes = CHIP_ID,
                     tcb: dict[str, int] = TCB,
                     measurement: bytes = hashlib.sha384(b"guest image").digest()) -> bytes:
    r = bytearray(0x4A0)
    struct.pack_into("<IIQ", r, 0x00, version, 1, policy)
    struct.pack_into("<II", r, 0x30, vmpl, sig_algo)
    struct.pack_into("<QQI", r, 0x38, tcb_u64(tcb), 0, signing_key << 2)
    r[0x50:0x90] = report_data
    r[0x90:0xC0] = measurement
    r[0x140:0x160] = hashlib.sha256(b"report id").digest()
    struct.pack_into("<Q", r, 0x180, tcb_u64(tcb))
    if version >= 3:
        r[0x188:0x18B] = bytes([0x19, 0x01, 0x01])
    r[0x1A0:0x1E0] = chip_id
    struct.pack_into("<Q", r, 0x1E0, tcb_u64(tcb))
    struct.pack_into("<Q", r, 0x1F0, tcb_u64(tcb))
    if key is not None:
        sig = key.sign(bytes(r[:0x2A0]), ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
        rr, ss = decode_dss_signature(sig)
        r[0x2A0:0x2A0 + 72] = rr.to_bytes(72, "little")
        r[0x2A0 + 72:0x2A0 + 144] = ss.to_bytes(72, "little")
    return bytes(r)


GUIDS = {"vcek": "63da758d-e664-4564-adc5-f4b93be8accd",
         "ask": "4ab7b379-bbac-4fe4-a02f-05aef327c782",
         "ark": "c0b406a4-a803-4952-9743-3fb6014cd0ae"}


def build_cert_table(certs: dict[str, bytes], *, mixed_endian: bool = False) -> bytes:
    entries, blobs = [], b""
    header = 24 * (len(certs) + 1)
    for name, blob in certs.items():
        u = uuid.UUID(GUIDS.get(name, name))
        entries.append((u.bytes_le if mixed_endian else u.bytes)
                       + struct.pack("<II", header + len(blobs), len(blob)))
        blobs += blob
    return b"".join(entries) + bytes(24) + blobs


# -- Intel TDX --------------------------------------------------------------------------------

@dataclass
class IntelPki:
    root: x509.Certificate
    pck: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    chain_pem: bytes


def make_intel_pki() -> IntelPki:
    root_key = ec_key(ec.SECP256R1(), "intel root")
    inter_key = ec_key(ec.SECP256R1(), "intel platform ca")
    pck_key = ec_key(ec.SECP256R1(), "pck")
    root = make_cert("Intel SGX Root CA", root_key, "Intel SGX Root CA", root_key, ca=True,
                     serial=1)
    inter = make_cert("Intel SGX PCK Platform CA", inter_key, "Intel SGX Root CA", root_key,
                      ca=True, serial=2)
    pck = make_cert("Intel SGX PCK Certificate", pck_key, "Intel SGX PCK Platform CA", inter_key,
                    ca=False, serial=3)
    return IntelPki(root, pck, pck_key, pem(pck) + pem(inter) + pem(root))


def _p256_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    rr, ss = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256(),
                                                          deterministic_signing=True)))
    return rr.to_bytes(32, "big") + ss.to_bytes(32, "big")


def build_tdx_quote(report_data: bytes, pki: IntelPki, *, td_attributes: int = 0,
                    qe_auth: bytes = b"qe authentication data", bind_key: bool = True,
                    version: int = 4, tee_type: int = 0x81, key_type: int = 2,
                    cert_type: int = 6, chain_type: int = 5, chain: bytes | None = None) -> bytes:
    att_key = ec_key(ec.SECP256R1(), "attestation key")
    att_pub = att_key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)[1:]
    header = (struct.pack("<HHI", version, key_type, tee_type) + bytes(4) + INTEL_QE_VENDOR_ID
              + bytes(20))
    body = (bytes(range(16)) + hashlib.sha384(b"seam").digest() + bytes(48) + bytes(8)
            + struct.pack("<Q", td_attributes) + struct.pack("<Q", 0xE7)
            + hashlib.sha384(b"td").digest() + bytes(48 * 3)
            + b"".join(hashlib.sha384(b"rtmr%d" % i).digest() for i in range(4)) + report_data)
    assert len(header) == 48 and len(body) == 584
    signature = _p256_sign(att_key, header + body)
    bound = att_pub if bind_key else bytes(64)
    qe_report = bytearray(384)
    qe_report[320:352] = hashlib.sha256(bound + qe_auth).digest()
    qe_sig = _p256_sign(pki.pck_key, bytes(qe_report))
    chain = pki.chain_pem if chain is None else chain
    qe_data = (bytes(qe_report) + qe_sig + struct.pack("<H", len(qe_auth)) + qe_auth
               + struct.pack("<HI", chain_type, len(chain)) + chain)
    sig_data = signature + att_pub + struct.pack("<HI", cert_type, len(qe_data)) + qe_data
    return header + body + struct.pack("<I", len(sig_data)) + sig_data


# -- TPM 2.0 public areas --------------------------------------------------------------------

def tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def rsa_public(bits: int = 2048, attrs: int = RESTRICTED | SIGN | FIXED_TPM) -> bytes:
    """A TPMT_PUBLIC for an RSA signing key (a placeholder modulus: only its shape matters)."""
    modulus = bytes([0xC5]) + bytes(bits // 8 - 1)
    return (struct.pack(">HHI", ALG_RSA, ALG_SHA256, attrs) + tpm2b(b"")
            + struct.pack(">H", ALG_NULL) + struct.pack(">HH", ALG_RSASSA, ALG_SHA256)
            + struct.pack(">HI", bits, 0) + tpm2b(modulus))


def ecc_public() -> bytes:
    """A TPMT_PUBLIC for the P-256 key ``ec_key(SECP256R1(), "ak")``."""
    nums = ec_key(ec.SECP256R1(), "ak").public_key().public_numbers()
    return (struct.pack(">HHI", ALG_ECC, ALG_SHA256, RESTRICTED | SIGN) + tpm2b(b"")
            + struct.pack(">H", ALG_NULL) + struct.pack(">HH", ALG_ECDSA, ALG_SHA256)
            + struct.pack(">HH", 0x0003, ALG_NULL) + tpm2b(nums.x.to_bytes(32, "big"))
            + tpm2b(nums.y.to_bytes(32, "big")))


# -- TCG event log ----------------------------------------------------------------------------

def build_event_log(events: list[tuple[int, int, bytes, bytes]], alg: int = 0x000B,
                    size: int = 32) -> bytes:
    """A one-bank crypto-agile log: the Spec ID header, then one TCG_PCR_EVENT2 per
    (pcr, event type, digest, data)."""
    def le(n: int, width: int = 4) -> bytes:
        return n.to_bytes(width, "little")

    spec = (b"Spec ID Event03\x00" + le(0) + bytes([0, 2, 0, 2]) + le(1) + le(alg, 2)
            + le(size, 2) + b"\x00")
    out = le(0) + le(EV_NO_ACTION) + bytes(20) + le(len(spec)) + spec
    for pcr, event_type, d, data in events:
        out += le(pcr) + le(event_type) + le(1) + le(alg, 2) + d + le(len(data)) + data
    return out
