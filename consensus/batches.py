"""How batch bodies travel between replicas (a mixin of ``consensus.replica.Replica``).

- Pre-prepares by reference (committees of more than ``refs_above`` members): the primary
  sends its signed pre-prepare with each request replaced by its SHA-256; a backup rebuilds the
  exact signed bytes from its copies of the requests. One that lacks some waits
  ``REFS_GRACE`` status intervals for them (the client sent each to every member; the
  pre-prepare can overtake a copy on its way), rebuilding as soon as the last arrives, and
  only then asks for the batch.
- Batches known by digest only (a new view re-proposed them, or a pre-prepare by reference
  named requests we lack): asked of the primary, then of f+1 members at a time
  (``_ask_batch``); answered from the log or from batches a new view displaced.
- Requests a backup holds but no pre-prepare took are forwarded to the primary once.
"""

from __future__ import annotations

import hashlib

from consensus.checkpoint import InvalidProof
from consensus.config import in_turn
from consensus.log import NULL_DIGEST, Slot, batch_digest
from consensus.replica_base import ReplicaBase
from consensus.statemachine import ClientRequest
from protocol.canonical import packb, unpackb
from protocol.envelope import FORMAT, HEADER_SIZE, MAGIC, Envelope
from protocol.errors import RemoteProtocolError
from protocol.messages.pbft import BatchBody, BatchFetch, PrePrepare, PrePrepareRefs
from protocol.schema import encode_body, message_type

REFS_GRACE = 2.0
"""Status intervals a backup waits for the requests a pre-prepare by reference names before it
asks for the batch. It asked the primary at once: on a 30-daemon ``planet`` testnet a worker's
report reached the primary before the other members, each of them asked for the whole batch,
and the primary's uplink carried every such batch again, 18 times (1.2 MB in a minute from one
primary, beside its own requests), while the copies it asked for were already on their way."""


class Batches(ReplicaBase):
    """Batch bodies by reference, fetched and forwarded, on the attributes ``Replica`` sets."""

    # -- pre-prepares by reference ------------------------------------------------------------

    def _by_reference(self, pp: PrePrepare, raw: bytes) -> bytes:
        """Our sealed pre-prepare ``raw`` as a ``PrePrepareRefs`` (its envelope's own header
        and signature, each request by its SHA-256)."""
        header = unpackb(raw[HEADER_SIZE:])
        context, env_seq, timestamp_ms = header[4], header[5], header[6]
        return self._seal(PrePrepareRefs(
            context, env_seq, timestamp_ms, raw[len(MAGIC) + 1:HEADER_SIZE], pp.shard, pp.epoch,
            pp.view, pp.seq, pp.digest,
            tuple(hashlib.sha256(r).digest() for r in pp.requests), pp.vote))

    def _on_preprepare_refs(self, sender: int, m: PrePrepareRefs, env: Envelope) -> None:
        if m.view != self.view or self.view_changing or sender != self.primary or \
                not self.log.in_window(m.seq):
            return
        s = self.log.get(m.seq)
        if s is not None and s.pp_view == m.view:
            return  # we have it (a whole one shows equivocation, if any, in ``_on_preprepare``)
        if len(m.refs) > self.cfg.batch_size:
            raise InvalidProof("pre-prepare batch is over the committee's batch limits")
        raws = [self._raw_by_ref.get(ref) for ref in m.refs]
        if all(r is not None for r in raws):
            self._rebuild(sender, env, m, tuple(raws))  # type: ignore[arg-type]
            return
        waiting = self._refs_waiting.get(m.seq)
        since = waiting[3] if waiting is not None and waiting[2].digest == m.digest else self.now
        self._refs_waiting[m.seq] = (sender, env, m, since)
        if len(self._refs_waiting) > self.cfg.window:
            del self._refs_waiting[min(self._refs_waiting)]

    def _request_arrived(self, ref: bytes) -> None:
        """A request came: rebuild the pre-prepares by reference that waited for it alone."""
        for seq, (sender, env, m, _) in list(self._refs_waiting.items()):
            if ref not in m.refs:
                continue
            raws = [self._raw_by_ref.get(r) for r in m.refs]
            if all(r is not None for r in raws):
                del self._refs_waiting[seq]
                if m.view == self.view and not self.view_changing:
                    self._rebuild(sender, env, m, tuple(raws))  # type: ignore[arg-type]

    def _ask_refs(self) -> None:
        """Batches of pre-prepares by reference still missing after ``REFS_GRACE`` status
        intervals are asked for (``_ask_batch``): first of the primary that named them, then
        again of f+1 members at a time, since an answer lost on the way (a large committee's
        mesh around silent members) left the slot without a batch."""
        grace = REFS_GRACE * self.cfg.status_interval
        for seq, (primary, _, m, since) in list(self._refs_waiting.items()):
            if m.view != self.view or not self.log.in_window(seq):
                del self._refs_waiting[seq]
            elif self.now - since < grace:
                continue
            elif (seq, m.digest) not in self._batch_asked:
                self.refs_fetched += 1
                self._ask_batch(seq, m.digest, first=primary)
            else:
                self._ask_batch(seq, m.digest)

    def _rebuild(self, sender: int, refs: Envelope, m: PrePrepareRefs,
                 raws: tuple[bytes, ...]) -> None:
        """The primary's signed pre-prepare envelope, byte for byte, from its references and
        our copies of the requests; checked (signature and all) as if it had come whole.
        ``refs`` (the primary's own envelope) is kept to pass on to a peer that lacks it."""
        signer = refs.sender
        pp = PrePrepare(m.shard, m.epoch, m.view, m.seq, m.digest, raws, m.vote)
        type_name, version = message_type(pp)
        payload = packb([version, self.verifier.network, type_name, signer, m.context,
                         m.env_seq, m.timestamp_ms, encode_body(pp, validate=False)], maps=False)
        try:
            env = self.verifier.open(MAGIC + bytes([FORMAT]) + m.signature + payload)
        except RemoteProtocolError as err:
            raise InvalidProof(f"pre-prepare by reference does not verify: {err}") from None
        if env.sender != signer or not isinstance(env.body, PrePrepare):
            raise InvalidProof("pre-prepare by reference names another signer or type")
        self.refs_rebuilt += 1
        self._on_preprepare(sender, env.body, env)
        s = self.log.get(m.seq)
        if s is not None and s.pp_raw == env.to_bytes():
            s.pp_refs = refs.to_bytes()

    # -- requests a backup holds (by reference) ---------------------------------------------

    def _forward_unordered(self) -> None:
        """By reference, the client sent its request to the primary itself; if the primary
        lost it, the client's re-send (to everyone) brings it again. A request that has waited
        half a view-change timeout and is in no pre-prepare we accepted is forwarded to the
        primary once, so a lost copy costs less than a view change (forwarding all of them
        every status interval would bring the primary n-1 copies of everything)."""
        sent = 0
        for r in self.pending.values():
            ident = (r.client, r.request_id)
            if sent >= self.cfg.batch_size:
                break
            if ident in self._forwarded or ident in self._ordered:
                continue
            since = self._pending_since.setdefault(ident, self.now)
            if self.now - since >= self.timeout / 2:
                self._forwarded.add(ident)
                self._send(self.primary, r.raw)
                sent += 1
        if len(self._pending_since) > 4 * max(len(self.pending), 64):
            live = {(r.client, r.request_id) for r in self.pending.values()}
            self._pending_since = {k: t for k, t in self._pending_since.items() if k in live}
            self._forwarded &= live

    # -- batches known by digest only ---------------------------------------------------------

    def _known_batch(self, s: Slot, digest: bytes) -> tuple[ClientRequest, ...] | None:
        if digest == NULL_DIGEST:
            return ()
        if s.digest == digest and s.requests is not None:
            return s.requests
        raws = self._displaced.get(digest)
        return self._decode_batch(raws) if raws is not None else None

    def _fetch_batches(self) -> None:
        """Ask for the bodies of batches this replica must execute but knows only by digest
        (a new view re-proposed them); a few at a time (``_ask_batch``)."""
        asked = 0
        for seq in range(self.last_executed + 1, self.log.high + 1):
            s = self.log.get(seq)
            if s is None or s.requests is not None or asked >= self.cfg.max_inflight:
                continue
            asked += self._ask_batch(seq, s.digest)
        if len(self._batch_asked) > 4 * self.cfg.window:
            self._batch_asked = {k: v for k, v in self._batch_asked.items()
                                 if k[0] > self.last_executed}

    def _ask_batch(self, seq: int, digest: bytes, first: int | None = None) -> bool:
        """Ask for the body of batch ``digest`` at ``seq``, at most once per two status
        intervals, doubling with each ask (True if asked now): the first time of ``first``
        alone if given (the primary that named it by reference), else of the next f+1 members
        in ring order, a different f+1 each time (one of each is correct). Every member that
        has a batch answers with all of it (up to hundreds of KB), so an ask of everyone
        brought n-1 copies of it down one line, and asking again before a slow line could
        bring the first answer only added more."""
        at, tries = self._batch_asked.get((seq, digest), (-1e18, 0))
        wait = min(2 * self.cfg.status_interval * 2 ** max(0, tries - 1),
                   self.cfg.max_view_change_timeout)
        if first is None and self.now - at < wait:
            return False
        self._batch_asked[(seq, digest)] = (self.now, tries + 1)
        raw = self._seal(BatchFetch(self.cfg.shard, self.cfg.epoch, seq, digest))
        if first is not None:
            self._send(first, raw)
            return True
        others = [(self.me + j) % self.cfg.n for j in range(1, self.cfg.n)]
        for i in in_turn(others, tries, self.cfg.f + 1):
            self._send(i, raw)
        return True

    def _on_batch_fetch(self, sender: int, m: BatchFetch, env: Envelope) -> None:
        s = self.log.get(m.seq)
        raws: tuple[bytes, ...] | None = None
        if s is not None and s.digest == m.digest and s.requests is not None:
            raws = tuple(r.raw for r in s.requests)
        elif m.digest in self._displaced:
            raws = self._displaced[m.digest]
        if raws is not None:
            self._send(sender, self._seal(BatchBody(self.cfg.shard, self.cfg.epoch, m.seq,
                                                    m.digest, raws)))

    def _on_batch_body(self, sender: int, m: BatchBody, env: Envelope) -> None:
        waiting = self._refs_waiting.get(m.seq)
        if waiting is not None and waiting[2].digest == m.digest:
            if batch_digest(m.requests) != m.digest:
                raise InvalidProof("batch body does not match its digest")
            del self._refs_waiting[m.seq]
            primary, refs_env, refs, _ = waiting
            if refs.view == self.view and not self.view_changing:
                if tuple(hashlib.sha256(r).digest() for r in m.requests) != refs.refs:
                    raise InvalidProof("batch body is not the batch its pre-prepare names")
                self._rebuild(primary, refs_env, refs, m.requests)
            return
        s = self.log.get(m.seq)
        if s is None or s.requests is not None or s.digest != m.digest:
            return
        if batch_digest(m.requests) != m.digest:
            raise InvalidProof("batch body does not match its digest")
        s.requests = self._decode_batch(m.requests)
        self._persist_slot(s)
        self._execute_ready()

    def _remember_displaced(self, digest: bytes, raws: tuple[bytes, ...]) -> None:
        self._displaced[digest] = raws
        while len(self._displaced) > self.cfg.window:
            del self._displaced[next(iter(self._displaced))]
