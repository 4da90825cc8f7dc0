"""The NovaCron node daemon: everything that does I/O, plus the pure decision logic it hosts.

Subpackages:

- ``cli``     -- the ``novacron`` command line.
- ``attest``  -- hardware attestation (TPM 2.0, SEV-SNP, TDX): detection, evidence, verification.
"""
