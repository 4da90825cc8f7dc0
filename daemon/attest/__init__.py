"""Hardware attestation: real evidence where the machine supports it, and why not where not.

This machine's side (I/O):

- ``probe``    -- read-only filesystem view (real root or a fake one for tests).
- ``detect``   -- which of TPM 2.0, configfs-tsm, SEV-SNP, TDX are usable, and why not.
- ``facts``    -- CPU, memory, OS: self-reported, labelled so.
- ``tsm``      -- TEE evidence through configfs-tsm (Linux 6.7+).
- ``tpm.driver`` -- TPM quotes and credential activation through tpm2-tools.
- ``collect``  -- ``LocalAttester``: answers challenges, builds the capability record's report.

The verifier's side (pure: no I/O, no clock, randomness passed in):

- ``binding``  -- report data / qualifying data from nonce and node key.
- ``evidence`` -- evidence, challenge and evidence-file formats (msgpack, validated).
- ``tpm.structures``, ``tpm.quote``, ``tpm.endorsement``, ``tpm.credential``,
  ``tpm.eventlog`` -- TPM 2.0 parsing and checks, EK/AK binding, event-log replay.
- ``sevsnp``, ``tdx`` -- AMD SEV-SNP report and Intel TDX quote parsers and checks.
- ``x509chain`` -- certificate paths to configured roots.
- ``verify``   -- ``Verifier`` (nonces, replay) and ``verify_evidence`` -> ``VerificationResult``.
- ``result``   -- checks and the rule that turns them into a level.
- ``report``   -- ``AttestationReport`` {kind, evidence, verified_by, reasons, self_reported}.
- ``statement`` -- verifiers' signed statements and the level a scheduler may rely on.

The ordered attestation levels a job can require are ``protocol.attestation.AttestationLevel``:
the scheduler, the ledger and job specs need them without this stack. This ``__init__``
re-exports nothing, so importing one module never loads the others (nor ``cryptography``).
"""
