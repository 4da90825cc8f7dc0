"""The verifier: evidence + the nonce it issued + the node's key + trust config -> a result.

Theory of operation. A verifier (any peer, usually a committee member) challenges a node with a
fresh nonce; the node answers with evidence bound to that nonce and its Ed25519 key; the
verifier checks it and concludes a level. ``Verifier`` is a sans-I/O state machine for that
exchange: it issues nonces (from the ``random.Random`` it is given; pass ``SystemRandom`` in
production), remembers each until it is answered or expires, and consumes it on the first
answer, so a second answer to the same nonce is a replay and an answer to a nonce it never
issued (or forgot) is refused. Time comes in as ``now`` (Unix seconds).

For a TPM whose attestation key the verifier already knows (from an earlier answer, or the
node's gossiped report), the challenge also carries a credential only that TPM can activate
(``tpm.credential``); the answer's recovered secret proves the AK and the endorsed EK share one
TPM, which the ``TPM`` level requires. So a first challenge to a new TPM node reaches at most
``TPM_UNENDORSED``; the next one, carrying a credential, can reach ``TPM``.

``verify_evidence`` is the stateless core (also used by ``novacron attest --verify FILE``,
where the nonce comes from the user and no credential was issued).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from daemon.attest.binding import NONCE_SIZE
from daemon.attest.binding_checks import short
from daemon.attest.evidence import (Challenge, Evidence, EvidenceKind, SnpEvidence, TdxEvidence,
                                    TpmEvidence)
from daemon.attest.result import VerificationResult, failed
from daemon.attest.sevsnp import snp_checks
from daemon.attest.tdx import tdx_checks
from daemon.attest.tpm.credential import SECRET_SIZE, make_credential
from daemon.attest.tpm.endorsement import IssuedCredential, endorsement_checks
from daemon.attest.tpm.quote import quote_checks
from daemon.attest.tpm.structures import parse_public
from daemon.attest.x509chain import load_pem_bundle
from protocol.attestation import AttestationLevel
from protocol.errors import MalformedMessage

TOP_LEVEL = {EvidenceKind.TPM2: AttestationLevel.TPM, EvidenceKind.SEV_SNP: AttestationLevel.TEE,
             EvidenceKind.TDX: AttestationLevel.TEE}


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """Whom the verifier trusts. Every list is empty by default: nothing is trusted until an
    operator configures it (in particular no software TPM's local CA)."""

    trusted_ek_cas: tuple[x509.Certificate, ...] = ()
    trusted_amd_roots: tuple[x509.Certificate, ...] = ()
    trusted_intel_roots: tuple[x509.Certificate, ...] = ()
    challenge_ttl: float = 300.0
    max_outstanding: int = 1024
    remembered_nonces: int = 4096


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.timezone.utc)


def verify_evidence(evidence: Evidence, *, nonce: bytes, node_public_key: bytes,
                    config: VerifierConfig, now: float,
                    issued_credential: IssuedCredential | None = None) -> VerificationResult:
    """Check ``evidence`` against the ``nonce`` the caller issued; never raises on bad evidence."""
    kind = evidence.kind
    top = TOP_LEVEL[kind]
    when = _utc(now)
    if isinstance(evidence, TpmEvidence):
        try:
            ak = parse_public(evidence.ak_public)
            ak.public_key()
        except MalformedMessage as err:
            return VerificationResult(kind.value, top, (failed("ak", f"attestation key "
                                                               f"unusable: {err}"),))
        checks = quote_checks(evidence, ak, nonce, node_public_key)
        checks += endorsement_checks(evidence, ak, config.trusted_ek_cas, when,
                                     issued_credential)
    elif isinstance(evidence, SnpEvidence):
        checks = snp_checks(evidence, nonce, node_public_key, config.trusted_amd_roots, when)
    elif isinstance(evidence, TdxEvidence):
        checks = tdx_checks(evidence, nonce, node_public_key, config.trusted_intel_roots, when)
    else:  # pragma: no cover - the Evidence union is closed
        raise TypeError(f"not evidence: {type(evidence).__name__}")
    return VerificationResult(kind.value, top, tuple(checks))


@dataclass(slots=True)
class _Outstanding:
    issued_at: float
    credential: IssuedCredential | None


@dataclass(slots=True)
class Verifier:
    """Issues challenges and verifies answers, each nonce once (see the module docstring)."""

    config: VerifierConfig = field(default_factory=VerifierConfig)
    _outstanding: OrderedDict[bytes, _Outstanding] = field(default_factory=OrderedDict,
                                                           init=False, repr=False)
    _consumed: OrderedDict[bytes, float] = field(default_factory=OrderedDict, init=False,
                                                 repr=False)

    def challenge(self, rng: random.Random, now: float, *, ek_public: bytes | None = None,
                  ak_public: bytes | None = None) -> Challenge:
        """A fresh challenge; with the node's EK and AK public areas it carries a credential.

        Raises ``MalformedMessage`` when the given EK or AK cannot be used (e.g. an ECC EK).
        """
        nonce = rng.randbytes(NONCE_SIZE)
        credential = issued = None
        if ek_public is not None and ak_public is not None:
            ek, ak = parse_public(ek_public), parse_public(ak_public)
            secret = rng.randbytes(SECRET_SIZE)
            credential = make_credential(ek, ak.name, secret, rng)
            issued = IssuedCredential(ek.name, ak.name, secret)
        self._outstanding[nonce] = _Outstanding(now, issued)
        while len(self._outstanding) > self.config.max_outstanding:
            self._outstanding.popitem(last=False)
        return Challenge(nonce, credential)

    def verify(self, evidence: Evidence, *, nonce: bytes, node_public_key: bytes,
               now: float) -> VerificationResult:
        """Verify the answer to the challenge with ``nonce`` (the one this verifier sent to this
        node, not the one the evidence claims). The nonce is consumed either way."""
        kind, top = evidence.kind.value, TOP_LEVEL[evidence.kind]
        if nonce in self._consumed:
            return VerificationResult(kind, top, (failed(
                "nonce", f"nonce {short(nonce)} was already answered: a replayed answer"),))
        pending = self._outstanding.pop(nonce, None)
        if pending is None:
            return VerificationResult(kind, top, (failed(
                "nonce", f"nonce {short(nonce)} was not issued by this verifier (or its "
                "challenge was forgotten)"),))
        self._consumed[nonce] = now
        while len(self._consumed) > self.config.remembered_nonces:
            self._consumed.popitem(last=False)
        age = now - pending.issued_at
        if age > self.config.challenge_ttl:
            return VerificationResult(kind, top, (failed(
                "nonce", f"challenge expired: answered after {age:.0f} s, the limit is "
                f"{self.config.challenge_ttl:.0f} s"),))
        return verify_evidence(evidence, nonce=nonce, node_public_key=node_public_key,
                               config=self.config, now=now,
                               issued_credential=pending.credential)

    def outstanding(self) -> int:
        return len(self._outstanding)


def load_trusted_certificates(pems: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    """Certificates from PEM files' contents (a file may hold several); ``ValueError`` if not."""
    certs: list[x509.Certificate] = []
    for pem in pems:
        certs += load_pem_bundle(pem)
    return tuple(certs)
