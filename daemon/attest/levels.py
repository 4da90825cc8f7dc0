"""Attestation levels, ordered: a job that requires level L accepts any worker at L or above.

The level is what a *verifier* concluded from the evidence, never what the node claims.
"""

from __future__ import annotations

from enum import IntEnum


class AttestationLevel(IntEnum):
    NONE = 0
    """No hardware evidence (or evidence that failed verification). Facts are self-reported."""
    TPM_UNENDORSED = 1
    """A TPM quote that verifies (signature, nonce, key binding, PCRs) but whose endorsement key
    does not chain to a configured CA: a software TPM, or a CA list left empty."""
    TPM = 2
    """A TPM quote that verifies and whose endorsement key chains to a trusted CA."""
    TEE = 3
    """A confidential-VM report (SEV-SNP, TDX) bound to the node key, verified as far as offline
    checks allow (what is left unchecked is listed in the verification result)."""
