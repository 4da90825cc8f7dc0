"""``LocalAttester`` choosing a mechanism and keeping every reason on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path

from daemon.attest.collect import LocalAttester
from daemon.attest.evidence import Challenge, EvidenceKind
from daemon.attest.probe import FsProbe

KEY = hashlib.sha256(b"key").digest()


def test_a_tsm_directory_that_is_not_configfs_falls_back_with_the_reason(tmp_path: Path) -> None:
    report_dir = tmp_path / "sys/kernel/config/tsm/report"
    report_dir.mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Fake\n")
    attester = LocalAttester(tmp_path / "data", FsProbe(tmp_path, uid=0, gids=(0,)),
                             event_log_path=None)
    report = attester.report(Challenge(bytes(32)), KEY)
    assert report.kind is EvidenceKind.NONE and report.evidence is None
    [tsm] = [r for r in report.reasons if r.startswith("configfs-tsm:")]
    assert tsm.startswith("configfs-tsm: generation missing in ")
    assert tsm.endswith(": not a configfs-tsm entry")
    assert list(report_dir.iterdir()) == []  # the entry it made was removed again
    assert any(r.startswith("TPM 2.0: /dev/tpmrm0: no device node") for r in report.reasons)
    assert report.self_reported.cpu_model == "Fake"
