"""Attestation between nodes: committee members verify peers' evidence and sign what they found.

A node's capability record carries its attestation report; on its own, that report proves
nothing (a node cannot vouch for itself). So:

- *Prover* (every node): answers a verifier's challenge on ``/novacron/attest/1`` with fresh
  evidence bound to the verifier's nonce and the node key (``LocalAttester``), and adds the
  verifier's signed statement to its own report when it arrives on
  ``/novacron/attest-statement/1``, republishing its record.
- *Verifier* (committee members, who place tasks): challenges every peer whose record carries
  evidence and that it has not verified recently, checks the answer (``Verifier``: nonce once,
  key binding, signatures, the EK certificate against the configured CAs; a second round with
  a credential proves the AK and EK share one TPM), signs a ``VerifierStatement`` and sends it.

Placement believes only statements by the current epoch's members, newer than ``MAX_AGE_S``
(``daemon.softstate.candidates``). Nodes without evidence are never challenged: their level is
NONE, with the reasons in their report.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Protocol

import trio

from daemon.attest.collect import LocalAttester
from daemon.attest.evidence import Challenge, TpmEvidence, evidence_from_wire
from daemon.attest.report import AttestationReport
from daemon.attest.statement import VerifierStatement, sign_statement
from daemon.attest.verify import Verifier, VerifierConfig
from daemon.attest.wire import packb, unpackb
from daemon.p2p.host import P2PHost
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import NodeIdentity, public_key_from_node_id, short_node_id

log = logging.getLogger("novacron.attest")

CHALLENGE = "/novacron/attest/1"
STATEMENT = "/novacron/attest-statement/1"
MAX_AGE_S = 6 * 3600.0
"""How long a verifier's statement counts for placement."""
REVERIFY_S = 3600.0
LOOP_S = 30.0
MAX_ANSWER = 256 * 1024


class Registry(Protocol):
    """The soft state, as attestation sees it: records to verify; where our report goes."""

    def records(self) -> list[Any]: ...

    def on_attestation(self, report: AttestationReport) -> None: ...


class CommitteeRole(Protocol):
    def is_member(self) -> bool:
        """Committee members are the verifiers schedulers trust."""


class AttestationService:
    name = "attestation"

    def __init__(self, identity: NodeIdentity, host: P2PHost, attester: LocalAttester,
                 challenge_nonce: bytes, config: VerifierConfig, rng: random.Random) -> None:
        self.identity = identity
        self.host = host
        self.attester = attester
        self.initial_nonce = challenge_nonce
        self.verifier = Verifier(config)
        self.registry: Registry | None = None
        self.committees: CommitteeRole | None = None
        self.rng = rng
        self.report: AttestationReport | None = None
        self.verified: dict[str, tuple[float, str, str]] = {}
        """peer -> (when, level, first failed check or "") of our last verification."""
        self._tpm_keys: dict[str, tuple[bytes, bytes]] = {}
        self.answered = 0
        host.handle_request(CHALLENGE, self._answer)
        host.handle(STATEMENT, self._on_statement)

    def connect(self, registry: Registry, committees: CommitteeRole) -> None:
        """Start-up's second phase: whose records to verify, and when we are a verifier."""
        self.registry, self.committees = registry, committees

    def build_report(self) -> AttestationReport:
        """This machine's report (blocking: it may drive a TPM; call it in a thread)."""
        self.report = self.attester.report(Challenge(self.initial_nonce), self.identity.public_key)
        return self.report

    # -- prover -----------------------------------------------------------------------------------

    async def _answer(self, peer: str, frame: bytes) -> bytes:
        challenge = Challenge.from_wire(unpackb(frame, "challenge", 64 * 1024))
        answer = await trio.to_thread.run_sync(self.attester.answer, challenge,
                                               self.identity.public_key)
        self.answered += 1
        return packb({"evidence": None if answer.evidence is None else answer.evidence.to_wire(),
                      "reasons": list(answer.reasons)})

    async def _on_statement(self, peer: str, frame: bytes) -> None:
        st = VerifierStatement.from_wire(unpackb(frame, "statement", 16 * 1024))
        if st.subject != self.identity.public_key or st.verifier != public_key_from_node_id(peer) \
                or not st.is_valid():
            raise MalformedMessage("a verifier statement must be about us, by its sender, and signed")
        if self.report is not None:
            self.report = self.report.with_statement(st)
            if self.registry is not None:
                self.registry.on_attestation(self.report)
            log.info("%s verified this node: %s", peer, st.level.name)

    # -- verifier ---------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if self.committees is not None and self.committees.is_member():
                await self.verify_round()
            await trio.sleep(LOOP_S)

    async def verify_round(self) -> None:
        now = time.time()
        for record in self.registry.records() if self.registry is not None else ():
            peer = record.node_id
            att = record.attestation if isinstance(record.attestation, dict) else {}
            if peer == self.identity.node_id or att.get("kind", "none") == "none":
                continue
            last = self.verified.get(peer)
            if last is not None and now - last[0] < REVERIFY_S and last[1] != "TPM_UNENDORSED":
                continue
            try:
                await self.verify_peer(peer)
            except Exception as err:  # noqa: BLE001 - one peer's failure must not stop the round
                log.info("could not verify %s: %s", peer, err)
                self.verified[peer] = (now, "NONE", str(err)[:200])

    async def verify_peer(self, peer: str) -> VerifierStatement:
        """Challenge ``peer``, verify its answer, sign and send our statement (also returned)."""
        pk = public_key_from_node_id(peer)
        now = time.time()
        keys = self._tpm_keys.get(peer)
        challenge = self.verifier.challenge(self.rng, now, ek_public=keys[0] if keys else None,
                                            ak_public=keys[1] if keys else None)
        raw = await self.host.request(peer, CHALLENGE, packb(challenge.to_wire()), timeout=60.0)
        try:
            answer = unpackb(raw, "attestation answer", MAX_ANSWER)
            if not isinstance(answer, dict) or answer.get("evidence") is None:
                raise MalformedMessage(f"no evidence: {answer.get('reasons') if isinstance(answer, dict) else answer}")
            evidence = evidence_from_wire(answer["evidence"])
        except RemoteProtocolError:
            self.host.report_fault(peer, "attestation")
            raise
        result = self.verifier.verify(evidence, nonce=challenge.nonce, node_public_key=pk,
                                      now=time.time())
        if isinstance(evidence, TpmEvidence):  # next round: prove AK and EK share one TPM
            self._tpm_keys[peer] = (evidence.ek_public, evidence.ak_public)
        st = sign_statement(self.identity, pk, evidence, result, time.time())
        self.host.send(peer, STATEMENT, packb(st.to_wire()))
        failed = next((f"{c.name}: {c.detail}" for c in result.failed), "")
        self.verified[peer] = (time.time(), result.level.name, failed[:200])
        log.info("verified %s: %s", peer, result.level.name)
        return st

    def status(self) -> dict[str, Any]:
        kind = self.report.kind.value if self.report else "unknown"
        return {"health": "ok", "summary": f"kind {kind}, {len(self.verified)} peers verified",
                "kind": kind, "answered": self.answered,
                "verified": {short_node_id(p): {"level": v[1], "failed": v[2]} for p, v in self.verified.items()}}

    def register_rpc(self, server: Any) -> None:
        """No control methods: ``status`` reports it; ``novacron attest`` runs on its own."""
