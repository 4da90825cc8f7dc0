"""This machine's side of attestation: detect what it offers, answer challenges, build the
report for the capability record.

``LocalAttester`` is what the daemon holds. It prefers a TEE (configfs-tsm) over a TPM, falls
back when collection fails, and keeps every reason it met, so a report of kind ``none`` says
exactly why, and a report of kind ``tpm2`` says what its evidence lacks. It blocks on
subprocesses and file I/O: the trio daemon calls it through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from daemon.attest.detect import Detection, detect
from daemon.attest.evidence import Challenge, Evidence, EvidenceKind
from daemon.attest.facts import gather_facts
from daemon.attest.probe import FsProbe
from daemon.attest.report import MAX_REASON_LEN, MAX_REASONS, AttestationReport
from daemon.attest.tpm.driver import DEFAULT_EVENT_LOG, TpmDriver, TpmError, missing_tools
from daemon.attest.tsm import TsmError, tee_evidence


@dataclass(frozen=True, slots=True)
class Answer:
    evidence: Evidence | None
    reasons: tuple[str, ...]


@dataclass
class LocalAttester:
    data_dir: Path
    """The node's data directory; the TPM attestation key lives in ``<data_dir>/tpm``."""
    probe: FsProbe = field(default_factory=FsProbe)
    tcti: str | None = None
    """Use this TPM (e.g. ``swtpm:host=127.0.0.1,port=2321``) instead of the detected device."""
    event_log_path: Path | None = DEFAULT_EVENT_LOG

    def detect(self) -> Detection:
        return detect(self.probe)

    def answer(self, challenge: Challenge, node_public_key: bytes) -> Answer:
        """Evidence for ``challenge`` from the best mechanism that works, with the reasons."""
        detection = self.detect()
        reasons: list[str] = []
        if self.tcti is None and detection.tsm.available and challenge.credential is None:
            try:
                evidence = tee_evidence(self.probe, challenge.nonce, node_public_key,
                                        f"novacron-{os.getpid()}-{os.urandom(4).hex()}")
                return Answer(evidence, ())
            except TsmError as err:
                reasons.append(f"configfs-tsm: {err}")
        tcti = self.tcti or (f"device:{self.probe.path(detection.tpm.path)}"
                             if detection.tpm.path is not None else None)
        if tcti is not None:
            missing = missing_tools()
            if missing:
                reasons.append(f"TPM 2.0: tpm2-tools missing ({', '.join(missing[:3])}…): "
                               "install the tpm2-tools package")
            else:
                try:
                    driver = TpmDriver(tcti, self.data_dir / "tpm",
                                       event_log_path=self.event_log_path)
                    done = driver.attest(challenge.nonce, node_public_key, challenge.credential)
                    return Answer(done.evidence,
                                  tuple(f"TPM 2.0: {n}" for n in done.notes) + tuple(reasons))
                except TpmError as err:
                    reasons.append(f"TPM 2.0 at {tcti}: {err}")
        return Answer(None, detection.reasons() + tuple(reasons))

    def report(self, challenge: Challenge, node_public_key: bytes) -> AttestationReport:
        """The report for the capability record, with fresh evidence for ``challenge``."""
        answer = self.answer(challenge, node_public_key)
        kind = EvidenceKind.NONE if answer.evidence is None else answer.evidence.kind
        reasons = tuple(r[:MAX_REASON_LEN] for r in answer.reasons)[:MAX_REASONS]
        return AttestationReport(kind, answer.evidence, (), reasons, gather_facts(self.probe))
