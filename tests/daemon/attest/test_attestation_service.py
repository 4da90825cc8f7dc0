"""Nodes verify each other over real libp2p streams against a real software TPM: the verifier's
signed statement reaches the prover's report, and placement believes it only from a trusted
verifier."""

from __future__ import annotations

import random
import time

import trio

from daemon.attest.collect import LocalAttester
from daemon.attest.service import AttestationService
from daemon.attest.verify import VerifierConfig, load_trusted_certificates
from daemon.p2p import P2PConfig, P2PHost
from daemon.softstate.candidates import attestation_level
from protocol.attestation import AttestationLevel
from protocol.identity import NodeIdentity


def make(seed: int, tmp, attester, config, on_report):
    ident = NodeIdentity(random.Random(seed).randbytes(32))
    host = P2PHost(ident, P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",)), random.Random(seed))
    svc = AttestationService(ident, host, attester, b"\x01" * 32, config, rng=random.Random(seed))
    svc.connect(Registry(on_report), NotAMember())
    return ident, host, svc


class Registry:
    """The soft state's side of ``attest.service.Registry``: no records; reports to a test."""

    def __init__(self, on_report) -> None:
        self.on_attestation = on_report

    def records(self) -> list:
        return []


class NotAMember:
    def is_member(self) -> bool:
        return False


async def test_verifier_statement_reaches_the_prover_and_counts_only_if_trusted(tmp_path, swtpm):
    reports = []
    report_sent, report_seen = trio.open_memory_channel(8)

    def on_report(report):
        reports.append(report)
        report_sent.send_nowait(report)

    cas = load_trusted_certificates([swtpm.local_ca.read_bytes(), swtpm.root_ca.read_bytes()])
    prover_id, prover_host, prover = make(1, tmp_path, LocalAttester(tmp_path / "p", tcti=swtpm.tcti),
                                          VerifierConfig(), on_report)
    verifier_id, verifier_host, verifier = make(2, tmp_path, LocalAttester(tmp_path / "v"),
                                                VerifierConfig(trusted_ek_cas=cas), lambda report: None)
    report = await trio.to_thread.run_sync(prover.build_report)
    assert report.kind.value == "tpm2" and not report.verified_by
    connected = trio.Event()
    verifier_host.on_peer(lambda peer: peer == prover_id.node_id and connected.set(), lambda peer: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(prover_host.run)
        await nursery.start(verifier_host.run)
        verifier_host.add_peer(prover_host.listen_addrs()[0])
        with trio.fail_after(20):
            await connected.wait()
        with trio.fail_after(60):
            first = await verifier.verify_peer(prover_id.node_id)
            await report_seen.receive()  # the statement reached the prover's report
        # First round: the quote verifies; AK-EK binding needs the credential round.
        assert first.level is AttestationLevel.TPM_UNENDORSED
        with trio.fail_after(60):
            second = await verifier.verify_peer(prover_id.node_id)
            await report_seen.receive()
        assert second.level is AttestationLevel.TPM  # the CA is trusted, the credential activated
        nursery.cancel_scope.cancel()
    wire = reports[-1].to_wire()
    trusted = {verifier_id.public_key}
    assert attestation_level(wire, prover_id.node_id, trusted, time.time()) is AttestationLevel.TPM
    assert attestation_level(wire, prover_id.node_id, set(), time.time()) is AttestationLevel.NONE
    stale = time.time() + 7 * 3600
    assert attestation_level(wire, prover_id.node_id, trusted, stale) is AttestationLevel.NONE
