"""Binding evidence to a verifier's nonce and to the node's Ed25519 key.

Hardware evidence proves "this machine said X"; binding makes X mean "for *this* challenge and
*this* node key", so the evidence can neither be replayed to another verifier (other nonce)
nor lent to another node (other key):

- TEE report data (64 bytes, SEV-SNP ``REPORT_DATA`` / TDX ``REPORTDATA``):
  ``SHA-512(TEE_DOMAIN_TAG || nonce || public_key)``. The tag keeps our 64 bytes from ever
  colliding with report data another program asks the same firmware for.
- TPM quote qualifying data (``extraData``): ``SHA-256(nonce || public_key)``. 32 bytes fit
  every TPM's ``TPM2B_DATA``; no tag is needed because the quote's signer is our own
  attestation key, which signs nothing else.
"""

from __future__ import annotations

import hashlib

from protocol.errors import MalformedMessage
from protocol.identity import PUBLIC_KEY_SIZE

NONCE_SIZE = 32
TEE_DOMAIN_TAG = b"novacron/attest/tee-report-data/v1\x00"


def _check(nonce: bytes, public_key: bytes) -> None:
    if len(nonce) != NONCE_SIZE:
        raise MalformedMessage(f"attestation nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise MalformedMessage(f"node public key must be {PUBLIC_KEY_SIZE} bytes, "
                               f"got {len(public_key)}")


def tee_report_data(nonce: bytes, public_key: bytes) -> bytes:
    """The 64 bytes a TEE report must carry for ``nonce`` and ``public_key``."""
    _check(nonce, public_key)
    return hashlib.sha512(TEE_DOMAIN_TAG + nonce + public_key).digest()


def tpm_qualifying_data(nonce: bytes, public_key: bytes) -> bytes:
    """The 32 bytes a TPM quote's ``extraData`` must carry for ``nonce`` and ``public_key``."""
    _check(nonce, public_key)
    return hashlib.sha256(nonce + public_key).digest()
