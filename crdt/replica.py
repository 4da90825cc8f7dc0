"""The replica: the facade the daemon uses for all of one node's soft state.

A ``CrdtReplica`` holds a fixed set of named top-level CRDT objects (the *schema*, the same on
every node), this node's hybrid logical clock, its anti-entropy books, and, on a signed
network, its dot signer. It is sans-I/O: the daemon feeds it local updates, peer events,
messages and ticks, and sends the ``(peer, message)`` pairs it returns inside signed envelopes.

Message flow
------------
- local update: ``update(name, fn, now_ms)`` runs ``fn(view, writer)`` on a read-only view of
  the object; ``fn`` returns one of its delta mutators' patches (``lambda m, w: m.p_set(w,
  key, value)``); the replica checks the object's policy, signs the fresh dot, joins the delta
  and buffers it. Nothing is sent until the next ``tick``. Reads: ``get(name)``.
- ``on_connect(peer, now_ms)``: send our ``CrdtDigest``. The peer's digest tells us what it
  lacks (``antientropy``). ``on_disconnect(peer)`` stops sending to it.
- ``on_message(sender, msg, now_ms)``: ``CrdtDelta`` / ``CrdtState`` are decoded (caps),
  stripped of departed writers, planned, checked (``auth.check_plan``, clock skew), and only
  then joined, all objects or none; what was news goes into our buffer for our other peers;
  the reply is a ``CrdtAck`` (or a repair ``CrdtDigest`` when the interval cannot be applied).
  A bad message raises a ``RemoteProtocolError`` subclass and changes nothing.
- ``tick(now_ms)``: per connected peer, the next delta interval (cut to the message budget),
  a state if it is too far behind (in parts if large, ``transfer``), retransmissions,
  periodic digests; buffered deltas every connected peer has are dropped.
- ``watch(name)``: every entry of that object a peer sends, news or not, and every entry a
  message replaces, is kept for the daemon to read with ``take_observed`` (``Observed``): a
  write whose dot is already covered here (a newer write of its writer replaced it) is
  dropped by the join, and is exactly what shows two daemons writing with one key
  (``daemon.softstate.twins``). Bounded: ``MAX_OBSERVED`` pending, the rest counted in
  ``stats.observed_dropped``.
- ``snapshot()`` / ``CrdtReplica.restore(...)``: persistence. The daemon writes the snapshot after
  local updates; a restored replica starts a new session and digests tell each side what the
  other lacks (including updates persisted but never sent). A node that *lost* its snapshot
  must not write until it has caught up from peers: its counters continue from the dots of
  its own that peers report, and an earlier write could reuse a dot.

Pruning
-------
When the hard state (the committee's membership) says nodes left, the daemon calls
``prune(departed, stable_point(members))``; a departed node's entries go once every member
has all of its mutations, and its dots are dropped on arrival from then on, so a late delta
cannot resurrect it. ``readmit`` undoes the ban for a node that rejoins. See ``crdt.prune``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage
from protocol.messages.crdt import (
    CrdtAck,
    CrdtDelta,
    CrdtDigest,
    CrdtDigestPart,
    CrdtObject,
    CrdtState,
    CrdtSummary,
    CrdtSummaryReply,
    CrdtSummaryWant,
)

from crdt import prune as pruning
from crdt.antientropy import AntiEntropyConfig, Books, DeltaBuffer, PeerStream, SendKind
from crdt import buckets
from crdt.digests import DigestStaging, decode_contexts, digest_messages
from crdt.auth import DotSigner, DotVerifier, Policy, check_local_patch, check_plan, own_dot
from crdt.causal import LWW_LEAF, Causal, Head, Patch, Plan
from crdt.codec import (
    Interner,
    decode_object,
    decode_table,
    encode_object,
    pack_payload,
    snapshot as encode_snapshot,
    unpack_payload,
)
from crdt.dots import CausalContext
from crdt.dotstore import entry_at
from crdt.errors import CrdtUsageError
from crdt.hlc import DEFAULT_MAX_AHEAD_MS, HybridClock, Writer
from crdt.transfer import Staging, assemble, fill_known, state_parts
from crdt.values import DEFAULT_LIMITS, SNAPSHOT_LIMITS, Limits

Outgoing = tuple[str, Any]
"""``(peer node id, message)``: the daemon seals the message and sends it to the peer."""
SNAPSHOT_FORMAT = 1
MAX_ROUND_TRIPS = 64
"""Round-trip samples held for ``take_round_trips`` (the shell drains them per message)."""
MAX_OBSERVED = 512


@dataclass(frozen=True, slots=True)
class Observed:
    """One entry of a watched object as a peer sent it, or as it was here until a peer's
    message replaced it. ``verified``: its writer's signature was checked (it was news and
    joined, or it was ours); otherwise the reader must check ``sig`` before
    trusting it (``crdt.auth.write_digest`` over ``name``, ``path`` and ``entry[2:]``)."""

    name: str
    path: tuple[Any, ...]
    entry: tuple[Any, ...]
    sig: bytes | None
    verified: bool
    origin: str


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One replicated object: an empty prototype of its type, and who may write what."""

    proto: Causal
    policy: Policy = Policy.SHARED


@dataclass(slots=True)
class ReplicaStats:
    deltas_applied: int = 0
    deltas_redundant: int = 0
    """Intervals applied that held nothing new: another partner had sent it all first. On a
    flood over a view of degree d about (d - 1) / d of the intervals are."""
    states_applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    unknown_objects: int = 0
    departed_dots_dropped: int = 0
    observed_dropped: int = 0
    wants_refused: int = 0
    messages_out: dict[str, int] = field(default_factory=dict)
    intervals_resent: int = 0
    """Intervals that repeated deltas already in flight (the retransmission timer fired)."""
    states_sent: dict[str, int] = field(default_factory=dict)
    """States sent to peers too far behind: ``full`` (we did not know the peer's context),
    ``elided`` (against its context: only what it lacks), and of either, ``resent`` (the
    last was not acknowledged in time)."""
    written: dict[str, list[int]] = field(default_factory=dict)
    """This node's own writes by object: ``[count, bytes]``, a delta's bytes as a snapshot
    encodes it. Every write crosses each soft-state link of the network once, so summed over
    the nodes these say which object the soft state's traffic is made of."""


class CrdtReplica:
    """All soft state of one node, and its anti-entropy with peers."""

    def __init__(self, node_id: str, schema: Mapping[str, ObjectSpec], *, session: int,
                 signer: DotSigner | None = None,
                 config: AntiEntropyConfig = AntiEntropyConfig(),
                 limits: Limits = DEFAULT_LIMITS,
                 max_clock_ahead_ms: int = DEFAULT_MAX_AHEAD_MS) -> None:
        if signer is not None and signer.replica != node_id:
            raise CrdtUsageError("the signer's node id is not this replica's")
        if not 0 < session < 1 << 64:
            raise CrdtUsageError("session must be a random non-zero 64-bit integer")
        self.node_id = node_id
        self.schema = dict(schema)
        self.objects: dict[str, Causal] = {n: s.proto.empty_like() for n, s in schema.items()}
        self.signer = signer
        self.verifier = DotVerifier(signer.network) if signer is not None else None
        self.limits = limits
        self.hlc = HybridClock(max_clock_ahead_ms)
        self.books = Books(DeltaBuffer(session, config.max_buffer), config)
        self._staging: dict[str, Staging] = {}
        self._digest_staging: dict[str, DigestStaging] = {}
        self.departed: pruning.Departed = {}
        self.stats = ReplicaStats()
        self._watched: set[str] = set()
        self._observed: list[Observed] = []
        self._cover_own: set[str] = set()
        self._rounds = 0
        self._round_trips: deque[tuple[str, int]] = deque(maxlen=MAX_ROUND_TRIPS)

    # -- watching -------------------------------------------------------------------------------

    def watch(self, name: str) -> None:
        """Keep every entry peers send of object ``name`` for ``take_observed``."""
        self.get(name)
        self._watched.add(name)

    def take_observed(self) -> list[Observed]:
        """The entries of watched objects received since the last call, oldest first."""
        out, self._observed = self._observed, []
        return out

    def take_round_trips(self) -> list[tuple[str, int]]:
        """``(peer, ms)``: round trips measured since the last call, each from an interval
        sent once and its acknowledgement (the deltas and their answers already flow, so a
        peer we exchange them with needs no ping for its round trip to be known)."""
        out = list(self._round_trips)
        self._round_trips.clear()
        return out

    def _observe(self, name: str, obj: Causal, incoming: Causal, plan: Plan,
                 origin: str) -> None:
        added = {(e[0], e[1]) for _, e in plan.added}
        self._observe_entries(name, obj, incoming, added, origin)
        for path, e in plan.killed:  # replaced here: the reader may still want to know it
            self._keep(Observed(name, path, e, obj.sigs.get((e[0], e[1])), True, origin))

    def _observe_entries(self, name: str, obj: Causal, incoming: Causal,
                         added: set[tuple[str, int]], origin: str) -> None:
        """Each entry of ``incoming`` but the very ones we hold; ``added``: the dots joined
        now (their signatures were checked)."""
        for path, e in incoming.entries():
            dot = (e[0], e[1])
            if dot not in added and obj.index.get(dot) == path and \
                    entry_at(obj.store, path, dot) == e:
                continue  # the very entry we hold: nothing to see
            self._keep(Observed(name, path, e, incoming.sigs.get(dot), dot in added, origin))

    def _keep(self, seen: Observed) -> None:
        if len(self._observed) >= MAX_OBSERVED:
            self.stats.observed_dropped += 1
        else:
            self._observed.append(seen)

    def _observe_unapplied(self, sender: str, msg: CrdtDelta) -> None:
        """Show the watch the entries of an interval not applied (a gap in its stream). Two
        daemons holding one key (a copied data directory) reach a neighbour under one peer
        id, so it keeps one stream state for both: an interval of one after the other's
        looks like a gap, and the neighbour that dropped it never kept the record the copy
        needed to see to step aside (``daemon.softstate.twins``; an e2e test waited three
        minutes for it in one CI run). Nothing is joined: the watcher checks signatures."""
        if not self._watched or not any(o.name in self._watched for o in msg.objects):
            return
        for name, incoming, _ in self._decode(msg.replicas, msg.objects, elided=False):
            if name in self._watched:
                self._observe_entries(name, self.objects[name], incoming, set(), sender)

    # -- reading --------------------------------------------------------------------------------

    def get(self, name: str) -> Causal:
        """The live object (read it; change it only through ``update``)."""
        try:
            return self.objects[name]
        except KeyError:
            raise CrdtUsageError(f"no replicated object named {name!r}") from None

    @property
    def session(self) -> int:
        return self.books.buffer.session

    # -- local updates --------------------------------------------------------------------------

    def update(self, name: str, fn: Callable[[Any, Writer], Patch], now_ms: int) -> Causal:
        """Run a delta mutator on object ``name`` and commit it; returns the delta."""
        obj = self.get(name)
        w = Writer(self.node_id, self.hlc.now(now_ms))
        patch = fn(obj.view(obj, ()), w)  # a read-only view: only p_* mutators work on it
        if not isinstance(patch, Patch):
            raise CrdtUsageError("update: fn must return a Patch from a p_* delta mutator")
        if name in self._cover_own:
            self._cover_own.discard(name)
            patch.ctx.add_range(self.node_id, 1, patch.ctx.max(self.node_id))
        check_local_patch(obj, patch, self.node_id, self.schema[name].policy)
        dot = own_dot(patch, self.node_id)
        delta = obj.to_delta(patch)
        if self.signer is not None:
            sig, head = self.signer.sign_patch(name, patch, dot)
            if sig is not None:
                delta.sigs[dot] = sig
            delta.heads[self.node_id] = head
        obj.join(delta)
        self.books.buffer.push({name: delta})
        written = self.stats.written.setdefault(name, [0, 0])
        written[0] += 1
        written[1] += len(encode_snapshot(delta))
        return delta

    def reserve_own(self, name: str, counter: int) -> None:
        """Make this node's next write of ``name`` take a dot above ``counter`` and cover
        every dot of ours below it. Another daemon with our key wrote up to ``counter``
        (``daemon.softstate.twins``): our next write must replace its writes everywhere, not
        be dropped by peers as a dot they have already seen."""
        obj = self.get(name)
        top = obj.ctx.max(self.node_id)
        if counter > top:
            obj.ctx.add_range(self.node_id, top + 1, counter)
        self._cover_own.add(name)

    # -- peers ----------------------------------------------------------------------------------

    def on_connect(self, peer: str, now_ms: int, summaries: bool = True) -> list[Outgoing]:
        """Start anti-entropy with ``peer``: our summary now, then every ``digest_every_ms``
        (``summaries``) or ``passive_digest_every_ms`` (it sends us its own)."""
        p = self.books.peer(peer)
        p.connected = True
        p.summaries = summaries
        # Its summary (or digest) answers ours within a round trip or so: until then, or
        # ``compare_wait_ms``, a peer too far behind is not sent a state, which could only be
        # the whole registry. Sending it at once cost every new soft-state link one.
        p.comparing_since = now_ms
        return self._digest(peer, p, now_ms)

    def periodic_summaries(self, peer: str, on: bool) -> None:
        """Whether ``peer`` gets a summary every ``digest_every_ms`` (else every
        ``passive_digest_every_ms``: it sends us its own)."""
        self.books.peer(peer).summaries = on

    def on_disconnect(self, peer: str) -> None:
        p = self.books.peers.get(peer)
        if p is not None:
            p.connected = False
        self._staging.pop(peer, None)
        self._digest_staging.pop(peer, None)

    def on_message(self, sender: str, msg: Any, now_ms: int) -> list[Outgoing]:
        """Handle one message from ``sender`` (the envelope's signer: the relayer)."""
        p = self.books.peer(sender)
        if isinstance(msg, CrdtDelta):
            return self._on_delta(sender, p, msg, now_ms)
        if isinstance(msg, CrdtState):
            return self._on_state(sender, p, msg, now_ms)
        if isinstance(msg, CrdtAck):
            if msg.session == self.session:
                p.stream_end = max(p.stream_end, min(msg.seq, self.books.buffer.head))
            rtt = self.books.on_ack(p, msg.session, msg.seq, now_ms)
            if rtt is not None:
                self._round_trips.append((sender, rtt))
            return []
        if isinstance(msg, CrdtDigest):
            return self._on_digest(p, msg)
        if isinstance(msg, CrdtDigestPart):
            return self._on_digest_part(sender, p, msg)
        if isinstance(msg, CrdtSummary):
            return self._on_summary(sender, p, msg, now_ms)
        if isinstance(msg, CrdtSummaryWant):
            return self._on_want(sender, p, msg, now_ms)
        if isinstance(msg, CrdtSummaryReply):
            return self._on_reply(sender, p, msg)
        raise CrdtUsageError(f"not a CRDT message: {type(msg).__name__}")

    def resting(self) -> bool:
        """Nothing to send any peer on a tick but a periodic digest (``Books.resting``)."""
        return self.books.resting()

    def tick(self, now_ms: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        books = self.books
        for peer, p in books.peers.items():
            if not p.connected:
                continue
            d = books.decide(p, now_ms)
            if d.kind is SendKind.INTERVAL:
                msg, end = self._interval_msg(peer, p, d.seq_from)
                if msg is not None:
                    out.append((peer, msg))
                    if d.seq_from <= p.sent_to:
                        self.stats.intervals_resent += 1
                    books.sent(p, end, now_ms, d.seq_from)
                elif p.needs_state:  # one buffered delta alone is over the budget
                    d = books.decide(p, now_ms)
                elif d.seq_from > p.acked + 1:  # all of it came from this peer; more is in flight
                    p.sent_to = end
                else:  # all of it came from this peer
                    books.on_ack(p, self.session, end)
            if d.kind is SendKind.STATE:
                out += [(peer, m) for m in state_parts(
                    self.objects, p.digest, session=self.session, seq=books.buffer.head,
                    signed=self.signer is not None,
                    max_bytes=books.config.max_message_bytes)]
                books.sent(p, books.buffer.head, now_ms)
                self._count_state(p)
                p.stream_end = books.buffer.head
                p.timing = None  # a state's answer also times its transfer: no round trip
            every = books.config.digest_every_ms if p.summaries else \
                books.config.passive_digest_every_ms
            if now_ms - p.digest_sent_at >= every:
                out += self._digest(peer, p, now_ms)
        books.gc()
        for _, msg in out:
            kind = type(msg).__name__
            self.stats.messages_out[kind] = self.stats.messages_out.get(kind, 0) + 1
        return out

    def _count_state(self, p: PeerStream) -> None:
        """Count a state just sent (``books.sent`` has decided whether it was a resend)."""
        sent = self.stats.states_sent
        kind = "full" if p.digest is None else "elided"
        sent[kind] = sent.get(kind, 0) + 1
        if p.resends:
            sent["resent"] = sent.get("resent", 0) + 1

    # -- building messages ----------------------------------------------------------------------

    def _digest(self, peer: str, p: PeerStream, now_ms: int) -> list[Outgoing]:
        """What we hold, for ``peer``: a bucket summary (``crdt.buckets``), or, without
        summaries, the full digest."""
        if not self.books.config.summaries:
            return self._full_digest(peer, p, now_ms)
        p.digest_sent_at = now_ms
        return [(peer, CrdtSummary(self.session, p.their_session, p.applied,
                                   buckets.summary_objects(self._contexts())))]

    def _contexts(self) -> dict[str, CausalContext]:
        return {n: o.ctx for n, o in self.objects.items()}

    def _full_digest(self, peer: str, p: PeerStream, now_ms: int) -> list[Outgoing]:
        """Our contexts for ``peer``: one message, or parts once they outgrow one."""
        p.digest_sent_at = now_ms
        msgs = digest_messages({n: o.ctx for n, o in self.objects.items()},
                               session=self.session, applied_session=p.their_session,
                               applied_seq=p.applied,
                               max_bytes=self.books.config.max_message_bytes,
                               max_writers=self.limits.max_replicas)
        return [(peer, m) for m in msgs]

    def _needed_heads(self, name: str, delta: Causal) -> dict[str, Head]:
        """Proofs for the delta's covers beyond its own entries (``auth`` rule 2): for each
        such writer, our newest head, which proves every dot of it we hold (we accepted none
        without proof). A peer that already knows those dots does not need them; we do not
        track what each peer knows, so they go along (about 6% more bytes in the signed
        simulator than sending only the proofs a path can be shown to need)."""
        if self.signer is None:
            return {}
        top: dict[str, int] = {}
        for r, c in delta.index:
            if c > top.get(r, 0):
                top[r] = c
        heads = self.objects[name].heads
        return {r: heads[r] for r in delta.ctx.replicas()
                if delta.ctx.max(r) > top.get(r, 0) and r in heads}

    def _strip_departed(self, obj: Causal) -> Causal:
        gone = obj.ctx.replicas() & self.departed.keys()
        if not gone:
            return obj
        self.stats.departed_dots_dropped += 1
        return obj.without_replicas(gone)

    def _delta_msg(self, start: int, end: int, joined: dict[str, Causal]) -> CrdtDelta:
        rep = Interner()
        objs = []
        for name, delta in joined.items():
            delta = self._strip_departed(delta)
            objs.append(CrdtObject(name, pack_payload(encode_object(
                delta, rep, signed=self.signer is not None,
                heads=self._needed_heads(name, delta)))))
        return CrdtDelta(self.session, start, end, tuple(rep.table), tuple(objs))

    def _interval_msg(self, peer: str, p: PeerStream, start: int
                      ) -> tuple[CrdtDelta | None, int]:
        """The next interval for ``peer`` from ``start`` and where it ends, cut to fit the
        message budget. No message if there is nothing to send (it all came from this peer),
        or if one buffered delta alone is too big (then the peer gets a state, in parts)."""
        books = self.books
        start, end, joined = books.interval_for(peer, p, start)
        budget = books.config.max_message_bytes
        while True:
            if not joined:
                return None, end
            # From just after our last message, over deltas that all came from the peer
            # (``PeerStream.stream_end``): the peer sees a stream without a gap.
            msg = self._delta_msg(min(start, p.stream_end + 1), end, joined)
            if _payload_bytes(msg) <= budget:
                p.stream_end = max(p.stream_end, end)
                return msg, end
            if end == start:
                p.needs_state = True
                self.books.note("over_budget")
                return None, end
            end = start + (end - start) // 2
            p.cache = None
            _, _, joined = books.buffer.interval(start - 1, end - start + 1, peer)

    # -- receiving ------------------------------------------------------------------------------

    def _repair(self, peer: str, p: PeerStream, now_ms: int) -> list[Outgoing]:
        self.stats.gaps += 1
        if now_ms - p.digest_sent_at < self.books.config.digest_reply_ms:
            return []
        return self._digest(peer, p, now_ms)

    def _on_delta(self, sender: str, p: PeerStream, msg: CrdtDelta,
                  now_ms: int) -> list[Outgoing]:
        if msg.seq_from < 1 or msg.seq_to < msg.seq_from:
            raise MalformedMessage("CRDT delta interval must have 1 <= seq_from <= seq_to")
        applied = p.applied if msg.session == p.their_session else 0
        if msg.seq_to <= applied:
            self.stats.duplicates += 1
            return [(sender, CrdtAck(msg.session, applied))]
        if msg.seq_from > applied + 1:
            self._observe_unapplied(sender, msg)
            return self._repair(sender, p, now_ms)
        head = self.books.buffer.head
        self._apply(self._decode(msg.replicas, msg.objects, elided=False), now_ms,
                    origin=sender)
        p.their_session, p.applied = msg.session, msg.seq_to  # only once it was accepted
        self.stats.deltas_applied += 1
        if self.books.buffer.head == head:
            self.stats.deltas_redundant += 1
        return [(sender, CrdtAck(msg.session, p.applied))]

    def _on_state(self, sender: str, p: PeerStream, msg: CrdtState,
                  now_ms: int) -> list[Outgoing]:
        parts = [msg]
        if msg.parts != 1 or msg.part != 0:
            staging = self._staging.get(sender)
            if staging is None:
                staging = self._staging[sender] = Staging(self.books.config.max_staged_bytes)
            got = staging.add(msg)
            if got is None:
                return []
            parts = got
        decoded = assemble([x for part in parts
                            for x in self._decode(part.replicas, part.objects, elided=True)])
        if not self._apply(decoded, now_ms, origin=sender):
            return self._repair(sender, p, now_ms)  # sent against a digest we no longer match
        if msg.session != p.their_session:
            p.their_session, p.applied = msg.session, 0
        p.applied = max(p.applied, msg.seq)
        self.stats.states_applied += 1
        return [(sender, CrdtAck(msg.session, msg.seq))]

    def _on_digest(self, p: PeerStream, msg: CrdtDigest) -> list[Outgoing]:
        theirs = decode_contexts(msg.replicas, msg.contexts, self.objects, self.limits)
        return self._digest_in(p, msg.session, msg.applied_session, msg.applied_seq, theirs)

    def _on_digest_part(self, sender: str, p: PeerStream, msg: CrdtDigestPart
                        ) -> list[Outgoing]:
        staging = self._digest_staging.get(sender)
        if staging is None:
            staging = self._digest_staging[sender] = DigestStaging(
                self.books.config.max_staged_bytes)
        parts = staging.add(msg)
        if parts is None:
            return []
        theirs: dict[str, CausalContext] = {}
        for part in parts:
            for name, ctx in decode_contexts(part.replicas, part.contexts, self.objects,
                                             self.limits).items():
                acc = theirs.get(name)
                if acc is None:
                    theirs[name] = ctx
                else:
                    acc.join(ctx)
        return self._digest_in(p, msg.session, msg.applied_session, msg.applied_seq, theirs)

    # -- bucket summaries (``crdt.buckets``) -------------------------------------------------------

    def _on_summary(self, sender: str, p: PeerStream, msg: CrdtSummary,
                    now_ms: int) -> list[Outgoing]:
        """Compare the peer's summary with ours: done at once when all agrees, else ask for
        the buckets that differ (or for its full digest, when most do)."""
        r = buckets.start_round(self._rounds + 1, self._contexts(), msg.objects, self.limits)
        self._rounds += 1  # only once it was accepted: a malformed summary changes nothing
        if msg.session != p.their_session:
            p.their_session, p.applied = msg.session, 0
        self.books.on_position(p, msg.applied_session, msg.applied_seq)
        p.round, p.comparing_since = r, now_ms
        if r is None:
            return [(sender, self._want_full())]
        return self._next_wants(sender, p, r)

    def _want_full(self) -> CrdtSummaryWant:
        name = next(iter(self.objects))
        return CrdtSummaryWant(self._rounds, (CrdtObject(name, pack_payload([list(
            buckets.FULL)])),))

    def _next_wants(self, sender: str, p: PeerStream, r: buckets.Round) -> list[Outgoing]:
        if r.done():
            p.round = None
            p.digest = r.theirs
            self.books.on_compared(p, all(obj.ctx.issubset(r.theirs.get(n, CausalContext()))
                                          for n, obj in self.objects.items()))
            return []
        return [(sender, CrdtSummaryWant(r.id, objs)) for objs in r.wants()]

    def _on_reply(self, sender: str, p: PeerStream, msg: CrdtSummaryReply) -> list[Outgoing]:
        r = p.round
        if r is None or msg.round != r.id:
            return []  # an earlier round's, or duplicated
        if not buckets.absorb_reply(r, self._contexts(), msg.replicas, msg.objects,
                                    self.limits):
            p.round = None
            return [(sender, self._want_full())]
        return self._next_wants(sender, p, r)

    def _on_want(self, sender: str, p: PeerStream, msg: CrdtSummaryWant,
                 now_ms: int) -> list[Outgoing]:
        """Answer the buckets a peer asks for (rate-limited: a want costs little to send and
        its answer more to build)."""
        wants = buckets.decode_wants(msg.objects, self.objects, self.limits)
        cfg = self.books.config
        if any(buckets.FULL in ps for ps in wants.values()):
            if now_ms - p.full_sent_at < cfg.digest_reply_ms:
                self.stats.wants_refused += 1
                return []
            p.full_sent_at = now_ms
            return self._full_digest(sender, p, now_ms)
        if now_ms - p.wants_at >= cfg.digest_every_ms:
            p.wants_at, p.wants = now_ms, 0
        if p.wants >= cfg.max_wants:
            self.stats.wants_refused += 1
            return []
        p.wants += 1
        return [(sender, CrdtSummaryReply(msg.round, table, objs))
                for table, objs in buckets.reply_objects(self._contexts(), wants,
                                                         cfg.max_message_bytes)]

    def _digest_in(self, p: PeerStream, session: int, applied_session: int, applied_seq: int,
                   theirs: dict[str, CausalContext]) -> list[Outgoing]:
        p.round = None  # a full digest settles any open summary round
        if session != p.their_session:
            p.their_session, p.applied = session, 0
        p.digest = theirs
        lacks_nothing = all(obj.ctx.issubset(theirs.get(n, CausalContext()))
                            for n, obj in self.objects.items())
        self.books.on_digest(p, applied_session, applied_seq, lacks_nothing)
        return []

    def _decode(self, replicas: tuple[str, ...], objects: tuple[CrdtObject, ...],
                elided: bool) -> list[tuple[str, Causal, set[tuple[str, int]]]]:
        """Decode a message's objects (caps checked), skipping names not in our schema."""
        if len(objects) > self.limits.max_objects:
            raise MalformedMessage(f"CRDT message carries {len(objects)} objects, the limit "
                                   f"is {self.limits.max_objects}")
        table = decode_table(list(replicas), self.limits)
        out = []
        seen: set[str] = set()
        for o in objects:
            if o.name in seen:
                raise MalformedMessage(f"CRDT message names object {o.name!r} twice")
            seen.add(o.name)
            spec = self.schema.get(o.name)
            if spec is None:
                self.stats.unknown_objects += 1  # a newer node's object: not ours to keep
                continue
            incoming, known = decode_object(spec.proto, unpack_payload(o.data, self.limits),
                                            table, self.limits)
            if known and not elided:
                raise MalformedMessage("a CRDT delta cannot elide entries")
            out.append((o.name, incoming, known))
        return out

    def _apply(self, decoded: list[tuple[str, Causal, set[tuple[str, int]]]], now_ms: int,
               origin: str) -> bool:
        """Check and join every object, or none. False if an elided state names a dot we do
        not know (it was made against an older digest of ours)."""
        plans: list[tuple[str, Causal, Plan]] = []
        for name, incoming, known in decoded:
            spec = self.schema[name]
            obj = self.objects[name]
            if known and not fill_known(obj, incoming, known):
                return False
            incoming = self._strip_departed(incoming)
            plan = obj.diff(incoming)
            check_plan(name, obj, plan, self.verifier, spec.policy)
            if obj.kind.leaf is LWW_LEAF:
                for _, e in plan.added:
                    self.hlc.check((e[2], e[3]), now_ms)
            plans.append((name, obj, plan))
        for name, obj, plan in plans:
            if name in self._watched:
                self._observe(name, obj, plan.other, plan, origin)
        news: dict[str, Causal] = {}
        for name, obj, plan in plans:
            if plan.is_noop():
                continue
            news[name] = obj.effective(plan)
            obj.apply(plan)
            if obj.kind.leaf is LWW_LEAF:
                for _, e in plan.added:
                    self.hlc.observe((e[2], e[3]), now_ms)
        if news:
            self.books.buffer.push(news, origin)
        return True

    # -- pruning (``crdt.prune``) ------------------------------------------------------------

    def stable_point(self, members: Iterable[str]) -> dict[str, dict[str, int]] | None:
        """Per object, the version vector this replica and every member (by its last digest)
        has seen; None while a member has not sent a digest."""
        digests = []
        for m in members:
            if m != self.node_id:
                p = self.books.peers.get(m)
                if p is None or p.digest is None:
                    return None
                digests.append(p.digest)
        return pruning.stable_point(self.objects, digests)

    def prune(self, departed: Iterable[str], stable: Mapping[str, Mapping[str, int]]
              ) -> set[str]:
        """Remove departed nodes' entries where ``stable`` says every member has all of their
        mutations; returns the nodes pruned now (retry the others at a later stable point)."""
        return pruning.prune(self.objects, self.departed, set(departed) - {self.node_id}, stable)

    def readmit(self, node_ids: Iterable[str]) -> None:
        """A pruned node rejoined: accept its new writes, keep its old ones buried. Our digest
        goes to every peer at the next tick, so the node learns at once what of its writes we
        dropped while it was out (instead of at the next periodic digest)."""
        pruning.readmit(self.objects, self.departed, node_ids)
        for p in self.books.peers.values():
            p.digest_sent_at = -(1 << 62)

    # -- persistence ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything to persist (objects, clock, pruned nodes); buffers and peers are not:
        after a restart, digests rebuild them."""
        rep = Interner()
        objs = [[n, o.kind.name, encode_object(o, rep, signed=bool(o.sigs))]
                for n, o in sorted(self.objects.items())]
        departed = [[r, sorted(f.items())] for r, f in sorted(self.departed.items())]
        return packb([SNAPSHOT_FORMAT, self.node_id, list(self.hlc.last), departed, rep.table,
                      objs], maps=False)

    @classmethod
    def restore(cls, data: bytes, schema: Mapping[str, ObjectSpec], *, session: int,
                signer: DotSigner | None = None, **kwargs: Any) -> "CrdtReplica":
        """A replica from ``snapshot`` bytes, with a new anti-entropy session."""
        v = unpackb(data, max_size=1 << 31, max_items=1 << 24)
        if type(v) is not list or len(v) != 6 or v[0] != SNAPSHOT_FORMAT:
            raise MalformedMessage(f"not a replica snapshot of format {SNAPSHOT_FORMAT}")
        _, node_id, last, departed, table, objs = v
        replica = cls(node_id, schema, session=session, signer=signer, **kwargs)
        replica.hlc.wall, replica.hlc.logical = last
        replica.departed = {r: dict(tuple(x) for x in f) for r, f in departed}
        table = decode_table(table, SNAPSHOT_LIMITS)
        for name, kind_name, body in objs:
            spec = schema.get(name)
            if spec is None or spec.proto.kind.name != kind_name:
                raise MalformedMessage(f"snapshot object {name!r} ({kind_name}) does not "
                                       "match the schema")
            replica.objects[name], _ = decode_object(spec.proto, body, table, SNAPSHOT_LIMITS)
        replica.books.buffer.base_state = any(not o.ctx.is_empty()
                                              for o in replica.objects.values())
        return replica


def _payload_bytes(msg: CrdtDelta) -> int:
    return sum(len(o.data) + len(o.name) for o in msg.objects) + 60 * len(msg.replicas)


__all__ = ["MAX_OBSERVED", "ObjectSpec", "Observed", "Outgoing", "CrdtReplica",
           "ReplicaStats"]
