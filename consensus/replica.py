"""The PBFT replica: a pure state machine, ``receive(envelope) -> actions``, ``tick(now) -> actions``.

Theory of operation
-------------------
Castro and Liskov's Practical Byzantine Fault Tolerance (OSDI 1999, TOCS 2002), with n
replicas of which f = floor((n-1)/3) may be faulty, and quorums of q = ceil((n+f+1)/2) (= 2f+1
when n = 3f+1). Replica i is the primary of view v when v mod n = i.

Normal case. Clients send signed ``Request``s (to the primary; to everyone when they retry;
to everyone at once in a committee that takes pre-prepares by reference, below).
The primary batches pending requests into a ``PrePrepare(view, seq, digest, requests)``; a
backup accepts it if it is in the current view, within the watermarks, consistent with any
pre-prepare it accepted for that (view, seq), and every request verifies; then it broadcasts a
``Prepare``. Pre-prepare plus q-1 matching prepares = *prepared*: the replica broadcasts a
``Commit`` carrying a quorum vote. q matching commits = *committed*; batches execute strictly
in sequence order, each request at most once per (client, request id) - the per-client table
of last id and reply lives in the replicated state, so duplicates get the cached reply.
The quorum's votes form a ``QuorumCert`` that anyone can check with the committee list.

Pre-prepares by reference. In a committee of more than ``refs_above`` members the primary
sends ``PrePrepareRefs``: its signed pre-prepare envelope with each request replaced by the
request's SHA-256. A backup holding every request (its client sent it to every member) rebuilds
the exact signed bytes and checks them as if they had come whole; one lacking some asks the
primary for the batch (``BatchFetch``) and rebuilds it from the answer. So a primary sends each
batch once in all instead of to every member: at 30 daemons on ``planet`` lines a 19-member
shard's primary on a 0.65 Mbit/s uplink spent tens of seconds per batch sending it 18 times, its
backups suspected it, and view followed view. (PBFT's own digest optimisation; Narwhal spreads
requests the same way.) Backups of such a committee do not forward a client's request to the
primary either: the client sent it there itself, and re-sends it to everyone if it is lost.

Checkpoints. After every K batches (and after ``EndEpoch``) a replica signs the digest of its
state; q matching ones make a *stable checkpoint*: the low watermark h moves there, the log
below it is dropped, and pre-prepares are accepted only for h < seq <= h + L.

View change. A backup with pending work and no progress for T seconds suspects the primary,
moves to view v+1 and broadcasts a ``ViewChange`` (stable checkpoint proof + highest-view
prepared certificates). It also joins a view change when f+1 others ask for later views. The
new primary collects q of them and broadcasts a ``NewView`` whose pre-prepares are recomputed
and checked by every backup (``consensus.viewchange``). Until the new view comes, a replica
re-sends its view change, backing off, to the new primary and to members not known to have
left the old view (no view change or status of theirs says so); the others get the new view,
which names the view changes it took, and fetch any they lack from its primary; a member's
status counts as its leaving for the new-view timer. Re-broadcast to all, an 11 KB view
change went to 18 members four times in a view's first ten seconds; on a 0.65 Mbit/s uplink
each copy took 2.5 s to leave, the new view waited behind them, was late, and the next view
change started: 1-3.7 MB of view changes per member in two minutes on a 30-daemon ``planet``
testnet. If the new view does not arrive within T after a quorum asked for it, the replica
moves on to the next view and doubles T; T returns to its base value once batches execute
again, or to ``PACE_TIMEOUTS`` times the committee's smoothed wait for an execution if that is
longer: a slow committee is not a faulty one (the timers: ``consensus.timers``).

Short of a quorum. The shell says how many members it can reach (``reach``). With fewer than
a quorum nothing can commit and no view change can complete, so suspecting the primary only
adds a view change per timeout, and status every ``status_interval`` only adds signed frames
for peers that are not there (a 19-member committee forming over a slow, loaded network made
thousands of them per node, and its view changes kept members busy that were still dialling
each other). Until a quorum is reachable the view-change timers stand still (as for ``busy``)
and status and view-change re-sends go every ``SHORT_RESEND`` status intervals.

Catch-up. A replica whose pending work stood still a status interval (``_head``; every interval
while changing view, restarted or fetching state) sends ``Status``; a peer that is behind
gets ``CommitProof``s (a batch plus its quorum certificate: executable without the three
phases), the proof of a newer stable checkpoint (then it fetches that state by
``consensus.statetransfer``), the ``NewView`` of the current view, or the in-flight pre-prepares
and votes it may have lost.

Persistence. Before any message that commits this replica to something, it emits ``Persist``
actions (``consensus.persist``); see ``consensus.actions`` for the ordering contract. A
replica rebuilt from its store (``stored=``) restores its stable checkpoint, re-executes the
batches it had committed, and never sends a vote that contradicts one it sent before.

Inputs are envelopes whose signature the caller verified (``Envelope.sender`` is the
authenticated signer, which may differ from the peer that delivered it: evidence is forwarded).
Everything else - shard, epoch, view, watermarks, membership, the proofs inside - is checked
here, and messages that fail are dropped (``Misbehaviour`` when they prove a fault).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from consensus import persist
from consensus.actions import Action, Broadcast, Committed, Misbehaviour, Persist, Send
from consensus.checkpoint import CheckpointTracker, InvalidProof, Stable
from consensus.config import ReplicaConfig
from consensus.crypto import Signer, Verifier
from consensus.evidence import Equivocation, check_equivocation
from consensus.health import Observation
from consensus.log import NULL_DIGEST, MessageLog, Slot, Vote, batch_bytes, batch_digest
from consensus.quorum import bitmap, make_qc, prepare_bytes, vote_bytes
from consensus.sizes import MAX_REQUEST_BYTES
from consensus.statemachine import ClientRequest, Service, StateMachine, state_digest
from consensus.statetransfer import StateFetch
from consensus.batches import Batches
from consensus.recovery import Recovery
from consensus.replica_base import CheckedViewChange
from consensus.timers import Timers
from consensus.viewchange import ViewChanges
from protocol.envelope import Envelope
from protocol.errors import RemoteProtocolError
from protocol.messages.pbft import (
    BatchBody, BatchFetch, Checkpoint, Commit, CommitProof, EndEpoch, NewView, PrePrepare,
    PrePrepareRefs,
    Prepare, PreparedCert, QuorumCert, Reply, Request, StableCheckpoint, StateChunk,
    StateRequest, Status, ViewChange, ViewChangeFetch,
)

_END = b"\x00end-epoch"
"""Pending-table key of the (single) EndEpoch request."""


class Replica(ViewChanges, Recovery, Batches, Timers):
    """One committee member. See the module docstring; the view-change protocol is in
    ``consensus.viewchange``, catch-up and state transfer in ``consensus.recovery``, timers
    and pacing in ``consensus.timers``."""

    def __init__(self, config: ReplicaConfig, signer: Signer, verifier: Verifier,
                 machine: StateMachine, *, genesis: bytes | None = None,
                 stored: Mapping[str, bytes] | None = None, now: float = 0.0) -> None:
        """``genesis``: the initial state snapshot (``Service.snapshot()`` bytes; for a later
        epoch, the state handed over by the previous committee). ``stored``: this replica's
        durable records, to restart from them. Actions produced while starting (re-execution
        after a restart) are returned by the first ``receive``/``tick``."""
        self.cfg = config
        self.signer = signer
        self.verifier = verifier
        me = config.index_of(signer.public_key)
        if me is None:
            raise ValueError("this replica's key is not in the committee")
        self.me = me
        self.service = Service(machine)
        if genesis is not None:
            self.service.restore(genesis)
        snap = self.service.snapshot()
        self.genesis_digest = state_digest(snap)
        self.now = now
        self.view = 0
        self.view_changing = False
        self.log = MessageLog(config.window)
        self.last_executed = 0
        self.ckpt = CheckpointTracker(config, self.genesis_digest, snap)
        self.pending: dict[bytes, ClientRequest] = {}
        self.inflight: set[tuple[bytes, int]] = set()
        self.next_seq = 1
        self.timeout = config.view_change_timeout
        self.progress_at: float | None = None
        self.vcs: dict[int, CheckedViewChange] = {}
        """Each sender's latest checked view change."""
        self.my_vc: bytes | None = None
        self.vc_sent_at = 0.0
        self.vc_resend_wait = 0.0
        """Wait before the next re-send of our view change: doubles with each one (a view
        change carries prepared certificates; sent to every member every 2 status intervals,
        they filled sub-Mbit uplinks and no new view got through)."""
        self.nv_wait_since: float | None = None
        self.nv_raw: bytes | None = None
        self.nv_vcs: tuple[bytes, ...] = ()
        """The view changes ``nv_raw`` names (sent to whoever asks for them)."""
        self.nv_pending: Envelope | None = None
        """A new view waiting for view changes it names that have not arrived yet."""
        self.vc_fetch_at = -1e18
        self.vc_fetch_wait = 0.0
        """Wait before asking the new primary again for view changes: doubles with each ask
        (each answer is up to a quorum of view changes)."""
        """When we last asked a new primary for view changes its new view names."""
        self.vc_kept: dict[bytes, CheckedViewChange] = {}
        """Checked view changes by envelope digest, a few per sender."""
        self.view_change_causes: dict[str, int] = {}
        self.last_view_change = ""
        """View changes this replica started, by cause, and the last one's (for operators)."""
        self._displaced: dict[bytes, tuple[bytes, ...]] = {}
        """Batches a new view replaced in the log, by digest (a later view may bring one back)."""
        self._batch_asked: dict[tuple[int, bytes], tuple[float, int]] = {}
        """Batch bodies asked for: (seq, digest) -> (when last, how many asks) (``_ask_batch``)."""
        self.last_status = -1e18
        self._head_seen: tuple[int, bool, int, int] = (-1, False, -1, -1)
        self._head_at = -1e18
        """The head (``_head``) last seen by ``_timers``, and when it last moved."""
        self._status_wait = config.status_interval
        self._status_head: tuple[int, bool, int, int] | None = None
        """The wait before the next status, and the head our last status showed (a replica
        left behind backs off while it stands still: ``_still_left_behind``)."""
        self.restarted = bool(stored)
        """Restarted from its store: send ``Status`` even without pending work, until the head
        stands still for a timeout, so peers that moved on (a view change, batches committed
        meanwhile) bring it up to date."""
        self.fetch: StateFetch | None = None
        self.end_seq: int | None = None
        self.end_reported = False
        self._hold = False
        self._proposing = False
        self.view_changes_in_a_row = 0
        """View changes started since a batch last executed (for ``consensus.health``)."""
        self._calm_at = now
        """When the replica last executed a batch or last had no work."""
        self.short_of_quorum = False
        """The shell reaches fewer than a quorum of members (``reach``)."""
        self._ticked_at = now
        self.timeouts_excused = 0
        """Timeouts not blamed on the primary because this replica was catching up."""
        self._lagging_since: float | None = None
        """Since when the timers have seen this replica catching up (``Timers._lagging``)."""
        self.peer_views: dict[int, tuple[int, bool, float]] = {}
        """Each member's last ``Status``: (view, view changing, when), for ``observe``."""
        self._status_answered: dict[int, float] = {}
        self._status_peers: dict[int, tuple[tuple[int, int], float, float, float]] = {}
        """Per member: ((view, last executed) it last sent, since when, when we answer its
        status next, back-off)."""
        self._req_cache: dict[bytes, ClientRequest] = {}
        self._raw_by_ref: dict[bytes, bytes] = {}
        """Requests seen, by SHA-256 (what a ``PrePrepareRefs`` names them by)."""
        self._refs_waiting: dict[int, tuple[int, Envelope, PrePrepareRefs, float]] = {}
        """Pre-prepares by reference still missing requests, by seq: (primary, its envelope,
        the references, since when), until the requests come or the batch is fetched."""
        self._ordered: set[tuple[bytes, int]] = set()
        """(client, request id) of requests in pre-prepares we accepted (by reference)."""
        self._pending_since: dict[tuple[bytes, int], float] = {}
        self._forwarded: set[tuple[bytes, int]] = set()
        self.pace: float | None = None
        """Smoothed seconds from work waiting to its execution, view changes excluded."""
        self.refs_rebuilt = 0
        self.refs_fetched = 0
        self._out: list[Action] = []
        if stored:
            self._recover(stored)

    # -- public API -----------------------------------------------------------------------------

    @property
    def primary(self) -> int:
        return self.cfg.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.me

    @property
    def stable(self) -> Stable:
        return self.ckpt.stable

    def receive(self, env: Envelope, now: float | None = None) -> list[Action]:
        """Handle one verified envelope (``env.sender`` is its signer, not necessarily the peer
        that delivered it). ``now``, if given, advances the replica's clock as ``tick`` does."""
        if now is not None and now > self.now:
            self.now = now
        try:
            self._dispatch(env)
        except RemoteProtocolError as err:
            self._out.append(Misbehaviour(env.sender, f"{err.reason}: {err}"))
        return self._flush()

    def tick(self, now: float) -> list[Action]:
        """Advance time: timers, retransmission, state transfer."""
        self.now = max(self.now, now)
        self._timers()
        return self._flush()

    def observe(self, reachable: int) -> Observation:
        """What ``consensus.health.committee_health`` needs, as of the last tick; ``reachable``
        (members the shell can reach, this one included) is the shell's knowledge."""
        work = self._has_work() or self.view_changing
        low, count = self._carrying_on()
        return Observation(self.cfg.n, self.cfg.quorum, reachable,
                           max(0.0, self.now - self._calm_at) if work else None,
                           self.view_changes_in_a_row, self.view_changing, self.view, count, low)

    def certificate(self, seq: int) -> QuorumCert | None:
        """The quorum certificate of a committed batch still in the log, or None."""
        s = self.log.get(seq)
        return self._qc(s) if s is not None and s.committed else None

    # -- plumbing -------------------------------------------------------------------------------

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _seal(self, msg: Any) -> bytes:
        return self.signer.seal(msg, self.now)

    def _broadcast(self, msg: Any) -> bytes:
        raw = self._seal(msg)
        self._out.append(Broadcast(raw))
        return raw

    def _past_our_view(self) -> frozenset[bytes]:
        """Members known to be in a later view than ours (their view change or status said
        so): they drop this view's pre-prepares and votes unread, and a correct replica never
        goes back to an earlier view, so they are not sent any. Members left behind in a view
        change got every vote of the committee carrying on without them: at five of 19 left
        so by forming on a 30-daemon ``planet`` testnet, 28% of each vote's frames, decoded and
        dropped on the left-behind members' slow lines and shared CPU. (A member claiming a
        later view falsely only loses votes it would have had.)"""
        later = {i for i, c in self.vcs.items() if c.view > self.view}
        later.update(i for i, (view, _, _) in self.peer_views.items() if view > self.view)
        return frozenset(self.cfg.committee[i] for i in later if i != self.me)

    def _send(self, to: int, raw: bytes) -> None:
        self._out.append(Send(self.cfg.committee[to], raw))

    def _persist_slot(self, s: Slot) -> None:
        self._out.append(Persist(persist.slot_key(s.seq), persist.encode_slot(s)))

    def _persist_view(self) -> None:
        self._out.append(Persist(persist.VIEW, persist.encode_view(self.view,
                                                                   self.view_changing)))

    def _dispatch(self, env: Envelope) -> None:
        m = env.body
        if m.shard != self.cfg.shard:
            return
        if isinstance(m, Request) or isinstance(m, EndEpoch):
            if m.epoch <= self.cfg.epoch and (isinstance(m, Request) or m.epoch == self.cfg.epoch):
                req = self._request_of(env)
                self._on_request(req)
                if self._refs_waiting:
                    self._request_arrived(hashlib.sha256(req.raw).digest())
            return
        if m.epoch != self.cfg.epoch:
            return
        if isinstance(m, Reply):
            return
        if isinstance(m, StateRequest):  # anyone may fetch a stable state: new committees do
            self._on_state_request(env.sender, m)
            return
        sender = self.cfg.index_of(env.sender)
        if sender is None:
            raise InvalidProof("replica message from a key outside the committee")
        handler = self._handlers.get(type(m))
        if handler is not None:
            handler(self, sender, m, env)

    def _request_of(self, env: Envelope) -> ClientRequest:
        raw = env.to_bytes()
        req = self._req_cache.get(raw)
        if req is None:
            req = ClientRequest.from_envelope(env, raw)
            self._cache_request(req)
        return req

    def _cache_request(self, req: ClientRequest) -> None:
        if len(self._req_cache) > 8 * self.cfg.window * self.cfg.batch_size:
            self._req_cache.clear()
            self._raw_by_ref.clear()
        self._req_cache[req.raw] = req
        if self.cfg.by_reference:
            self._raw_by_ref[hashlib.sha256(req.raw).digest()] = req.raw

    def _decode_batch(self, raws: tuple[bytes, ...]) -> tuple[ClientRequest, ...]:
        """Verify and decode a batch's requests (cached: most were seen directly)."""
        out = []
        for raw in raws:
            req = self._req_cache.get(raw)
            if req is None:
                env = self.verifier.open(raw)
                m = env.body
                if not isinstance(m, (Request, EndEpoch)) or m.shard != self.cfg.shard or \
                        m.epoch > self.cfg.epoch or (isinstance(m, EndEpoch) and (
                        m.epoch != self.cfg.epoch or self.cfg.index_of(env.sender) is None)):
                    raise InvalidProof("a batch holds something that is not a request here")
                req = ClientRequest.from_envelope(env, raw)
                self._cache_request(req)
            out.append(req)
        return tuple(out)

    # -- requests and batching ------------------------------------------------------------------

    def _on_request(self, req: ClientRequest) -> None:
        if len(req.raw) > MAX_REQUEST_BYTES:
            return  # cannot happen with a valid Request (64 KiB operation); cheap to refuse
        if req.end_epoch:
            if self.cfg.index_of(req.client) is None or self.service.ended:
                return
            key = _END
        else:
            last = self.service.last_reply(req.client)
            if last is not None and req.request_id <= last[0]:
                if req.request_id == last[0]:
                    self._out.append(Send(req.client, self._seal(Reply(
                        self.cfg.shard, self.cfg.epoch, self.view, last[0], last[1]))))
                return
            if self.service.ended:
                return
            key = req.client
        old = self.pending.get(key)
        if old is not None and old.request_id >= req.request_id:
            return
        if old is None and len(self.pending) >= self.cfg.max_pending:
            return  # full: the client retries later
        self.pending[key] = req
        if self.progress_at is None:
            self.progress_at = self.now
        if self.is_primary and not self.view_changing:
            self._propose()
        elif not self.view_changing and not self.cfg.by_reference:
            self._send(self.primary, req.raw)

    def _propose(self) -> None:
        if not self.is_primary or self.view_changing or self.fetch is not None \
                or self.service.ended or self._hold or self._proposing:
            return
        self._proposing = True
        try:
            self._propose_batches()
        finally:
            self._proposing = False

    def _propose_batches(self) -> None:
        while self.next_seq <= self.log.high and \
                self.next_seq - 1 - self.last_executed < self.cfg.max_inflight:
            known = self.log.slots.get(self.next_seq)
            if known is not None and known.committed:
                # Committed already (a commit proof reached a primary that was behind, e.g.
                # restarted in an old view): that number is taken. Proposing over it would
                # replace the committed batch in our own slot and execute another one there.
                self.next_seq += 1
                continue
            batch = self._cut_batch()
            if not batch:
                return
            raws = tuple(r.raw for r in batch)
            digest = batch_digest(raws)
            vote = self.signer.sign_vote(prepare_bytes(self.cfg.shard, self.cfg.epoch,
                                                       self.view, self.next_seq, digest))
            pp = PrePrepare(self.cfg.shard, self.cfg.epoch, self.view, self.next_seq,
                            digest, raws, vote)
            self.next_seq += 1
            self.inflight.update((r.client, r.request_id) for r in batch)
            raw = self._seal(pp)
            s = self._accept_preprepare(pp, raw, tuple(batch))
            self._persist_slot(s)
            if self.cfg.by_reference:
                s.pp_refs = self._by_reference(pp, raw)
            self._out.append(Broadcast(s.pp_refs or raw, self._past_our_view()))
            # With n = 1 (f = 0) the pre-prepare alone is a prepared certificate: no backup
            # will ever send the prepare that would otherwise trigger this check.
            self._check_prepared(s)

    def _cut_batch(self) -> list[ClientRequest]:
        """The next batch: pending requests not in flight, at most ``batch_size`` of them and
        ``max_batch_bytes`` in all (any single request fits: ``ReplicaConfig`` checks it)."""
        batch: list[ClientRequest] = []
        size = 0
        for r in self.pending.values():
            if (r.client, r.request_id) in self.inflight:
                continue
            if len(batch) >= self.cfg.batch_size or size + len(r.raw) > self.cfg.max_batch_bytes:
                break
            batch.append(r)
            size += len(r.raw)
        return batch

    # -- the three phases -----------------------------------------------------------------------

    def _accept_preprepare(self, pp: PrePrepare, raw: bytes,
                           requests: tuple[ClientRequest, ...]) -> Slot:
        s = self.log.slot(pp.seq)
        s.pp_view, s.digest, s.pp_raw, s.requests = pp.view, pp.digest, raw, requests
        s.pp_vote = pp.vote
        if self.cfg.by_reference:
            if len(self._ordered) > 8 * self.cfg.window * self.cfg.batch_size:
                self._ordered.clear()
            self._ordered.update((r.client, r.request_id) for r in requests)
        return s

    def _on_preprepare(self, sender: int, m: PrePrepare, env: Envelope) -> None:
        if m.view != self.view or self.view_changing or sender != self.primary or \
                not self.log.in_window(m.seq):
            return
        s = self.log.slot(m.seq)
        if s.pp_view == m.view:
            if s.digest != m.digest and s.pp_raw:  # (no evidence against a new view's batch)
                self._equivocation(env.sender, s.pp_raw, env.to_bytes())
            return
        if s.committed and s.digest != m.digest:
            return
        if len(m.requests) > self.cfg.batch_size or \
                batch_bytes(m.requests) > self.cfg.max_batch_bytes:
            raise InvalidProof("pre-prepare batch is over the committee's batch limits")
        if batch_digest(m.requests) != m.digest:
            raise InvalidProof("pre-prepare digest does not match its batch")
        if not self.verifier.verify_vote(env.sender, prepare_bytes(
                m.shard, m.epoch, m.view, m.seq, m.digest), m.vote):
            raise InvalidProof("pre-prepare vote does not verify")
        requests = self._decode_batch(m.requests)
        self._accept_preprepare(m, env.to_bytes(), requests)
        self._persist_slot(s)
        if not self.is_primary:
            self._vote_prepare(s)
        self._check_prepared(s)

    def _vote_prepare(self, s: Slot) -> None:
        vote = self.signer.sign_vote(prepare_bytes(self.cfg.shard, self.cfg.epoch, self.view,
                                                   s.seq, s.digest))
        raw = self._seal(Prepare(self.cfg.shard, self.cfg.epoch, self.view, s.seq, s.digest,
                                 vote))
        s.prepares.setdefault(self.view, {})[self.me] = Vote(s.digest, raw, vote)
        self._out.append(Broadcast(raw, self._past_our_view()))

    def _on_prepare(self, sender: int, m: Prepare, env: Envelope) -> None:
        if m.view != self.view or self.view_changing or sender == self.primary or \
                not self.log.in_window(m.seq):
            return
        s = self.log.slot(m.seq)
        votes = s.prepares.setdefault(m.view, {})
        old = votes.get(sender)
        if old is not None:
            if old.digest != m.digest:
                self._equivocation(env.sender, old.raw, env.to_bytes())
            return
        if s.prepared_view >= m.view:
            # Prepared already: this vote joins no certificate (the slot's is built), so its
            # signature is left unchecked, as a commit's is until it forms one. Its envelope
            # came from its sender (``open_direct``); a copy offered as evidence is checked
            # then (``_equivocation``). The 6 of 18 prepares that come after the quorum cost a
            # 19-member committee's members about 110 signature checks per batch.
            votes[sender] = Vote(m.digest, env.to_bytes(), m.vote)
            return
        if not self.verifier.verify_vote(env.sender, prepare_bytes(
                m.shard, m.epoch, m.view, m.seq, m.digest), m.vote):
            raise InvalidProof("prepare vote does not verify")
        votes[sender] = Vote(m.digest, env.to_bytes(), m.vote)
        self._check_prepared(s)

    def _on_commit(self, sender: int, m: Commit, env: Envelope) -> None:
        if m.view != self.view or self.view_changing or not self.log.in_window(m.seq):
            return
        s = self.log.slot(m.seq)
        votes = s.commits.setdefault(m.view, {})
        old = votes.get(sender)
        if old is not None:
            if old.digest != m.digest:
                self._equivocation(env.sender, old.raw, env.to_bytes())
            return
        votes[sender] = Vote(m.digest, env.to_bytes(), m.vote)
        self._check_committed(s)

    def _check_prepared(self, s: Slot) -> None:
        v = self.view
        if s.pp_view != v or s.prepared_view >= v or self.view_changing:
            return
        primary = self.cfg.primary(v)
        matching = s.matching(s.prepares, v, s.digest, exclude=primary)
        if len(matching) < self.cfg.quorum - 1:
            return
        votes = {i: p.sig for i, p in sorted(matching.items())[: self.cfg.quorum - 1]}
        votes[primary] = s.pp_vote
        order = sorted(votes)
        s.prepared_view = v
        s.prepared_cert = PreparedCert(v, s.seq, s.digest, bitmap(order, self.cfg.n),
                                       tuple(votes[i] for i in order))
        vote = self.signer.sign_vote(vote_bytes(self.cfg.shard, self.cfg.epoch, v, s.seq,
                                                s.digest))
        raw = self._seal(Commit(self.cfg.shard, self.cfg.epoch, v, s.seq, s.digest, vote))
        s.commits.setdefault(v, {})[self.me] = Vote(s.digest, raw, vote)
        self._persist_slot(s)
        self._out.append(Broadcast(raw, self._past_our_view()))
        self._check_committed(s)

    def _check_committed(self, s: Slot) -> None:
        v = self.view
        if s.committed or s.prepared_view != v:
            return
        matching = s.matching(s.commits, v, s.digest)
        if len(matching) < self.cfg.quorum:
            return
        s.committed, s.committed_view = True, v
        s.qc_votes = {i: c.sig for i, c in matching.items()}
        self._persist_slot(s)
        self._execute_ready()

    def _equivocation(self, offender: bytes, first: bytes, second: bytes) -> None:
        """Evidence only if a third party would take it: a vote taken on its channel's word
        had its envelope's signature left unchecked (``consensus.crypto``)."""
        ev = Equivocation(offender, first, second)
        proof = ev if check_equivocation(ev, self.verifier) is None else None
        self._out.append(Misbehaviour(offender, "equivocation", proof))

    # -- execution and checkpoints --------------------------------------------------------------

    def _execute_ready(self) -> None:
        while self.fetch is None:
            s = self.log.get(self.last_executed + 1)
            if s is None or not s.committed or s.requests is None:
                break
            self._execute(s)
        if self.is_primary:
            self._propose()

    def _replies_to(self, client: bytes) -> bool:
        """Whether executing ``client``'s request sends it a reply: not when the client is
        another member, whose own replica's reply completes its request
        (``consensus.client``); the other 3f replies were a frame and a signature check each
        for nothing. A member whose replica lags re-sends, and a re-sent request that was
        executed is answered (``_on_request``), so it still gets f+1 replies."""
        idx = self.cfg.index_of(client)
        return idx is None or idx == self.me

    def _execute(self, s: Slot) -> None:
        requests = s.requests
        assert requests is not None, "only a slot whose batch is known executes"
        results = []
        for req in requests:
            was_ended = self.service.ended
            res = self.service.execute(req)
            results.append(res)
            if req.end_epoch and not was_ended:
                self.end_seq = s.seq
            key = _END if req.end_epoch else req.client
            p = self.pending.get(key)
            if p is not None and (req.end_epoch or p.request_id <= req.request_id):
                del self.pending[key]
            self.inflight.discard((req.client, req.request_id))
            if res is not None and not req.end_epoch and self._replies_to(req.client):
                self._out.append(Send(req.client, self._seal(Reply(
                    self.cfg.shard, self.cfg.epoch, self.view, req.request_id, res))))
        self.last_executed = s.seq
        s.executed_at = self.now
        if self.progress_at is not None and self.view_changes_in_a_row == 0:
            self._learn_pace(self.now - self.progress_at)
        self.view_changes_in_a_row = 0
        self._calm_at = self.now
        self.progress_at = self.now if self.pending else None
        if not self.view_changing:
            self.timeout = self._paced_timeout()
        qc = self._qc(s) if self.cfg.certify else None
        self._out.append(Committed(s.seq, s.committed_view, s.digest, requests,
                                   tuple(results), qc))
        if s.seq % self.cfg.checkpoint_interval == 0 or s.seq == self.end_seq:
            self._take_checkpoint(s.seq)
        if self.service.ended:
            self.pending.clear()

    def _qc(self, s: Slot) -> QuorumCert | None:
        """Build (and check) the slot's quorum certificate from the commit votes it holds."""
        votes = dict(s.qc_votes or {})
        if len(votes) >= self.cfg.quorum and s.qc_checked:
            return make_qc(self.cfg.shard, self.cfg.epoch, s.committed_view, s.seq, s.digest,
                           votes, self.cfg.n)
        data = vote_bytes(self.cfg.shard, self.cfg.epoch, s.committed_view, s.seq, s.digest)
        cands = {i: c.sig for i, c in s.commits.get(s.committed_view, {}).items()
                 if c.digest == s.digest}
        cands.update(votes)
        good = {}
        for i, sig in sorted(cands.items()):
            if i == self.me or self.verifier.verify_vote(self.cfg.committee[i], data, sig):
                good[i] = sig
                if len(good) == self.cfg.quorum:
                    break
            else:
                self._out.append(Misbehaviour(self.cfg.committee[i], "bad_vote"))
        if len(good) < self.cfg.quorum:
            return None
        s.qc_votes, s.qc_checked = good, True
        return make_qc(self.cfg.shard, self.cfg.epoch, s.committed_view, s.seq, s.digest, good,
                       self.cfg.n)

    def _take_checkpoint(self, seq: int) -> None:
        snap = self.service.snapshot()
        digest = state_digest(snap)
        self.ckpt.add_own(seq, digest, snap)
        raw = self._broadcast(Checkpoint(self.cfg.shard, self.cfg.epoch, seq, digest))
        self._add_checkpoint_vote(self.me, seq, digest, raw)

    # -- restart --------------------------------------------------------------------------------

    def _recover(self, stored: Mapping[str, bytes]) -> None:
        rec = persist.load(stored)
        if rec.stable is not None and rec.snapshot is not None:
            self.service.restore(rec.snapshot)
            self.ckpt.make_stable(rec.stable, rec.snapshot)
            self.log.truncate(rec.stable.seq)
            self.last_executed = rec.stable.seq
        self.view, self.view_changing = rec.view, rec.view_changing
        if rec.newview is not None and rec.newview[0] == self.view:
            self.nv_raw, self.nv_vcs = rec.newview[1], rec.newview[2]
        for seq, s in sorted(rec.slots.items()):
            if not self.log.in_window(seq):
                continue
            if s.pp_raw:
                s.requests = self._decode_batch(self.verifier.open(s.pp_raw).body.requests)
            elif rec.batches.get(seq) is not None:
                s.requests = self._decode_batch(rec.batches[seq])  # type: ignore[arg-type]
            else:
                s.requests = () if s.digest == NULL_DIGEST else None
            self.log.slots[seq] = s
        self.next_seq = max([self.last_executed] + [s for s, x in self.log.slots.items()
                                                    if x.pp_view == self.view]) + 1
        if self.view_changing:
            view, self.view = self.view, self.view - 1
            self._start_view_change(view, "restart: it was changing view when it stopped")
        self._execute_ready()


Replica._handlers = {
    PrePrepare: Replica._on_preprepare,
    PrePrepareRefs: Replica._on_preprepare_refs,
    Prepare: Replica._on_prepare,
    Commit: Replica._on_commit,
    Checkpoint: Replica._on_checkpoint,
    StableCheckpoint: Replica._on_stable_checkpoint,
    ViewChange: Replica._on_view_change,
    NewView: Replica._on_new_view,
    Status: Replica._on_status,
    CommitProof: Replica._on_commit_proof,
    StateChunk: Replica._on_state_chunk,
    ViewChangeFetch: Replica._on_view_change_fetch,
    BatchFetch: Replica._on_batch_fetch,
    BatchBody: Replica._on_batch_body,
}
