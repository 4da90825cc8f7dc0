"""``novacron attest`` as a user runs it, on this machine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.attest.binding import tee_report_data
from daemon.attest.evidence import EvidenceBundle, TdxEvidence
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import build_tdx_quote, make_intel_pki, pem

DEVICES = ("/dev/tpmrm0", "/dev/tpm0", "/dev/sev-guest", "/dev/tdx_guest")
TSM = "/sys/kernel/config/tsm/report"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, timeout=120)


def machine_has_nothing() -> bool:
    return not any(os.path.exists(p) for p in DEVICES) and not os.path.isdir(TSM)


def expected_reasons() -> list[str]:
    """What the filesystem shows, worked out here independently of the detection code."""
    reasons = [f"{p}: no device node" for p in DEVICES if not os.path.exists(p)]
    with open("/proc/filesystems") as f:
        has_configfs = any(line.split()[-1:] == ["configfs"] for line in f)
    if not has_configfs:
        reasons.append(f"{TSM}: configfs not supported by this kernel")
    elif not os.path.ismount("/sys/kernel/config"):
        reasons.append(f"{TSM}: configfs not mounted")
    if os.path.exists("/.dockerenv"):
        reasons.append("running in a container (/.dockerenv exists")
    return reasons


def test_this_machine_reports_kind_none_with_the_true_reasons(tmp_path: Path) -> None:
    if not machine_has_nothing():
        pytest.skip("this machine has a TPM or TEE device; the kind-none report is for "
                    "machines without")
    res = run_cli("attest", "--data-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "kind: none" in lines and "evidence: none" in lines
    for reason in expected_reasons():
        assert any(reason in line for line in lines), f"{reason!r} missing from:\n{res.stdout}"
    assert "self-reported (claims, not attested):" in lines


def test_json_report(tmp_path: Path) -> None:
    if not machine_has_nothing():
        pytest.skip("this machine has a TPM or TEE device")
    res = run_cli("attest", "--data-dir", str(tmp_path), "--json", "--nonce", "00" * 32)
    report = json.loads(res.stdout)
    assert (report["kind"], report["evidence"], report["verified_by"]) == ("none", None, [])
    assert report["nonce"] == "00" * 32 and report["self_reported"]["label"] == "self-reported"
    assert any("/dev/tpmrm0: no device node" in r for r in report["reasons"])


def test_out_without_evidence_says_so(tmp_path: Path) -> None:
    if not machine_has_nothing():
        pytest.skip("this machine has a TPM or TEE device")
    res = run_cli("attest", "--data-dir", str(tmp_path), "--out", str(tmp_path / "e.bin"))
    assert res.returncode == 1 and "kind: none" in res.stdout
    assert res.stderr.splitlines()[-1] + "\n" == (f"novacron: nothing written to {tmp_path / 'e.bin'}: this machine has "
                          "no attestation evidence (kind none; the reasons are above)\n")
    assert not (tmp_path / "e.bin").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--nonce", "xyz"), "--nonce must be 64 hex digits, got 'xyz'"),
    (("--nonce", "abcd"), "--nonce must be 64 hex digits (32 bytes), got 2 bytes"),
    (("--verify", "/nonexistent/e.bin"), "evidence file /nonexistent/e.bin does not exist"),
    (("--verify", "/dev/zero"), "evidence file /dev/zero is a character device, not a regular file"),
    (("--require", "tpm"), "--require only makes sense with --verify FILE"),
])
def test_user_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    res = run_cli("attest", "--data-dir", str(tmp_path), *args)
    assert res.returncode == 2
    assert res.stderr == f"novacron: {message}\n"


def test_garbage_files_are_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x93\x01\x02")
    res = run_cli("attest", "--verify", str(junk))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"novacron: {junk} is not a NovaCron evidence bundle: ")


def tdx_bundle(tmp_path: Path) -> tuple[Path, Path, str]:
    node = NodeIdentity(hashlib.sha256(b"cli node").digest())
    pki = make_intel_pki()
    nonce = bytes(range(32))
    evidence = TdxEvidence(nonce, build_tdx_quote(tee_report_data(nonce, node.public_key), pki))
    bundle, root = tmp_path / "tdx.bin", tmp_path / "intel-root.pem"
    bundle.write_bytes(EvidenceBundle(node.public_key, evidence).encode())
    root.write_bytes(pem(pki.root))
    return bundle, root, node.node_id


def test_verify_a_tee_bundle(tmp_path: Path) -> None:
    bundle, root, node_id = tdx_bundle(tmp_path)
    res = run_cli("attest", "--verify", str(bundle), "--nonce", bytes(range(32)).hex(),
                  "--node-id", node_id, "--trusted-intel-root", str(root), "--require", "tee")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"{bundle}: tdx evidence of node {node_id}"
    assert "PASS      qe-signature: PCK key signs the QE report" in lines
    assert lines[-1] == "level: TEE"
    untrusted = run_cli("attest", "--verify", str(bundle), "--json")
    out = json.loads(untrusted.stdout)
    assert untrusted.returncode == 0 and out["level"] == "NONE" and out["ok"]
    assert {"name": "freshness", "status": "unchecked", "detail": "nonce taken from the file, so "
            "a replay would pass: give --nonce with the nonce you issued"} in out["checks"]


def test_bad_trust_inputs_are_one_line(tmp_path: Path) -> None:
    bundle, _, _ = tdx_bundle(tmp_path)
    pem_file = tmp_path / "ca.pem"
    pem_file.write_text("not a certificate\n")
    res = run_cli("attest", "--verify", str(bundle), "--trusted-ca", str(pem_file))
    assert res.returncode == 2
    assert res.stderr.startswith(f"novacron: trusted CA file {pem_file} holds no PEM certificate")
    assert res.stderr.count("\n") == 1
    res = run_cli("attest", "--verify", str(bundle), "--node-id", "12D3KooWnope")
    assert res.returncode == 2 and res.stderr.startswith("novacron: --node-id: ")
    assert res.stderr.count("\n") == 1
