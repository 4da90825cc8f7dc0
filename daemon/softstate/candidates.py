"""From gossiped capability records to placement candidates (``protocol.messages.ledger.CandidateWire``).

A candidate's link cost (``link_ms``) is ``CONNECTED_LINK_MS``, or, for a job's placement,
the predicted time to send the job's typical output to its submitter (``with_link_costs``).

Everything here is soft state and self-reported, except two things this node observed itself:
whether the peer is connected now (only live peers are candidates), and since when it has seen
it up (``vouched_since``, which caps the uptime a peer may claim in its summary).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from daemon.attest.report import AttestationReport
from daemon.attest.service import MAX_AGE_S
from daemon.links.estimate import DEFAULT_BANDWIDTH, DEFAULT_RTT
from daemon.links.summary import PredictedLink
from protocol.attestation import AttestationLevel
from protocol.errors import RemoteProtocolError
from protocol.identity import public_key_from_node_id
from protocol.messages.capability import CapabilityAnnounce
from protocol.messages.ledger import MAX_CANDIDATES, CandidateWire

CONNECTED_LINK_MS = 20
"""A connected peer on a direct stream; inputs are small (most travel inline). Also the least
link cost a predicted link is given (``with_link_costs``)."""
MAX_LINK_MS = 600_000


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


def with_link_costs(candidates: Iterable[CandidateWire], predicted: Mapping[str, PredictedLink],
                    nbytes: int, toward: str | None = None) -> tuple[CandidateWire, ...]:
    """Each candidate's link cost toward a job's submitter: the predicted time to send it
    ``nbytes`` (the job's typical output) over the link the soft state predicts, planned on the
    conservative throughput; a candidate nobody measured is planned on the link table's prior
    (1 MB/s, 100 ms), not as a free link; never below ``CONNECTED_LINK_MS``. Placement adds it
    to the task's wall time (``daemon.sched``), so among peers alike in availability and load
    one with a good link to the submitter comes first, and a large output weighs the link
    more. The submitter itself (``toward``) sends nothing over a link."""
    out = []
    for c in candidates:
        if c.node_id == toward:
            out.append(replace(c, link_ms=CONNECTED_LINK_MS))
            continue
        p = predicted.get(c.node_id)
        rtt, low = (p.rtt_s, p.low) if p is not None else (DEFAULT_RTT, DEFAULT_BANDWIDTH)
        ms = 1000 * (rtt + max(0, nbytes) / low)
        out.append(replace(c, link_ms=int(min(max(CONNECTED_LINK_MS, ms), MAX_LINK_MS))))
    return tuple(out)
