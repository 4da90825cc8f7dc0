"""From gossiped capability records to placement candidates (``protocol.messages.ledger.CandidateWire``).

Everything here is soft state and self-reported, except two things this node observed itself:
whether the peer is connected now (only live peers are candidates), and since when it has seen
it up (``vouched_since``, which caps the uptime a peer may claim in its summary).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from daemon.attest.report import AttestationReport
from daemon.attest.service import MAX_AGE_S
from protocol.attestation import AttestationLevel
from protocol.errors import RemoteProtocolError
from protocol.identity import public_key_from_node_id
from protocol.messages.capability import CapabilityAnnounce
from protocol.messages.ledger import MAX_CANDIDATES, CandidateWire

CONNECTED_LINK_MS = 20
"""A connected peer on a direct stream; inputs are small (most travel inline)."""


def attestation_level(report: Any, subject: str, trusted: Collection[bytes], now: float) -> AttestationLevel:
    """Only levels that trusted verifiers (the current committee members) signed for this node
    recently count; a node's own claim is never enough."""
    if not isinstance(report, dict) or not report.get("verified_by"):
        return AttestationLevel.NONE
    try:
        parsed = AttestationReport.from_wire(report)
    except RemoteProtocolError:
        return AttestationLevel.NONE
    return parsed.attested_level(subject=public_key_from_node_id(subject),
                                 trusted_verifiers=trusted, now=now, max_age=MAX_AGE_S)


def to_candidates(records: Iterable[CapabilityAnnounce], live: set[str],
                  vouched: dict[str, float], trusted: Collection[bytes] = (),
                  now: float = 0.0) -> tuple[CandidateWire, ...]:
    out = []
    for r in records:
        if r.node_id not in live or not r.slots or "wasm32-wasi" not in r.runtimes:
            continue
        since = vouched.get(r.node_id)
        out.append(CandidateWire(
            node_id=r.node_id, availability=r.availability, cores=r.slots,
            memory_mib=r.memory_mb, runtimes=tuple(r.runtimes)[:8],
            attestation=int(attestation_level(r.attestation, r.node_id, trusted, now)),
            load_permille=r.load,
            link_ms=CONNECTED_LINK_MS, domain=r.domain,
            vouched_since_s=int(since) if since else 0))
    out.sort(key=lambda c: (c.load_permille, c.node_id))
    return tuple(out[:MAX_CANDIDATES])
