"""TPM 2.0 wire structures, parsed in pure Python (TPM 2.0 Library, Part 2: Structures).

Only what a verifier needs: ``TPMT_PUBLIC`` (an attestation or endorsement key, and its *name*),
``TPMS_ATTEST`` carrying a ``TPMS_QUOTE_INFO``, and ``TPMT_SIGNATURE``. All integers are
big-endian. Every parser raises ``MalformedMessage`` on bad input and rejects trailing bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from daemon.attest.bytereader import ByteReader
from protocol.errors import MalformedMessage

# TPM_ALG_ID values we meet.
ALG_RSA = 0x0001
ALG_SHA1 = 0x0004
ALG_AES = 0x0006
ALG_SHA256 = 0x000B
ALG_SHA384 = 0x000C
ALG_SHA512 = 0x000D
ALG_NULL = 0x0010
ALG_RSASSA = 0x0014
ALG_RSAPSS = 0x0016
ALG_ECDSA = 0x0018
ALG_ECC = 0x0023
ALG_CFB = 0x0043

HASH_NAMES = {ALG_SHA1: "sha1", ALG_SHA256: "sha256", ALG_SHA384: "sha384", ALG_SHA512: "sha512"}
HASH_IDS = {name: alg for alg, name in HASH_NAMES.items()}
HASH_SIZES = {ALG_SHA1: 20, ALG_SHA256: 32, ALG_SHA384: 48, ALG_SHA512: 64}
_CRYPTO_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    ALG_SHA1: hashes.SHA1, ALG_SHA256: hashes.SHA256, ALG_SHA384: hashes.SHA384,
    ALG_SHA512: hashes.SHA512}

ECC_CURVES: dict[int, type[ec.EllipticCurve]] = {
    0x0003: ec.SECP256R1, 0x0004: ec.SECP384R1, 0x0005: ec.SECP521R1}

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018

# TPMA_OBJECT bits.
FIXED_TPM = 1 << 1
FIXED_PARENT = 1 << 4
SENSITIVE_DATA_ORIGIN = 1 << 5
USER_WITH_AUTH = 1 << 6
ADMIN_WITH_POLICY = 1 << 7
RESTRICTED = 1 << 16
DECRYPT = 1 << 17
SIGN = 1 << 18

MAX_BUFFER = 1024  # every TPM2B we accept (keys, names, digests, signatures) fits this
MAX_PCR_SELECTIONS = 8


def hash_name(alg: int) -> str:
    try:
        return HASH_NAMES[alg]
    except KeyError:
        raise MalformedMessage(f"unsupported TPM hash algorithm 0x{alg:04x}") from None


def digest(alg: int, data: bytes) -> bytes:
    return hashlib.new(hash_name(alg), data).digest()


def crypto_hash(alg: int) -> hashes.HashAlgorithm:
    hash_name(alg)
    return _CRYPTO_HASHES[alg]()


@dataclass(frozen=True, slots=True)
class SymDef:
    algorithm: int
    key_bits: int = 0
    mode: int = 0


@dataclass(frozen=True, slots=True)
class TpmPublic:
    """A parsed ``TPMT_PUBLIC``; ``raw`` is the exact bytes its name is computed over."""

    raw: bytes
    type: int
    name_alg: int
    attributes: int
    auth_policy: bytes
    symmetric: SymDef
    scheme: int
    scheme_hash: int
    rsa_bits: int = 0
    rsa_exponent: int = 0
    rsa_modulus: bytes = b""
    curve: int = 0
    ecc_x: bytes = b""
    ecc_y: bytes = b""

    @property
    def name(self) -> bytes:
        """The TPM name: nameAlg (2 bytes) || H_nameAlg(TPMT_PUBLIC)."""
        return self.name_alg.to_bytes(2, "big") + digest(self.name_alg, self.raw)

    def has(self, attribute_bits: int) -> bool:
        return self.attributes & attribute_bits == attribute_bits

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key as a ``cryptography`` object; raises ``MalformedMessage`` if it is invalid."""
        try:
            if self.type == ALG_RSA:
                return rsa.RSAPublicNumbers(self.rsa_exponent or 65537,
                                            int.from_bytes(self.rsa_modulus, "big")).public_key()
            curve = ECC_CURVES[self.curve]()
            return ec.EllipticCurvePublicNumbers(int.from_bytes(self.ecc_x, "big"),
                                                 int.from_bytes(self.ecc_y, "big"),
                                                 curve).public_key()
        except (ValueError, KeyError) as err:
            raise MalformedMessage(f"TPM public key is not a valid key: {err}") from None

    def describe(self) -> str:
        if self.type == ALG_RSA:
            return f"RSA-{self.rsa_bits}"
        return f"ECC-{ECC_CURVES[self.curve].name}" if self.curve in ECC_CURVES else "ECC"


def _sym_def(r: ByteReader) -> SymDef:
    alg = r.u16("symmetric algorithm")
    if alg == ALG_NULL:
        return SymDef(alg)
    return SymDef(alg, r.u16("symmetric key bits"), r.u16("symmetric mode"))


def _scheme(r: ByteReader) -> tuple[int, int]:
    scheme = r.u16("scheme")
    return (scheme, 0) if scheme == ALG_NULL else (scheme, r.u16("scheme hash"))


def parse_public(data: bytes) -> TpmPublic:
    """Parse a ``TPMT_PUBLIC`` (RSA or ECC key)."""
    r = ByteReader(data, "TPMT_PUBLIC", big_endian=True)
    obj_type = r.u16("type")
    if obj_type not in (ALG_RSA, ALG_ECC):
        raise MalformedMessage(f"TPMT_PUBLIC: unsupported key type 0x{obj_type:04x}")
    name_alg = r.u16("nameAlg")
    hash_name(name_alg)
    attributes = r.u32("objectAttributes")
    auth_policy = r.sized(2, "authPolicy", 64)
    symmetric = _sym_def(r)
    scheme, scheme_hash = _scheme(r)
    if obj_type == ALG_RSA:
        bits = r.u16("keyBits")
        exponent = r.u32("exponent")
        modulus = r.sized(2, "RSA modulus", 512)
        r.end()
        if bits not in (1024, 2048, 3072, 4096) or len(modulus) * 8 != bits:
            raise MalformedMessage(f"TPMT_PUBLIC: RSA modulus of {len(modulus)} bytes does not "
                                   f"match keyBits {bits}")
        return TpmPublic(bytes(data), obj_type, name_alg, attributes, auth_policy, symmetric,
                         scheme, scheme_hash, rsa_bits=bits, rsa_exponent=exponent,
                         rsa_modulus=modulus)
    curve = r.u16("curveID")
    _scheme(r)  # kdf
    x = r.sized(2, "ECC x", 66)
    y = r.sized(2, "ECC y", 66)
    r.end()
    if curve not in ECC_CURVES:
        raise MalformedMessage(f"TPMT_PUBLIC: unsupported ECC curve 0x{curve:04x}")
    return TpmPublic(bytes(data), obj_type, name_alg, attributes, auth_policy, symmetric,
                     scheme, scheme_hash, curve=curve, ecc_x=x, ecc_y=y)


def unwrap_tpm2b_public(data: bytes) -> bytes:
    """The ``TPMT_PUBLIC`` inside a ``TPM2B_PUBLIC`` (what ``tpm2_createak -u`` writes)."""
    r = ByteReader(data, "TPM2B_PUBLIC", big_endian=True)
    inner = r.sized(2, "publicArea", MAX_BUFFER)
    r.end()
    return inner


@dataclass(frozen=True, slots=True)
class PcrSelection:
    hash_alg: int
    pcrs: tuple[int, ...]

    def to_tpm(self) -> bytes:
        """``TPMS_PCR_SELECTION`` bytes (3-byte bitmap, enough for PCRs 0-23)."""
        bitmap = bytearray(max(3, (max(self.pcrs, default=0) // 8) + 1))
        for pcr in self.pcrs:
            bitmap[pcr // 8] |= 1 << (pcr % 8)
        return self.hash_alg.to_bytes(2, "big") + bytes([len(bitmap)]) + bytes(bitmap)


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """A parsed ``TPMS_ATTEST`` whose ``attested`` member is a ``TPMS_QUOTE_INFO``."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    selections: tuple[PcrSelection, ...]
    pcr_digest: bytes


def parse_attest(data: bytes) -> QuoteInfo:
    r = ByteReader(data, "TPMS_ATTEST", big_endian=True)
    magic = r.u32("magic")
    att_type = r.u16("type")
    signer = r.sized(2, "qualifiedSigner", 2 + 64)
    extra = r.sized(2, "extraData", 64)
    clock, reset, restart = r.u64("clock"), r.u32("resetCount"), r.u32("restartCount")
    safe = r.u8("safe")
    firmware = r.u64("firmwareVersion")
    if att_type != TPM_ST_ATTEST_QUOTE:
        raise MalformedMessage(f"TPMS_ATTEST: type 0x{att_type:04x} is not a quote (0x8018)")
    count = r.u32("pcrSelect count")
    if count > MAX_PCR_SELECTIONS:
        raise r.fail(f"{count} PCR selections, at most {MAX_PCR_SELECTIONS} allowed")
    selections = []
    for _ in range(count):
        alg = r.u16("pcr hash")
        bitmap = r.sized(1, "pcrSelect", 8)
        pcrs = tuple(i * 8 + b for i, byte in enumerate(bitmap) for b in range(8)
                     if byte >> b & 1)
        selections.append(PcrSelection(alg, pcrs))
    pcr_digest = r.sized(2, "pcrDigest", 64)
    r.end()
    return QuoteInfo(magic, att_type, signer, extra, clock, reset, restart, bool(safe), firmware,
                     tuple(selections), pcr_digest)


@dataclass(frozen=True, slots=True)
class TpmSignature:
    sig_alg: int
    hash_alg: int
    rsa_signature: bytes = b""
    ecdsa_r: bytes = b""
    ecdsa_s: bytes = b""


def parse_signature(data: bytes) -> TpmSignature:
    """Parse a ``TPMT_SIGNATURE`` (RSASSA, RSAPSS or ECDSA)."""
    r = ByteReader(data, "TPMT_SIGNATURE", big_endian=True)
    sig_alg = r.u16("sigAlg")
    hash_alg = r.u16("hash")
    if sig_alg in (ALG_RSASSA, ALG_RSAPSS):
        sig = TpmSignature(sig_alg, hash_alg, rsa_signature=r.sized(2, "signature", 512))
    elif sig_alg == ALG_ECDSA:
        sig = TpmSignature(sig_alg, hash_alg, ecdsa_r=r.sized(2, "signatureR", 66),
                           ecdsa_s=r.sized(2, "signatureS", 66))
    else:
        raise MalformedMessage(f"TPMT_SIGNATURE: unsupported algorithm 0x{sig_alg:04x}")
    r.end()
    hash_name(hash_alg)
    return sig
