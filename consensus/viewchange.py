"""View changes: checking VIEW-CHANGE messages and computing the NEW-VIEW's batches.

A view change for view v carries the sender's stable checkpoint (with its proof) and, for every
sequence number above it, its highest-view prepared certificate: a quorum of prepare votes on
(view, seq, digest), 64 bytes a vote. The new primary collects a quorum of them and derives the
batches of view v deterministically (``new_view_set``):

- ``min_s`` = the highest stable checkpoint among them, ``max_s`` = the highest prepared
  sequence number;
- every seq in (min_s, max_s] gets the digest of the highest-view prepared certificate that
  names it, or the null batch if none does.

Backups recompute the same set from the view changes the NEW-VIEW names and accept it only if
it matches, so a faulty new primary cannot slip in anything else. Since any two quorums share a
correct replica, a batch that committed in an earlier view is prepared in at least one view
change of every quorum, with the highest view, and survives.

Sizes: nothing here carries a request. A view change is at most the checkpoint proof plus
``window`` certificates of q votes; a new view names its q view changes by SHA-256 and lists
(seq, digest, vote) per re-proposed batch. A backup that lacks a named view change fetches it
(``ViewChangeFetch``); one that lacks a re-proposed batch fetches its body (``BatchFetch``)
before executing it. So neither grows with what clients sent (``consensus.sizes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from typing import Any

from consensus import persist
from consensus.actions import Broadcast, Persist, Send, ViewEntered
from consensus.checkpoint import InvalidProof, Stable, check_checkpoint_proof
from consensus.config import ReplicaConfig
from consensus.log import NULL_DIGEST
from consensus.quorum import check_votes, prepare_bytes
from consensus.replica_base import Cert, CheckedViewChange, ReplicaBase
from protocol.envelope import Envelope
from protocol.messages.pbft import (
    NewView, NewViewBatch, PreparedCert, ViewChange, ViewChangeFetch,
)

MAX_KEPT_PER_SENDER = 3
"""Checked view changes kept per sender (by digest, for new views that name them)."""


def envelope_digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def check_prepared(cfg: ReplicaConfig, cert: PreparedCert, verifier,  # type: ignore[no-untyped-def]
                   below_view: int, low: int) -> tuple[int, Cert]:
    """Check one prepared certificate for a view below ``below_view`` and a seq in
    (low, low + window]; return (seq, cert)."""
    if cert.view >= below_view:
        raise InvalidProof("prepared certificate from a view not below the new one")
    if not low < cert.seq <= low + cfg.window:
        raise InvalidProof("prepared certificate outside the watermarks")
    data = prepare_bytes(cfg.shard, cfg.epoch, cert.view, cert.seq, cert.digest)
    problem = check_votes(cert.signers, cert.signatures, data, cfg.committee,
                          verifier.verify_vote)
    if problem:
        raise InvalidProof(f"prepared certificate: {problem}")
    return cert.seq, Cert(cert.view, cert.digest)


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
    for pc in vc.prepared:
        seq, cert = check_prepared(cfg, pc, verifier, vc.new_view, vc.stable_seq)
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
    batches: tuple[tuple[int, bytes], ...]
    """(seq, digest) for every seq in (min_s, max_s]."""


def new_view_set(vcs: Sequence[CheckedViewChange]) -> NewViewPlan:
    best = max(vcs, key=lambda c: (c.stable_seq, c.sender))
    min_s = best.stable_seq
    max_s = max([s for c in vcs for s in c.certs] + [min_s])
    batches = []
    for seq in range(min_s + 1, max_s + 1):
        cands = [c.certs[seq] for c in vcs if seq in c.certs]
        if cands:
            top = max(cands, key=lambda c: (c.view, c.digest))
            batches.append((seq, top.digest))
        else:
            batches.append((seq, NULL_DIGEST))
    return NewViewPlan(min_s, best.stable_digest, best.proof, tuple(batches))


class ViewChanges(ReplicaBase):
    """The view-change protocol as a mixin of ``consensus.replica.Replica``: suspecting the
    primary, the f+1 join rule, the new primary's NEW-VIEW, and entering the new view."""

    def _start_view_change(self, view: int, why: str = "") -> None:
        """``why``: its cause for the operator, ``kind: detail`` (``view_change_causes``)."""
        if view <= self.view:
            return
        kind = why.split(":")[0] or "other"
        self.view_change_causes[kind] = self.view_change_causes.get(kind, 0) + 1
        self.last_view_change = f"view {view}: {why or kind}"
        self.view, self.view_changing = view, True
        self.view_changes_in_a_row += 1
        self.nv_wait_since = None
        self.nv_pending = None
        self.inflight.clear()
        self._persist_view()
        prepared = tuple(s.prepared_cert for seq, s in sorted(self.log.slots.items())
                         if s.prepared_cert is not None)
        st = self.stable
        vc = ViewChange(self.cfg.shard, self.cfg.epoch, view, st.seq, st.digest, st.proof,
                        prepared)
        self.my_vc = self._broadcast(vc)
        self.vc_sent_at = self.now
        self.vc_resend_wait = 0.0
        self.vc_fetch_wait = 0.0
        certs = {c.seq: Cert(c.view, c.digest) for c in prepared}  # ours need no re-checking
        mine = CheckedViewChange(self.me, view, st.seq, st.digest, st.proof, certs, self.my_vc)
        self.vcs[self.me] = mine
        self._keep_view_change(mine)
        self._after_view_change_input()

    def _keep_view_change(self, c: CheckedViewChange) -> None:
        """Remember a checked view change by digest (a new view may name it)."""
        kept = self.vc_kept
        kept[envelope_digest(c.raw)] = c
        mine = [d for d, k in kept.items() if k.sender == c.sender]
        if len(mine) > MAX_KEPT_PER_SENDER:
            for d in sorted(mine, key=lambda d: kept[d].view)[: len(mine) - MAX_KEPT_PER_SENDER]:
                del kept[d]

    def _on_view_change(self, sender: int, m: ViewChange, env: Envelope) -> None:
        if m.new_view < self.view or (m.new_view == self.view and not self.view_changing):
            return
        raw = env.to_bytes()
        d = envelope_digest(raw)
        c = self.vc_kept.get(d)
        if c is None:
            c = check_view_change(self.cfg, env, self.verifier, self.genesis_digest)
            self._keep_view_change(c)
        old = self.vcs.get(sender)
        if old is None or old.view < c.view:
            self.vcs[sender] = c
            self._after_view_change_input()
        if self.nv_pending is not None and self.view_changing:
            pending, self.nv_pending = self.nv_pending, None
            self._on_new_view(self.cfg.primary(pending.body.view), pending.body, pending)

    def _after_view_change_input(self) -> None:
        later = sorted(c.view for i, c in self.vcs.items() if c.view > self.view)
        if len(later) >= self.cfg.f + 1:
            self._start_view_change(later[0], f"joined: {len(later)} members asked for later views")
            return
        if not self.view_changing:
            return
        # The new-view timer starts once a quorum has left the old view: a replica asking
        # for a later view has left it too (each sender's latest view change is kept, so
        # counting only exact matches could leave replicas one view apart waiting forever).
        if len(self._left_old_view() | {self.me}) < self.cfg.quorum:
            return
        if self.nv_wait_since is None:
            self.nv_wait_since = self.now
        quorum = [c for c in self.vcs.values() if c.view == self.view]
        if self.is_primary and len(quorum) >= self.cfg.quorum:
            self._send_new_view(sorted(quorum, key=lambda c: c.sender)[: self.cfg.quorum])

    def _vc_resend_targets(self) -> list[int]:
        """Where our view change goes again (module docstring): the new primary, and members
        neither whose view change for this view or later nor whose status shows them past
        the old view has reached us."""
        left = self._left_old_view()
        return [i for i in range(self.cfg.n) if i != self.me and (
            i == self.primary or i not in left)]

    def _left_old_view(self) -> set[int]:
        """Members known to have left the view before ours: a view change of theirs for ours
        or later, or a recent status in ours or later."""
        since = self.now - 4 * self.resend_interval
        left = {i for i, c in self.vcs.items() if c.view >= self.view}
        left.update(i for i, (view, _, at) in self.peer_views.items()
                    if view >= self.view and at >= since)
        return left

    def _send_new_view(self, vcs: list[CheckedViewChange]) -> None:
        plan = new_view_set(vcs)
        sh, ep, v = self.cfg.shard, self.cfg.epoch, self.view
        votes = tuple(self.signer.sign_vote(prepare_bytes(sh, ep, v, seq, d))
                      for seq, d in plan.batches)
        nv = NewView(sh, ep, v, tuple(envelope_digest(c.raw) for c in vcs),
                     tuple(NewViewBatch(seq, d, vote)
                           for (seq, d), vote in zip(plan.batches, votes)))
        raw = self._seal(nv)
        vc_raws = tuple(c.raw for c in vcs)
        self._out.append(Persist(persist.NEWVIEW, persist.encode_newview(v, raw, vc_raws)))
        self._out.append(Broadcast(raw))
        self._enter_view(plan, votes, raw, vc_raws)

    def _on_new_view(self, sender: int, m: NewView, env: Envelope) -> None:
        if m.view < self.view or (m.view == self.view and not self.view_changing) or \
                sender != self.cfg.primary(m.view) or m.view == 0:
            return
        if len(set(m.view_changes)) < self.cfg.quorum:
            raise InvalidProof("new view names fewer than a quorum of view changes")
        missing = tuple(d for d in m.view_changes if d not in self.vc_kept)
        if missing:
            # Keep it until the named view changes arrive (ours may simply be late). Ask at
            # most once per status interval: every view change that arrives retries the new
            # view, and a fetch per arrival fed a storm when an answer did not help (a
            # Byzantine primary's far-future view changes push its real one out of
            # ``vc_kept``; Twins get every answer twice and ask twice).
            self.nv_pending = env
            if self.now - self.vc_fetch_at >= max(self.cfg.status_interval, self.vc_fetch_wait):
                self.vc_fetch_at = self.now
                self.vc_fetch_wait = min(2 * max(self.vc_fetch_wait, self.cfg.status_interval),
                                         self.cfg.max_view_change_timeout)
                self._send(sender, self._seal(ViewChangeFetch(self.cfg.shard, self.cfg.epoch,
                                                              m.view, missing)))
            return
        vcs: dict[int, CheckedViewChange] = {}
        for d in m.view_changes:
            c = self.vc_kept[d]
            if c.view != m.view:
                raise InvalidProof("new view names a view change for another view")
            vcs[c.sender] = c
        if len(vcs) < self.cfg.quorum:
            raise InvalidProof("new view names fewer than a quorum of view changes")
        plan = new_view_set(list(vcs.values()))
        if tuple(plan.batches) != tuple((b.seq, b.digest) for b in m.batches):
            raise InvalidProof("new view batches do not match its view changes")
        pk = self.cfg.committee[sender]
        for b in m.batches:
            data = prepare_bytes(self.cfg.shard, self.cfg.epoch, m.view, b.seq, b.digest)
            if not self.verifier.verify_vote(pk, data, b.vote):
                raise InvalidProof("a new view's prepare vote does not verify")
        if m.view > self.view:
            self.view = m.view
        raw = env.to_bytes()
        vc_raws = tuple(self.vc_kept[d].raw for d in m.view_changes)
        self._out.append(Persist(persist.NEWVIEW, persist.encode_newview(m.view, raw, vc_raws)))
        self._enter_view(plan, tuple(b.vote for b in m.batches), raw, vc_raws)

    def _on_view_change_fetch(self, sender: int, m: ViewChangeFetch, env: Envelope) -> None:
        """Send the asked-for view changes we hold (each its own, bounded, message)."""
        held = {envelope_digest(r): r for r in self.nv_vcs}
        for d in m.digests[: self.cfg.quorum]:
            c = self.vc_kept.get(d)
            raw = c.raw if c is not None else held.get(d)
            if raw is not None:
                self._out.append(Send(self.cfg.committee[sender], raw))

    def _enter_view(self, plan: Any, votes: tuple[bytes, ...], nv_raw: bytes,
                    vc_raws: tuple[bytes, ...]) -> None:
        self.next_seq = max(plan.batches[-1][0] if plan.batches else plan.min_s,
                            self.last_executed, self.log.low) + 1
        self._hold = True
        self.view_changing = False
        self.nv_raw, self.nv_vcs, self.nv_pending = nv_raw, vc_raws, None
        self.nv_wait_since = None
        self.progress_at = self.now if self.pending else None
        self.vcs = {i: c for i, c in self.vcs.items() if c.view > self.view}
        self.vc_kept = {d: c for d, c in self.vc_kept.items() if c.view > self.view}
        self._persist_view()
        self._out.append(ViewEntered(self.view, self.primary))
        if plan.min_s > self.stable.seq:
            self._adopt_stable(Stable(plan.min_s, plan.stable_digest, plan.stable_proof))
        for (seq, digest), vote in zip(plan.batches, votes):
            if not self.log.in_window(seq):
                continue
            s = self.log.slot(seq)
            requests = self._known_batch(s, digest)
            if s.requests and s.digest != digest:
                self._remember_displaced(s.digest, tuple(r.raw for r in s.requests))
            s.pp_view, s.digest, s.pp_raw, s.pp_vote = self.view, digest, b"", vote
            s.requests = requests
            self._persist_slot(s)
            if not self.is_primary:
                self._vote_prepare(s)
            self._check_prepared(s)
        self._hold = False
        self.next_seq = max(self.next_seq, self.log.low + 1)
        if self.is_primary:
            self.inflight = {(r.client, r.request_id) for s in self.log.slots.values()
                             if s.pp_view == self.view and s.requests for r in s.requests}
            self._propose()
        else:
            for r in self.pending.values():
                self._send(self.primary, r.raw)
