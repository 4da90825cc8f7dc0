"""How a replica that fell behind gets back (a mixin of ``consensus.replica.Replica``).

- Stable checkpoints: a quorum of signed checkpoints (collected, or received as a proof)
  moves the low watermark; a replica that has the state keeps it, one that is behind fetches
  it (``consensus.statetransfer``) from the members who signed it.
- Catch-up inside the window: while work is pending, replicas send ``Status``; peers answer
  with ``CommitProof``s (a batch and its quorum certificate: executable without having seen the
  three phases), the stable checkpoint's proof, the current view's ``NewView``, or the
  pre-prepares and votes of batches still in flight.
"""

from __future__ import annotations

from consensus import persist
from consensus.actions import EpochEnded, Persist, Send, StateInstalled
from consensus.checkpoint import Diverged, InvalidProof, Stable, check_checkpoint_proof
from consensus.log import batch_digest
from consensus.quorum import verify_qc
from consensus.replica_base import ReplicaBase
from consensus.statetransfer import StateFetch, fetch_order, serve_chunk
from protocol.envelope import Envelope
from protocol.messages.pbft import (
    Checkpoint, CommitProof, StableCheckpoint, StateChunk, StateRequest, Status,
)


ANSWER_BYTES = 256 * 1024
"""Commit proofs and batches one status answer carries at most (one always): a proof carries
its whole batch, up to 16 requests of 48 KiB, and eight of them from every member at once
buried a peer on a home line under 150 MB in three minutes."""
STUCK_PACES = 2.0
"""A peer whose view and execution stood still this many of the committee's paces (smoothed
time per execution), and at least two status intervals, is stuck: every member answers it,
with commit proofs of batches just executed too, and backs off while it stays so."""


class Recovery(ReplicaBase):
    """Checkpoint adoption, state transfer and catch-up, on the attributes ``Replica`` sets."""

    def _on_checkpoint(self, sender: int, m: Checkpoint, env: Envelope) -> None:
        self._add_checkpoint_vote(sender, m.seq, m.state_digest, env.to_bytes())

    def _add_checkpoint_vote(self, sender: int, seq: int, digest: bytes, raw: bytes) -> None:
        stable = self.ckpt.add_vote(sender, seq, digest, raw)
        if stable is not None:
            self._adopt_stable(stable)

    def _on_stable_checkpoint(self, sender: int, m: StableCheckpoint, env: Envelope) -> None:
        if m.seq <= self.stable.seq:
            return
        check_checkpoint_proof(self.cfg, m.seq, m.state_digest, m.proof, self.verifier,
                               self.genesis_digest)
        self._adopt_stable(Stable(m.seq, m.state_digest, m.proof))

    def _adopt_stable(self, st: Stable) -> None:
        if st.seq <= self.stable.seq:
            return
        own = self.ckpt.own.get(st.seq)
        if own is not None and own[0] != st.digest:
            raise Diverged(f"replica {self.me}: its state at {st.seq} differs from the stable "
                           "checkpoint")
        snap = self.ckpt.snapshot_for(st.seq, st.digest)
        if snap is None and st.seq <= self.last_executed:
            raise Diverged(f"replica {self.me} executed past {st.seq} without keeping its "
                           "checkpoint")
        behind = st.seq > self.last_executed
        self.ckpt.make_stable(st, snap)
        for seq in self.log.truncate(st.seq):
            self._out.append(Persist(persist.slot_key(seq), None))
        if self.next_seq <= st.seq:
            self.next_seq = st.seq + 1
        if snap is not None and behind:
            self._install(snap)  # a snapshot with that content is here already
        elif snap is not None:
            self._out.append(Persist(persist.STABLE, persist.encode_stable(st, snap)))
            self._stable_reached(st)
        else:
            sources = fetch_order(self._signers(st.proof), self.signer.public_key,
                                  self.cfg.committee[self.primary], self.me)
            self.fetch = StateFetch(self.cfg.shard, self.cfg.epoch, st.seq, st.digest, sources,
                                    2 * self.cfg.status_interval, self.cfg.max_state_bytes)
            self._poll_fetch()
        self._execute_ready()

    def _install(self, snap: bytes) -> None:
        """Make the stable checkpoint's snapshot the current state (state transfer's end)."""
        st = self.stable
        self.fetch = None
        self.service.restore(snap)
        self.ckpt.stable_snapshot = snap
        self.last_executed = st.seq
        if self.service.ended and self.end_seq is None:
            self.end_seq = st.seq
        self.pending = {k: r for k, r in self.pending.items()
                        if r.end_epoch or not self.service.is_done(r)}
        self._out.append(Persist(persist.STABLE, persist.encode_stable(st, snap)))
        self._out.append(StateInstalled(st.seq, st.digest))
        self._stable_reached(st)
        self._execute_ready()

    def _stable_reached(self, st: Stable) -> None:
        if self.end_seq is not None and st.seq >= self.end_seq and not self.end_reported:
            self.end_reported = True
            self._out.append(EpochEnded(st.seq, st.digest, st.proof))

    def _signers(self, proof: tuple[bytes, ...]) -> list[bytes]:
        return [self.verifier.open(raw).sender for raw in proof]

    # -- state transfer -------------------------------------------------------------------------

    def _poll_fetch(self) -> None:
        if self.fetch is not None:
            req = self.fetch.poll(self.now)
            if req is not None:
                self._out.append(Send(req[0], self._seal(req[1])))

    def _on_state_request(self, requester: bytes, m: StateRequest) -> None:
        snap = self.ckpt.snapshot_for(m.seq, m.state_digest)
        if snap is None:
            if self.stable.seq > m.seq:
                self._out.append(Send(requester, self._seal(self._stable_msg())))
            return
        self._out.append(Send(requester, self._seal(serve_chunk(self.cfg.shard, self.cfg.epoch, m.seq,
                                                  m.state_digest, snap, m.offset,
                                                  self.cfg.chunk_size))))

    def _on_state_chunk(self, sender: int, m: StateChunk, env: Envelope) -> None:
        if self.fetch is None:
            return
        snap, nxt = self.fetch.on_chunk(env.sender, m, self.now)
        if nxt is not None:
            self._out.append(Send(nxt[0], self._seal(nxt[1])))
        if snap is None:
            return
        self._install(snap)

    def _stable_msg(self) -> StableCheckpoint:
        st = self.stable
        return StableCheckpoint(self.cfg.shard, self.cfg.epoch, st.seq, st.digest, st.proof)

    # -- catch-up -------------------------------------------------------------------------------

    def _has_work(self) -> bool:
        if self.pending or self.fetch is not None:
            return True
        # Pre-prepares of older views that the new view did not take over are not work: the
        # new primary reuses their sequence numbers, and their requests are still pending.
        return any((s.pp_view == self.view and not s.committed) or
                   (s.committed and s.seq > self.last_executed)
                   for s in self.log.slots.values())

    def _on_status(self, sender: int, m: Status, env: Envelope) -> None:
        self.peer_views[sender] = (m.view, m.view_changing, self.now)
        if self.view_changing and m.view >= self.view and self.nv_wait_since is None:
            self._after_view_change_input()  # it left the old view: the new-view timer may start
        if m.view_changing and m.view > self.view and not self.view_changing and \
                self.now - self._status_answered.get(sender, -1e18) >= self.cfg.status_interval:
            # It asks for a view we did not join: say where we are (at most once per status
            # interval), so it can tell it was left behind from a committee that stopped.
            self._status_answered[sender] = self.now
            self._send(sender, self._seal(Status(self.cfg.shard, self.cfg.epoch, self.view,
                                                 False, self.stable.seq, self.last_executed)))
        answer, stuck = self._status_answer_due(sender, m.view, m.last_executed)
        if not answer:
            return
        if (m.view < self.view or (m.view == self.view and m.view_changing)) and \
                not self.view_changing and self.nv_raw is not None:
            self._send(sender, self.nv_raw)
        if m.last_executed < self.stable.seq and self.stable.seq > 0:
            self._send(sender, self._seal(self._stable_msg()))
        settled = self.now - self.cfg.status_interval
        # A peer merely behind (still executing) gets commit proofs from the f+1 members
        # after it in ring order (one is correct); one that stood still, from every member.
        proofs = stuck or 0 < (self.me - sender) % self.cfg.n <= self.cfg.f + 1
        sent = size = 0
        for seq in range(max(m.last_executed, self.log.low) + 1, self.log.high + 1):
            if sent >= 2 * self.cfg.max_inflight or size >= ANSWER_BYTES:
                break
            s = self.log.get(seq)
            if s is None:
                continue
            if s.committed and seq <= self.last_executed and s.requests is not None:
                if not proofs or (s.executed_at is not None and s.executed_at > settled
                                  and not stuck):
                    continue  # its commits are on their way to the peer as they were to us
                qc = self._qc(s)
                if qc is not None:
                    raws = tuple(r.raw for r in s.requests)
                    proof = self._seal(CommitProof(self.cfg.shard, self.cfg.epoch, raws, qc))
                    self._send(sender, proof)
                    sent, size = sent + 1, size + len(proof)
            elif m.view == self.view and not m.view_changing and \
                    not self.view_changing and s.pp_view == self.view:
                # What the peer's own votes show it has, it is not sent again: its prepare
                # means it has the pre-prepare, its commit that it prepared. A vote on
                # another digest means the primary sent it another batch: ours goes to it
                # (the two signed pre-prepares are the evidence that blames the primary).
                p_vote = s.prepares.get(self.view, {}).get(sender)
                c_vote = s.commits.get(self.view, {}).get(sender)
                theirs_p = p_vote is not None and p_vote.digest == s.digest
                theirs_c = c_vote is not None and c_vote.digest == s.digest
                if s.pp_raw and not (theirs_p or theirs_c or sender == self.primary):
                    # by reference if we can (it has the requests, or asks for the batch);
                    # (a new view's batches have no pre-prepare: the peer has that new view)
                    self._send(sender, s.pp_refs or s.pp_raw)
                    size += len(s.pp_refs or s.pp_raw)
                for votes, have in ((s.prepares, theirs_c), (s.commits, False)):
                    mine = votes.get(self.view, {}).get(self.me)
                    if mine is not None and not have:
                        self._send(sender, mine.raw)
                sent += 1

    def _status_answer_due(self, sender: int, view: int, last_executed: int) -> tuple[bool, bool]:
        """Whether to answer this status now (a NEW-VIEW, the stable checkpoint, commit proofs,
        in-flight batches and votes), and whether the peer is stuck (no progress in view or
        execution since its last status we saw).

        Every member answered every status it got, so a member behind got each commit proof
        or retransmission from all of them, every status interval: in a 19-member committee
        on sub-Mbit lines these answers filled the uplinks. So a member answers one peer at
        most every two status intervals while the peer progresses, and backs off, doubling,
        while it does not (what we send it does not help, or does not arrive).

        Then, with answers rate-limited, every member still sent every other its whole
        in-flight pre-prepares every two intervals (a peer executing a moment later than us
        looks behind): 0.9 MB of pre-prepares and as much of commit proofs per member in
        three minutes of a 30-daemon WAN testnet. So: an in-flight pre-prepare goes only to
        a peer whose prepare or commit on it we have not seen; commit proofs only of batches
        executed a status interval ago, or to a stuck peer (one whose view and execution
        stood still for two status intervals or ``STUCK_PACES`` of the committee's pace,
        whichever is longer), and to a peer that still executes only from the f+1 members
        after it in ring order: a member on a slow line, behind but progressing, got 256 KiB
        from each of 18 members every second. (Answering every status only from those f+1
        at first slowed recovery after a partition in the consensus simulation from under
        1 s to 4-6 s: those f+1 were often behind too; a peer that stood still hears from
        all.)"""
        now, base = self.now, 2 * self.cfg.status_interval
        progress = (view, last_executed)
        last, since, due, wait = self._status_peers.get(sender, ((-1, -1), now, now, base))
        if last < progress:
            since, wait = now, base
        stuck = now - since >= max(base, STUCK_PACES * (self.pace or 0.0))
        answer = now >= due
        if answer:
            due = now + wait
            if stuck:
                wait = min(2 * wait, self.cfg.max_view_change_timeout)
        self._status_peers[sender] = (progress, since, due, wait)
        return answer, stuck

    def _on_commit_proof(self, sender: int, m: CommitProof, env: Envelope) -> None:
        qc = m.qc
        if (qc.shard, qc.epoch) != (self.cfg.shard, self.cfg.epoch) or \
                qc.seq <= self.last_executed or not self.log.in_window(qc.seq):
            return
        s = self.log.slot(qc.seq)
        if s.committed and (s.requests is not None or s.digest != qc.digest):
            return
        if batch_digest(m.requests) != qc.digest:
            raise InvalidProof("commit proof batch does not match its certificate")
        problem = verify_qc(qc, self.cfg.committee, self.verifier.verify_vote)
        if problem:
            raise InvalidProof(f"commit proof certificate: {problem}")
        s.requests = self._decode_batch(m.requests)
        if s.pp_raw and s.digest != qc.digest:  # an equivocating primary's other batch
            s.pp_view, s.pp_raw = -1, b""
        s.digest = qc.digest
        s.committed, s.committed_view = True, qc.view
        idx = [i for i in range(self.cfg.n) if qc.signers[i // 8] >> (i % 8) & 1]
        s.qc_votes, s.qc_checked = dict(zip(idx, qc.signatures)), True
        self._persist_slot(s)
        self._execute_ready()
