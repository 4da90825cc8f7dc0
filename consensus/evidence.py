"""Evidence of Byzantine behaviour that a third party can check offline.

Two forms:

- ``Equivocation``: two signed envelopes from one key for the same phase, shard, epoch, view and
  sequence number with different digests (an equivocating primary's two pre-prepares, a double
  prepare, a double commit). A replica builds it when the second message arrives.
- ``VoteConflict``: two quorum votes from one committee member for the same (shard, epoch, view,
  seq) with different digests. ``conflicting_qcs`` derives these from two certificates that
  disagree: any two quorums intersect in at least f+1 members, so if two certificates for one
  slot name different batches, every member in the intersection signed both, and at least f+1
  of them are named - this is how a safety violation (which needs f+1 faulty replicas) is
  traced to its culprits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.quorum import VoteCheck, ed25519_vote_check, signer_indices, vote_bytes
from protocol.errors import RemoteProtocolError
from protocol.messages.pbft import Commit, PrePrepare, Prepare, QuorumCert

_PHASES = (PrePrepare, Prepare, Commit)


@dataclass(frozen=True, slots=True)
class Equivocation:
    offender: bytes
    first: bytes
    second: bytes
    """Both signed envelopes, as received."""


@dataclass(frozen=True, slots=True)
class VoteConflict:
    offender: bytes
    shard: int
    epoch: int
    view: int
    seq: int
    digest_a: bytes
    vote_a: bytes
    digest_b: bytes
    vote_b: bytes


def check_equivocation(ev: Equivocation, verifier) -> str | None:  # type: ignore[no-untyped-def]
    """None if ``ev`` proves that ``ev.offender`` equivocated; else why it does not."""
    try:
        a = verifier.open(ev.first)
        b = verifier.open(ev.second)
    except RemoteProtocolError as err:
        return f"an envelope does not verify: {err}"
    if a.sender != ev.offender or b.sender != ev.offender:
        return "the envelopes are not both signed by the offender"
    ma, mb = a.body, b.body
    if type(ma) is not type(mb) or not isinstance(ma, _PHASES):
        return "not two messages of the same phase"
    if (ma.shard, ma.epoch, ma.view, ma.seq) != (mb.shard, mb.epoch, mb.view, mb.seq):
        return "the messages are for different slots"
    if ma.digest == mb.digest:
        return "the messages agree"
    return None


def check_vote_conflict(ev: VoteConflict, public_key: bytes,
                        check: VoteCheck = ed25519_vote_check) -> str | None:
    """None if ``ev`` proves that the member with ``public_key`` voted for two batches."""
    if ev.digest_a == ev.digest_b:
        return "the votes agree"
    for digest, vote in ((ev.digest_a, ev.vote_a), (ev.digest_b, ev.vote_b)):
        if not check(public_key, vote_bytes(ev.shard, ev.epoch, ev.view, ev.seq, digest), vote):
            return "a vote does not verify"
    return None


def conflicting_qcs(a: QuorumCert, b: QuorumCert, committee: Sequence[bytes],
                    check: VoteCheck = ed25519_vote_check) -> list[VoteConflict]:
    """Members who signed both of two certificates for one slot with different digests.
    Empty if the certificates agree, are for different slots, or (different views) cannot be
    compared this way."""
    if (a.shard, a.epoch, a.view, a.seq) != (b.shard, b.epoch, b.view, b.seq) \
            or a.digest == b.digest:
        return []
    n = len(committee)
    ia, ib = signer_indices(a.signers, n), signer_indices(b.signers, n)
    if ia is None or ib is None:
        return []
    va, vb = dict(zip(ia, a.signatures)), dict(zip(ib, b.signatures))
    out = []
    for i in sorted(set(va) & set(vb)):
        ev = VoteConflict(committee[i], a.shard, a.epoch, a.view, a.seq, a.digest, va[i],
                          b.digest, vb[i])
        if check_vote_conflict(ev, committee[i], check) is None:
            out.append(ev)
    return out
