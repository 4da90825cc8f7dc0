"""Attestation levels, ordered: a job that requires level L accepts any worker at L or above.

The level is what a *verifier* concluded from the evidence, never what the node claims.
It lives here, the lowest package that needs it: job specs and ledger operations carry a
required level, placement compares levels, and ``daemon.attest`` computes them; none of the
first three should need the attestation stack (or ``cryptography``) to name a level.
"""

from __future__ import annotations

from enum import IntEnum


class AttestationLevel(IntEnum):
    NONE = 0
    """No hardware evidence, evidence that failed verification, or TEE evidence whose signing
    key does not chain to a configured vendor root (there is no "unendorsed TEE" level: a
    self-made VCEK or PCK proves nothing). Facts are self-reported."""
    TPM_UNENDORSED = 1
    """A TPM quote that verifies (signature, nonce, key binding, PCRs) but whose endorsement key
    does not chain to a configured CA: a software TPM, or a CA list left empty."""
    TPM = 2
    """A TPM quote that verifies, whose endorsement key chains to a trusted CA, and whose
    attestation key was proven (by credential activation) to live in that EK's TPM."""
    TEE = 3
    """A confidential-VM report (SEV-SNP, TDX) bound to the node key, signed by a key that chains
    to a configured AMD or Intel root, verified as far as offline checks allow (what is left
    unchecked, such as TCB currency and revocation, is listed in the verification result)."""
