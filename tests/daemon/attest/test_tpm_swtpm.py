"""TPM attestation end to end against a real software TPM (swtpm) driven by tpm2-tools.

Each test plays both sides: the node (``TpmDriver`` answering a challenge) and the verifier
(``Verifier`` issuing the challenge and checking the answer), and asserts the level and the
reasons a user would read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.attest.collect import LocalAttester
from daemon.attest.evidence import Challenge, EvidenceBundle, TpmEvidence
from daemon.attest.result import Status, VerificationResult
from daemon.attest.tpm.driver import TpmDriver, TpmError
from daemon.attest.verify import (Verifier, VerifierConfig, load_trusted_certificates,
                                  verify_evidence)
from protocol.attestation import AttestationLevel
from protocol.identity import NodeIdentity
from tests.daemon.attest.attest_fixtures import build_event_log
from tests.daemon.attest.conftest import SoftwareTpm

NOW = 1_800_000_000.0
NODE = NodeIdentity(hashlib.sha256(b"node").digest())
OTHER = NodeIdentity(hashlib.sha256(b"other").digest())
SEED = 6


def check(result: VerificationResult, name: str) -> tuple[Status, str]:
    found = [c for c in result.checks if c.name == name]
    assert found, f"no {name!r} check in {result.lines()}"
    return found[0].status, found[0].detail


def trusting(pem: Path) -> VerifierConfig:
    return VerifierConfig(trusted_ek_cas=load_trusted_certificates([pem.read_bytes()]))


@pytest.fixture
def driver(swtpm: SoftwareTpm, tmp_path: Path) -> TpmDriver:
    return TpmDriver(swtpm.tcti, tmp_path / "tpm", event_log_path=None)


def enrol(driver: TpmDriver, verifier: Verifier, rng: random.Random) -> TpmEvidence:
    """A first round without a credential: how a verifier learns the node's EK and AK."""
    first = verifier.challenge(rng, NOW)
    evidence = driver.attest(first.nonce, NODE.public_key).evidence
    result = verifier.verify(evidence, nonce=first.nonce, node_public_key=NODE.public_key, now=NOW)
    assert result.ok, result.lines()
    assert check(result, "ak-ek-binding")[0] is Status.UNCHECKED
    return evidence


def test_empty_ca_list_leaves_a_valid_quote_unendorsed(driver: TpmDriver) -> None:
    rng = random.Random(SEED)
    verifier = Verifier()
    known = enrol(driver, verifier, rng)
    challenge = verifier.challenge(rng, NOW, ek_public=known.ek_public, ak_public=known.ak_public)
    evidence = driver.attest(challenge.nonce, NODE.public_key, challenge.credential).evidence
    result = verifier.verify(evidence, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW + 1)
    for name in ("ak", "structure", "signature", "nonce", "node-key", "pcr-digest", "ek",
                 "signer-parent", "ek-certificate", "ak-ek-binding"):
        assert check(result, name)[0] is Status.PASS, result.lines()
    assert result.level is AttestationLevel.TPM_UNENDORSED
    assert ("ek-chain: EK certificate not chained to a trusted CA (none configured)"
            in result.reasons())


def test_trusting_swtpms_local_ca_gives_tpm_level(driver: TpmDriver, swtpm: SoftwareTpm) -> None:
    rng = random.Random(SEED)
    verifier = Verifier(trusting(swtpm.local_ca))
    known = enrol(driver, verifier, rng)
    challenge = verifier.challenge(rng, NOW, ek_public=known.ek_public, ak_public=known.ak_public)
    assert challenge.credential is not None
    evidence = driver.attest(challenge.nonce, NODE.public_key, challenge.credential).evidence
    result = verifier.verify(evidence, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW + 1)
    assert result.level is AttestationLevel.TPM, result.lines()
    assert check(result, "ek-chain") == (Status.PASS, "chains to a trusted CA: CN=unknown -> "
                                                      "CN=swtpm-localca")
    assert "activated a credential" in check(result, "ak-ek-binding")[1]


def test_without_activation_even_a_trusted_ek_stays_unendorsed(driver: TpmDriver,
                                                               swtpm: SoftwareTpm) -> None:
    verifier = Verifier(trusting(swtpm.local_ca))
    challenge = verifier.challenge(random.Random(SEED), NOW)
    evidence = driver.attest(challenge.nonce, NODE.public_key).evidence
    result = verifier.verify(evidence, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW)
    assert check(result, "ek-chain")[0] is Status.PASS
    assert result.level is AttestationLevel.TPM_UNENDORSED
    assert any(r.startswith("ak-ek-binding: AK not proven to live in the EK's TPM")
               for r in result.reasons())


def test_root_without_intermediate_is_not_a_chain(driver: TpmDriver, swtpm: SoftwareTpm) -> None:
    result_of = Verifier(trusting(swtpm.root_ca))
    challenge = result_of.challenge(random.Random(SEED), NOW)
    evidence = driver.attest(challenge.nonce, NODE.public_key).evidence
    result = result_of.verify(evidence, nonce=challenge.nonce, node_public_key=NODE.public_key,
                              now=NOW)
    status, detail = check(result, "ek-chain")
    assert status is Status.FAIL
    assert "issued by 'CN=swtpm-localca', which is not among the 1 trusted CA(s)" in detail
    assert result.level is AttestationLevel.TPM_UNENDORSED


def test_replayed_quote_is_rejected_for_a_fresh_nonce_and_for_a_used_one(
        driver: TpmDriver) -> None:
    rng = random.Random(SEED)
    verifier = Verifier()
    a = verifier.challenge(rng, NOW)
    evidence_a = driver.attest(a.nonce, NODE.public_key).evidence
    assert verifier.verify(evidence_a, nonce=a.nonce, node_public_key=NODE.public_key,
                           now=NOW).ok
    b = verifier.challenge(rng, NOW + 5)
    replayed = verifier.verify(evidence_a, nonce=b.nonce, node_public_key=NODE.public_key,
                               now=NOW + 6)
    assert replayed.level is AttestationLevel.NONE
    status, detail = check(replayed, "nonce")
    assert status is Status.FAIL
    assert detail == (f"made for nonce {a.nonce[:8].hex()}…, not for the issued nonce "
                      f"{b.nonce[:8].hex()}…: a replayed or stale answer")
    again = verifier.verify(evidence_a, nonce=a.nonce, node_public_key=NODE.public_key,
                            now=NOW + 7)
    assert again.level is AttestationLevel.NONE
    assert check(again, "nonce") == (Status.FAIL, f"nonce {a.nonce[:8].hex()}… was already "
                                                  "answered: a replayed answer")


def test_quote_for_another_node_key_is_rejected(driver: TpmDriver) -> None:
    verifier = Verifier()
    challenge = verifier.challenge(random.Random(SEED), NOW)
    evidence = driver.attest(challenge.nonce, NODE.public_key).evidence
    result = verifier.verify(evidence, nonce=challenge.nonce, node_public_key=OTHER.public_key,
                             now=NOW)
    assert result.level is AttestationLevel.NONE
    status, detail = check(result, "node-key")
    assert status is Status.FAIL
    assert detail.startswith(f"qualifying data does not bind the key of {OTHER.node_id}")
    assert check(result, "signature")[0] is Status.PASS  # the quote itself is genuine


def test_tampered_pcr_value_breaks_the_digest(driver: TpmDriver) -> None:
    verifier = Verifier()
    challenge = verifier.challenge(random.Random(SEED), NOW)
    evidence = driver.attest(challenge.nonce, NODE.public_key).evidence
    pcrs = list(evidence.pcrs)
    index, value = pcrs[7]
    pcrs[7] = (index, bytes([value[0] ^ 1]) + value[1:])
    tampered = dataclasses.replace(evidence, pcrs=tuple(pcrs))
    result = verifier.verify(tampered, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW)
    assert result.level is AttestationLevel.NONE
    assert check(result, "pcr-digest") == (
        Status.FAIL, "the 24 sha256 PCR values sent do not hash to the quoted pcrDigest: a PCR "
                     "value was altered")


def test_wrong_activated_secret_is_a_lie(driver: TpmDriver) -> None:
    rng = random.Random(SEED)
    verifier = Verifier()
    known = enrol(driver, verifier, rng)
    challenge = verifier.challenge(rng, NOW, ek_public=known.ek_public, ak_public=known.ak_public)
    evidence = driver.attest(challenge.nonce, NODE.public_key, challenge.credential).evidence
    assert evidence.activated_secret is not None
    forged = dataclasses.replace(evidence, activated_secret=bytes(32))
    result = verifier.verify(forged, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW)
    assert result.level is AttestationLevel.NONE
    assert check(result, "ak-ek-binding") == (
        Status.FAIL, "the activated secret is wrong: this AK and EK are not in one TPM")


def test_event_log_replays_to_the_quoted_pcrs(swtpm: SoftwareTpm, tmp_path: Path) -> None:
    """swtpm has no firmware, so the test measures into resettable PCRs 16 and 23 itself and
    records the events in a crypto-agile log, as firmware would."""
    swtpm.tool("tpm2_pcrreset", "16")
    swtpm.tool("tpm2_pcrreset", "23")
    events = []
    for pcr, text in ((16, b"kernel"), (23, b"initrd"), (16, b"command line")):
        d = hashlib.sha256(text).digest()
        swtpm.tool("tpm2_pcrextend", f"{pcr}:sha256={d.hex()}")
        events.append((pcr, 0x0D, d, text))  # EV_IPL
    log_path = tmp_path / "binary_bios_measurements"
    log_path.write_bytes(build_event_log(events))
    driver = TpmDriver(swtpm.tcti, tmp_path / "tpm", event_log_path=log_path)
    verifier = Verifier()
    challenge = verifier.challenge(random.Random(SEED), NOW)
    evidence = driver.attest(challenge.nonce, NODE.public_key).evidence
    result = verifier.verify(evidence, nonce=challenge.nonce, node_public_key=NODE.public_key,
                             now=NOW)
    assert check(result, "event-log") == (Status.PASS,
                                          "3 events replay to the quoted PCRs 16, 23")
    # The same quote with one measurement swapped in the log: the log no longer explains it.
    evil = (23, 0x0D, hashlib.sha256(b"evil").digest(), b"initrd")
    forged_log = build_event_log([events[0], evil, events[2]])
    again = verifier.challenge(random.Random(SEED + 1), NOW)
    evidence = driver.attest(again.nonce, NODE.public_key).evidence
    result = verifier.verify(dataclasses.replace(evidence, event_log=forged_log),
                             nonce=again.nonce, node_public_key=NODE.public_key, now=NOW)
    assert check(result, "event-log")[0] is Status.FAIL
    assert "quoted value of PCR 23" in check(result, "event-log")[1]
    assert result.level is AttestationLevel.NONE


def test_unreachable_tpm_is_a_clear_reason(tmp_path: Path) -> None:
    attester = LocalAttester(tmp_path, tcti="swtpm:host=127.0.0.1,port=9", event_log_path=None)
    report = attester.report(Challenge(bytes(32)), NODE.public_key)
    assert report.kind.value == "none"
    tpm_reasons = [r for r in report.reasons if r.startswith("TPM 2.0 at swtpm:host=127.0.0.1")]
    assert tpm_reasons and "failed" in tpm_reasons[0]
    with pytest.raises(TpmError, match="failed"):
        TpmDriver("swtpm:host=127.0.0.1,port=9", tmp_path / "t", timeout=20).attest(
            bytes(32), NODE.public_key)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_writes_and_verifies_an_evidence_bundle(swtpm: SoftwareTpm, tmp_path: Path) -> None:
    nonce = "ab" * 32
    bundle = tmp_path / "evidence.bin"
    made = run_cli("attest", "--data-dir", str(tmp_path / "node"), "--tcti", swtpm.tcti,
                   "--nonce", nonce, "--out", str(bundle))
    assert made.returncode == 0, made.stderr
    assert "kind: tpm2" in made.stdout
    node_id = made.stdout.split()[4]
    assert node_id.startswith("12D3KooW")
    assert EvidenceBundle.decode(bundle.read_bytes()).evidence.nonce == bytes.fromhex(nonce)

    ok = run_cli("attest", "--verify", str(bundle), "--nonce", nonce, "--node-id", node_id,
                 "--trusted-ca", str(swtpm.local_ca))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert "PASS      ek-chain: chains to a trusted CA: CN=unknown -> CN=swtpm-localca" in lines
    assert any(ln.startswith("UNCHECKED ak-ek-binding: AK not proven") for ln in lines)
    assert lines[-1] == "level: TPM_UNENDORSED"

    need_tpm = run_cli("attest", "--verify", str(bundle), "--nonce", nonce, "--node-id", node_id,
                       "--trusted-ca", str(swtpm.local_ca), "--require", "tpm")
    assert need_tpm.returncode == 1 and need_tpm.stdout.splitlines()[-1] == "level: TPM_UNENDORSED"

    wrong = run_cli("attest", "--verify", str(bundle), "--nonce", "cd" * 32, "--node-id", node_id)
    assert wrong.returncode == 1
    assert any(ln.startswith("FAIL      nonce: made for nonce abababababababab…")
               for ln in wrong.stdout.splitlines())
    other = run_cli("attest", "--verify", str(bundle), "--nonce", nonce, "--node-id",
                    OTHER.node_id)
    assert other.returncode == 1
    assert f"FAIL      node-key: qualifying data does not bind the key of {OTHER.node_id}" in \
        other.stdout


def test_any_corruption_of_a_real_quote_gives_a_result_never_a_crash(driver: TpmDriver,
                                                                     swtpm: SoftwareTpm) -> None:
    """Seeded mutations of genuine evidence: every field a peer controls, checked purely."""
    nonce = bytes(range(32))
    genuine = driver.attest(nonce, NODE.public_key).evidence
    rng = random.Random(SEED)
    fields = ("attest", "signature", "ak_public", "ek_public", "ek_certificate")
    config = trusting(swtpm.local_ca)
    for i in range(300):
        name = fields[i % len(fields)]
        raw = bytearray(getattr(genuine, name))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        cut = len(raw) if rng.random() < 0.7 else rng.randrange(len(raw) + 1)
        mutated = dataclasses.replace(genuine, **{name: bytes(raw[:cut])})
        result = verify_evidence(mutated, nonce=nonce, node_public_key=NODE.public_key,
                                 config=config, now=NOW)
        changed = getattr(mutated, name) != getattr(genuine, name)
        if changed and name in ("attest", "signature"):  # signed, or the signature itself
            assert result.level is AttestationLevel.NONE, (i, name, result.lines())
        # Without a credential nothing reaches TPM; an altered AK or EK is caught by its name
        # (signer-parent, ek-certificate) or by the signature.
        assert result.level <= AttestationLevel.TPM_UNENDORSED, (i, name)
        if changed:
            assert not result.ok, (i, name, result.lines())
