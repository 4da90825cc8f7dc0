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

from typing import Any

from consensus import persist
from consensus.actions import Broadcast, Persist, ViewEntered
from consensus.checkpoint import InvalidProof, Stable, check_checkpoint_proof
from consensus.config import ReplicaConfig
from consensus.log import NULL_DIGEST, batch_digest
from protocol.envelope import Envelope
from protocol.messages.pbft import NewView, PrePrepare, Prepare, PreparedProof, ViewChange


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


class ViewChanges:
    """The view-change protocol as a mixin of ``consensus.replica.Replica``: suspecting the
    primary, the f+1 join rule, the new primary's NEW-VIEW, and entering the new view."""

    def _start_view_change(self, view: int) -> None:
        if view <= self.view:
            return
        self.view, self.view_changing = view, True
        self.view_changes_in_a_row += 1
        self.nv_wait_since = None
        self.inflight.clear()
        self._persist_view()
        prepared = tuple(PreparedProof(s.prepared_proof[1], s.prepared_proof[2])
                         for seq, s in sorted(self.log.slots.items()) if s.prepared_proof)
        st = self.stable
        vc = ViewChange(self.cfg.shard, self.cfg.epoch, view, st.seq, st.digest, st.proof,
                        prepared)
        self.my_vc = self._broadcast(vc)
        self.vc_sent_at = self.now
        certs = {}
        for seq, s in self.log.slots.items():  # our own certificates need no re-checking
            if s.prepared_proof:
                reqs = self.verifier.open(s.prepared_proof[1]).body.requests
                certs[seq] = Cert(s.prepared_view, s.prepared_proof[0], reqs)
        self.vcs[self.me] = CheckedViewChange(self.me, view, st.seq, st.digest, st.proof, certs,
                                              self.my_vc)
        self._after_view_change_input()

    def _on_view_change(self, sender: int, m: ViewChange, env: Envelope) -> None:
        old = self.vcs.get(sender)
        if m.new_view < self.view or (old is not None and old.view >= m.new_view):
            return
        if m.new_view == self.view and not self.view_changing:
            return
        self.vcs[sender] = check_view_change(self.cfg, env, self.verifier, self.genesis_digest)
        self._after_view_change_input()

    def _after_view_change_input(self) -> None:
        later = sorted(c.view for i, c in self.vcs.items() if c.view > self.view)
        if len(later) >= self.cfg.f + 1:
            self._start_view_change(later[0])
            return
        if not self.view_changing:
            return
        # The new-view timer starts once a quorum has left the old view: a replica asking
        # for a later view has left it too (each sender's latest view change is kept, so
        # counting only exact matches could leave replicas one view apart waiting forever).
        if sum(1 for c in self.vcs.values() if c.view >= self.view) < self.cfg.quorum:
            return
        if self.nv_wait_since is None:
            self.nv_wait_since = self.now
        quorum = [c for c in self.vcs.values() if c.view == self.view]
        if self.is_primary and len(quorum) >= self.cfg.quorum:
            self._send_new_view(sorted(quorum, key=lambda c: c.sender)[: self.cfg.quorum])

    def _send_new_view(self, vcs: list[CheckedViewChange]) -> None:
        plan = new_view_set(vcs)
        pps = tuple(self._seal(PrePrepare(self.cfg.shard, self.cfg.epoch, self.view, seq, d,
                                          reqs)) for seq, d, reqs in plan.batches)
        raw = self._seal(NewView(self.cfg.shard, self.cfg.epoch, self.view,
                                 tuple(c.raw for c in vcs), pps))
        self._out.append(Persist(persist.NEWVIEW, persist.encode_newview(self.view, raw)))
        self._out.append(Broadcast(raw))
        self._enter_view(plan, pps, raw)

    def _on_new_view(self, sender: int, m: NewView, env: Envelope) -> None:
        if m.view < self.view or (m.view == self.view and not self.view_changing) or \
                sender != self.cfg.primary(m.view) or m.view == 0:
            return
        vcs: dict[int, CheckedViewChange] = {}
        for raw in m.view_changes:
            c = check_view_change(self.cfg, self.verifier.open(raw), self.verifier,
                                  self.genesis_digest)
            if c.view != m.view:
                raise InvalidProof("new view holds a view change for another view")
            vcs[c.sender] = c
        if len(vcs) < self.cfg.quorum:
            raise InvalidProof("new view holds fewer than a quorum of view changes")
        plan = new_view_set(list(vcs.values()))
        if len(plan.batches) != len(m.preprepares):
            raise InvalidProof("new view pre-prepares do not match its view changes")
        for (seq, d, reqs), raw in zip(plan.batches, m.preprepares):
            p_env = self.verifier.open(raw)
            pp = p_env.body
            if p_env.sender != env.sender or not isinstance(pp, PrePrepare) or \
                    (pp.shard, pp.epoch, pp.view, pp.seq, pp.digest, pp.requests) != \
                    (self.cfg.shard, self.cfg.epoch, m.view, seq, d, reqs):
                raise InvalidProof("new view pre-prepares do not match its view changes")
        if m.view > self.view:
            self.view = m.view
        self._enter_view(plan, m.preprepares, env.to_bytes())

    def _enter_view(self, plan: Any, pps: tuple[bytes, ...], nv_raw: bytes) -> None:
        self.next_seq = max(plan.batches[-1][0] if plan.batches else plan.min_s,
                            self.last_executed, self.log.low) + 1
        self._hold = True
        self.view_changing = False
        self.nv_raw = nv_raw
        self.nv_wait_since = None
        self.progress_at = self.now if self.pending else None
        self.vcs = {i: c for i, c in self.vcs.items() if c.view > self.view}
        self._persist_view()
        self._out.append(ViewEntered(self.view, self.primary))
        if plan.min_s > self.stable.seq:
            self._adopt_stable(Stable(plan.min_s, plan.stable_digest, plan.stable_proof))
        for (seq, digest, reqs), raw in zip(plan.batches, pps):
            if not self.log.in_window(seq):
                continue
            s = self.log.slot(seq)
            requests = self._decode_batch(reqs)
            s.pp_view, s.digest, s.pp_raw, s.requests = self.view, digest, raw, requests
            self._persist_slot(s)
            if not self.is_primary:
                self._vote_prepare(s)
            self._check_prepared(s)
        self._hold = False
        self.next_seq = max(self.next_seq, self.log.low + 1)
        if self.is_primary:
            self.inflight = {(r.client, r.request_id) for s in self.log.slots.values()
                             if s.pp_view == self.view for r in s.requests}
            self._propose()
        else:
            for r in self.pending.values():
                self._send(self.primary, r.raw)
