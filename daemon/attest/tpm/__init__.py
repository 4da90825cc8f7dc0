"""TPM 2.0 attestation.

- ``structures`` -- TPMT_PUBLIC, TPMS_ATTEST (quote), TPMT_SIGNATURE parsing; names.
- ``quote``      -- quote checks: AK shape, signature, nonce and key binding, PCR digest.
- ``endorsement`` -- EK shape, EK certificate and chain, qualified signer, AK-EK binding.
- ``credential`` -- MakeCredential (verifier side of credential activation).
- ``eventlog``   -- TCG crypto-agile event log parsing and replay.
- ``driver``     -- the I/O: tpm2-tools against a device or swtpm.

Nothing is re-exported here: ``daemon.attest.evidence`` imports ``credential`` while
``driver`` imports ``evidence``, so an eager import in this file would make a cycle. Import
the modules directly.
"""
