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
from consensus.statetransfer import StateFetch, serve_chunk
from protocol.envelope import Envelope
from protocol.messages.pbft import (
    Checkpoint, CommitProof, StableCheckpoint, StateChunk, StateRequest, Status,
)


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
            sources = [pk for pk in self._signers(st.proof) if pk != self.signer.public_key]
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
        if m.view_changing and m.view > self.view and not self.view_changing and \
                self.now - self._status_answered.get(sender, -1e18) >= self.cfg.status_interval:
            # It asks for a view we did not join: say where we are (at most once per status
            # interval), so it can tell it was left behind from a committee that stopped.
            self._status_answered[sender] = self.now
            self._send(sender, self._seal(Status(self.cfg.shard, self.cfg.epoch, self.view,
                                                 False, self.stable.seq, self.last_executed)))
        if (m.view < self.view or (m.view == self.view and m.view_changing)) and \
                not self.view_changing and self.nv_raw is not None:
            self._send(sender, self.nv_raw)
        if m.last_executed < self.stable.seq and self.stable.seq > 0:
            self._send(sender, self._seal(self._stable_msg()))
        if not self._status_answer_due(sender, m.last_executed):
            return
        sent = 0
        for seq in range(max(m.last_executed, self.log.low) + 1, self.log.high + 1):
            if sent >= 2 * self.cfg.max_inflight:
                break
            s = self.log.get(seq)
            if s is None:
                continue
            if s.committed and seq <= self.last_executed and s.requests is not None:
                qc = self._qc(s)
                if qc is not None:
                    raws = tuple(r.raw for r in s.requests)
                    self._send(sender, self._seal(CommitProof(self.cfg.shard, self.cfg.epoch,
                                                              raws, qc)))
                    sent += 1
            elif m.view == self.view and not m.view_changing and not self.view_changing \
                    and s.pp_view == self.view:
                if s.pp_raw:  # (a new view's batches: the peer has that new view)
                    self._send(sender, s.pp_raw)
                for votes in (s.prepares, s.commits):
                    mine = votes.get(self.view, {}).get(self.me)
                    if mine is not None:
                        self._send(sender, mine.raw)
                sent += 1

    def _status_answer_due(self, sender: int, last_executed: int) -> bool:
        """Whether to answer this status (commit proofs, in-flight batches and votes) now.
        Every member answered every status it got, so a member behind got each commit proof
        or retransmission from all of them, every status interval: in a 19-member committee
        on sub-Mbit lines these answers filled the uplinks. So a member answers one peer at
        most every two status intervals while the peer progresses, and backs off, doubling,
        while it does not (what we send it does not help, or does not arrive)."""
        now, base = self.now, 2 * self.cfg.status_interval
        last, due, wait = self._status_peers.get(sender, (-1, now, base))
        stuck = last >= last_executed
        if not stuck:
            wait = base
        answer = now >= due
        if answer:
            due = now + wait
            if stuck:
                wait = min(2 * wait, self.cfg.max_view_change_timeout)
        self._status_peers[sender] = (last_executed, due, wait)
        return answer

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
