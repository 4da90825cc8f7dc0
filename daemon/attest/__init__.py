"""Hardware attestation (filled in by the attestation issue).

- ``levels`` -- the ordered attestation levels a job can require.
"""

from daemon.attest.levels import AttestationLevel

__all__ = ["AttestationLevel"]
