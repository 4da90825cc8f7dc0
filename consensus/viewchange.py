"""View changes: checking VIEW-CHANGE messages and computing the NEW-VIEW's pre-prepares.

A view change for view v carries the sender's stable checkpoint (with its proof) and, for every
sequence number above it, its highest-view prepared certificate. The new primary collects a
quorum of them and derives the pre-prepares of view v deterministically (``new_view_set``):

- ``min_s`` = the highest stable checkpoint among them, ``max_s`` = the highest prepared
  sequence number;
- every seq in (min_s, max_s] gets the batch of the highest-view prepared certificate that
  names it, or the null batch if none does.

Backups recompute the same set from the view changes inside the NEW-VIEW and accept it only if
it matches, so a faulty new primary cannot slip in anything else. Since any two quorums share a
correct replica, a batch that committed in an earlier view is prepared in at least one view
change of every quorum, with the highest view, and survives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.checkpoint import InvalidProof, check_checkpoint_proof
from consensus.config import ReplicaConfig
from consensus.log import NULL_DIGEST, batch_digest
from protocol.envelope import Envelope
from protocol.messages.pbft import PrePrepare, Prepare, ViewChange


@dataclass(frozen=True, slots=True)
class Cert:
    """One prepared certificate, checked."""

    view: int
    digest: bytes
    requests: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class CheckedViewChange:
    sender: int
    view: int
    stable_seq: int
    stable_digest: bytes
    proof: tuple[bytes, ...]
    certs: dict[int, Cert]
    raw: bytes


def check_prepared(cfg: ReplicaConfig, pp_raw: bytes, prepares: Sequence[bytes], verifier,  # type: ignore[no-untyped-def]
                   below_view: int, low: int) -> tuple[int, Cert]:
    """Check one prepared certificate for a view below ``below_view`` and a seq in
    (low, low + window]; return (seq, cert)."""
    env = verifier.open(pp_raw)
    pp = env.body
    if not isinstance(pp, PrePrepare) or (pp.shard, pp.epoch) != (cfg.shard, cfg.epoch):
        raise InvalidProof("prepared certificate without a pre-prepare of this committee")
    if pp.view >= below_view or cfg.index_of(env.sender) != cfg.primary(pp.view):
        raise InvalidProof("pre-prepare from the wrong view or not from its primary")
    if not low < pp.seq <= low + cfg.window:
        raise InvalidProof("prepared certificate outside the watermarks")
    if batch_digest(pp.requests) != pp.digest:
        raise InvalidProof("pre-prepare digest does not match its batch")
    backups = set()
    for raw in prepares:
        p_env = verifier.open(raw)
        p = p_env.body
        idx = cfg.index_of(p_env.sender)
        if not isinstance(p, Prepare) or idx is None or idx == cfg.primary(pp.view) or \
                (p.shard, p.epoch, p.view, p.seq, p.digest) != (pp.shard, pp.epoch, pp.view,
                                                                 pp.seq, pp.digest):
            raise InvalidProof("a prepare in a prepared certificate does not match")
        backups.add(idx)
    if len(backups) < cfg.quorum - 1:
        raise InvalidProof(f"prepared certificate has {len(backups)} prepares, "
                           f"need {cfg.quorum - 1}")
    return pp.seq, Cert(pp.view, pp.digest, pp.requests)


def check_view_change(cfg: ReplicaConfig, env: Envelope, verifier, genesis_digest: bytes  # type: ignore[no-untyped-def]
                      ) -> CheckedViewChange:
    """Check a VIEW-CHANGE envelope completely; raise ``InvalidProof`` (or another
    ``RemoteProtocolError``) if anything in it does not hold."""
    vc = env.body
    idx = cfg.index_of(env.sender)
    if not isinstance(vc, ViewChange) or idx is None or (vc.shard, vc.epoch) != (cfg.shard,
                                                                              cfg.epoch):
        raise InvalidProof("not a view change from a member of this committee")
    if vc.new_view == 0:
        raise InvalidProof("view 0 needs no view change")
    check_checkpoint_proof(cfg, vc.stable_seq, vc.stable_digest, vc.checkpoint_proof, verifier,
                           genesis_digest)
    certs: dict[int, Cert] = {}
    for pp in vc.prepared:
        seq, cert = check_prepared(cfg, pp.preprepare, pp.prepares, verifier, vc.new_view,
                                   vc.stable_seq)
        if seq in certs:
            raise InvalidProof("two prepared certificates for one sequence number")
        certs[seq] = cert
    return CheckedViewChange(idx, vc.new_view, vc.stable_seq, vc.stable_digest,
                             vc.checkpoint_proof, certs, env.to_bytes())


@dataclass(frozen=True, slots=True)
class NewViewPlan:
    min_s: int
    stable_digest: bytes
    stable_proof: tuple[bytes, ...]
    batches: tuple[tuple[int, bytes, tuple[bytes, ...]], ...]
    """(seq, digest, requests) for every seq in (min_s, max_s]."""


def new_view_set(vcs: Sequence[CheckedViewChange]) -> NewViewPlan:
    best = max(vcs, key=lambda c: (c.stable_seq, c.sender))
    min_s = best.stable_seq
    max_s = max([s for c in vcs for s in c.certs] + [min_s])
    batches = []
    for seq in range(min_s + 1, max_s + 1):
        cands = [c.certs[seq] for c in vcs if seq in c.certs]
        if cands:
            top = max(cands, key=lambda c: (c.view, c.digest))
            batches.append((seq, top.digest, top.requests))
        else:
            batches.append((seq, NULL_DIGEST, ()))
    return NewViewPlan(min_s, best.stable_digest, best.proof, tuple(batches))
