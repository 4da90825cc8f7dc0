"""Quorum certificates: 2f+1 commit votes that anyone can check offline with the committee list.

A commit message carries, besides its envelope signature, a *vote*: the sender's signature
(domain ``QUORUM_VOTE``) over the canonical bytes of ``(shard, epoch, view, seq, digest)``. A
certificate is those votes from a quorum of distinct members, stored compactly as a bitmap of
committee indices plus the signatures in index order (64 bytes per signer, no keys, no
envelopes). ``verify_qc`` needs only the epoch's committee list (public keys in committee order).

Why the view is in the vote: a commit certificate is only meaningful within one view. Votes
from different views for the same (seq, digest) do not prove that the batch committed: a batch
can be prepared (and commit-voted) by single correct replicas in two views without ever
committing, and be replaced by another batch in a later view; view-free votes from those
replicas plus f faulty ones would add up to a "certificate" for a batch that never committed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from consensus.committee import max_faulty
from consensus.crypto import Verifier
from protocol import domains
from protocol.canonical import packb
from protocol.errors import LocalProtocolError
from protocol.identity import verify_signature
from protocol.messages.pbft import QuorumCert

VoteCheck = Callable[[bytes, bytes, bytes], bool]
"""``check(public_key, data, signature)``: True iff ``signature`` is a valid vote on ``data``."""


def ed25519_vote_check(public_key: bytes, data: bytes, signature: bytes) -> bool:
    return verify_signature(public_key, domains.QUORUM_VOTE + data, signature)


def vote_bytes(shard: int, epoch: int, view: int, seq: int, digest: bytes) -> bytes:
    """What a commit vote signs (after the QUORUM_VOTE domain tag)."""
    return packb([shard, epoch, view, seq, digest], maps=False)


def prepare_bytes(shard: int, epoch: int, view: int, seq: int, digest: bytes) -> bytes:
    """What a prepare vote signs (after the QUORUM_VOTE domain tag). The leading tag keeps it
    apart from a commit vote's 5-array: a prepare vote can never count as a commit vote."""
    return packb(["prepare", shard, epoch, view, seq, digest], maps=False)


def quorum_size(n: int) -> int:
    """Smallest size whose any two quorums share f+1 members: ceil((n + f + 1) / 2), which is
    2f+1 when n = 3f+1."""
    return (n + max_faulty(n) + 2) // 2


def _bitmap(indices: Sequence[int], n: int) -> bytes:
    bits = bytearray((n + 7) // 8)
    for i in indices:
        bits[i // 8] |= 1 << (i % 8)
    return bytes(bits)


def bitmap(indices: Sequence[int], n: int) -> bytes:
    """The signer bitmap of committee ``indices`` (bit i of byte i // 8)."""
    return _bitmap(indices, n)


def check_votes(signers: bytes, signatures: Sequence[bytes], data: bytes,
                committee: Sequence[bytes], check: VoteCheck) -> str | None:
    """None if ``signatures`` are valid votes on ``data`` by a quorum of distinct members named
    by the ``signers`` bitmap; else why not."""
    n = len(committee)
    idx = signer_indices(signers, n)
    if idx is None:
        return "signer bitmap does not fit the committee"
    if len(idx) < quorum_size(n):
        return f"{len(idx)} signers, a quorum is {quorum_size(n)}"
    if len(idx) != len(signatures):
        return "signer bitmap and signatures disagree in number"
    for i, sig in zip(idx, signatures):
        if not check(committee[i], data, sig):
            return f"vote of committee member {i} does not verify"
    return None


def signer_indices(signers: bytes, n: int) -> list[int] | None:
    """Indices set in a bitmap, or None if it is the wrong length or names a non-member."""
    if len(signers) != (n + 7) // 8:
        return None
    out = [i for i in range(len(signers) * 8) if signers[i // 8] >> (i % 8) & 1]
    if out and out[-1] >= n:
        return None
    return out


def make_qc(shard: int, epoch: int, view: int, seq: int, digest: bytes,
            votes: Mapping[int, bytes], n: int) -> QuorumCert:
    """Build a certificate from ``votes`` (committee index -> vote signature), using the
    quorum-size lowest indices. The caller has checked the votes."""
    q = quorum_size(n)
    if len(votes) < q:
        raise LocalProtocolError(f"need {q} votes for a certificate, have {len(votes)}")
    chosen = sorted(votes)[:q]
    return QuorumCert(shard, epoch, view, seq, digest, _bitmap(chosen, n),
                      tuple(votes[i] for i in chosen))


def verify_qc(qc: QuorumCert, committee: Sequence[bytes],
              check: VoteCheck = ed25519_vote_check) -> str | None:
    """None if ``qc`` is valid for ``committee`` (public keys in committee order); else why not.
    Shard and epoch are inside the signed votes, so the caller must also make sure they are the
    ones it expects (``qc.shard``, ``qc.epoch``)."""
    data = vote_bytes(qc.shard, qc.epoch, qc.view, qc.seq, qc.digest)
    return check_votes(qc.signers, qc.signatures, data, committee, check)


def verifier_check(verifier: Verifier) -> VoteCheck:
    return verifier.verify_vote
