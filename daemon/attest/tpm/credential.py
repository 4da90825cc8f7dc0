"""Credential activation, the verifier's half: proof that an AK lives in the TPM of an EK.

An EK certificate vouches for the EK, but quotes are signed by the AK. TPM2_MakeCredential
(TPM 2.0 Part 1, section 24, "Credential Protection") links the two: the verifier picks a secret
and encrypts it so that only a TPM holding *both* the EK private key and a loaded object whose
name is the AK's name can recover it with TPM2_ActivateCredential. The name covers the AK's
attributes, so a TPM that answers proves the AK is its own restricted, fixedTPM key.

MakeCredential needs only public keys, so the verifier runs it here in pure Python:

    seed           random, the size of the EK's nameAlg digest
    encryptedSeed  RSA-OAEP(EK, seed, hash = EK nameAlg, label = "IDENTITY\\0")
    symKey         KDFa(nameAlg, seed, "STORAGE", AK name, "", EK symmetric key bits)
    encIdentity    AES-CFB(symKey, IV = 0, TPM2B_DIGEST(secret))
    hmacKey        KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
    integrity      HMAC(hmacKey, encIdentity || AK name)
    idObject       TPM2B_DIGEST(integrity) || encIdentity

Only RSA endorsement keys are supported (every TPM 2.0 carries the RSA-2048 EK of the TCG EK
profile); ECC EKs need ECDH-based seed exchange, which is not implemented.
"""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" namespace; TPM 2.0 still mandates it for credentials
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from daemon.attest.bytereader import ByteReader
from daemon.attest.tpm.structures import (ALG_AES, ALG_CFB, ALG_RSA, HASH_SIZES, TpmPublic,
                                          crypto_hash, hash_name)
from protocol.errors import MalformedMessage

SECRET_SIZE = 32
TOOLS_MAGIC = 0xBADCC0DE  # tpm2-tools' credential file header
TOOLS_VERSION = 1


@dataclass(frozen=True, slots=True)
class Credential:
    """What the verifier sends: ``TPM2B_ID_OBJECT`` and ``TPM2B_ENCRYPTED_SECRET`` contents."""

    id_object: bytes
    encrypted_seed: bytes

    def to_tools_file(self) -> bytes:
        """The file format ``tpm2_activatecredential -i`` reads."""
        return (TOOLS_MAGIC.to_bytes(4, "big") + TOOLS_VERSION.to_bytes(4, "big")
                + len(self.id_object).to_bytes(2, "big") + self.id_object
                + len(self.encrypted_seed).to_bytes(2, "big") + self.encrypted_seed)

    @classmethod
    def from_tools_file(cls, data: bytes) -> "Credential":
        r = ByteReader(data, "credential file", big_endian=True)
        if r.u32("magic") != TOOLS_MAGIC or r.u32("version") != TOOLS_VERSION:
            raise MalformedMessage("credential file: not a tpm2-tools credential (bad header)")
        id_object = r.sized(2, "idObject", 1024)
        seed = r.sized(2, "encryptedSecret", 1024)
        r.end()
        return cls(id_object, seed)


def kdfa(hash_alg: int, key: bytes, label: bytes, context_u: bytes, context_v: bytes,
         bits: int) -> bytes:
    """TPM 2.0 KDFa (SP 800-108 counter mode with HMAC), Part 1 section 11.4.10.2."""
    if not label.endswith(b"\x00"):
        label += b"\x00"
    name = hash_name(hash_alg)
    out = b""
    counter = 1
    while len(out) * 8 < bits:
        out += hmac.new(key, counter.to_bytes(4, "big") + label + context_u + context_v
                        + bits.to_bytes(4, "big"), name).digest()
        counter += 1
    return out[:(bits + 7) // 8]


def make_credential(ek: TpmPublic, ak_name: bytes, secret: bytes,
                    rng: random.Random) -> Credential:
    """Encrypt ``secret`` for the TPM holding ``ek`` and an object named ``ak_name``.

    ``rng`` supplies the seed; pass ``random.SystemRandom()`` outside tests (the seed must be
    unpredictable, or anyone could unwrap the secret). OAEP padding draws its own randomness.
    """
    if ek.type != ALG_RSA:
        raise MalformedMessage("credential activation needs an RSA endorsement key")
    if ek.symmetric.algorithm != ALG_AES or ek.symmetric.mode != ALG_CFB:
        raise MalformedMessage("endorsement key's symmetric scheme is not AES-CFB")
    if not 0 < len(secret) <= HASH_SIZES[ek.name_alg]:
        raise ValueError("credential secret must be 1..digest-size bytes")
    digest_size = HASH_SIZES[ek.name_alg]
    seed = rng.randbytes(digest_size)
    key = ek.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(crypto_hash(ek.name_alg)),
                        algorithm=crypto_hash(ek.name_alg), label=b"IDENTITY\x00")
    encrypted_seed = key.encrypt(seed, oaep)
    sym_key = kdfa(ek.name_alg, seed, b"STORAGE", ak_name, b"", ek.symmetric.key_bits)
    plaintext = len(secret).to_bytes(2, "big") + secret
    encryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = encryptor.update(plaintext) + encryptor.finalize()
    hmac_key = kdfa(ek.name_alg, seed, b"INTEGRITY", b"", b"", digest_size * 8)
    integrity = hmac.new(hmac_key, enc_identity + ak_name, hash_name(ek.name_alg)).digest()
    id_object = len(integrity).to_bytes(2, "big") + integrity + enc_identity
    return Credential(id_object, encrypted_seed)


def secrets_match(expected: bytes, answered: bytes | None) -> bool:
    return answered is not None and hmac.compare_digest(expected, answered)


