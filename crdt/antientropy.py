"""Delta-interval anti-entropy: delta buffers, acknowledgements, digests, full-state fallback.

Theory of operation
-------------------
This is Algorithm 2 of Almeida, Shoker and Baquero (causal delta-interval anti-entropy) with
the additions a real network needs. One ``DeltaBuffer`` per replica holds, numbered within a
*session* (picked at start-up, so numbers never need to survive a restart), every delta this
replica joined: its own mutations and the *effective* part of what peers sent (only what was
news here, so nothing is echoed back and forth). Each peer gets the *interval* of buffered
deltas after the last one it acknowledged, joined into one delta per object; it acknowledges
the interval's end. Because a peer always receives every delta after its acknowledgement in
one piece, and a receiver applies an interval only if it starts at or before its position in
that sender's stream, a receiver never holds a mutation without what came before it there.
So the causal context of every replica is *complete*: if a dot is in it, the whole mutation
(its entry and everything it covered) was applied. That is what makes digests exact.

Buffers are bounded: deltas every connected peer acknowledged are dropped, and past
``max_buffer`` the oldest go. A peer whose acknowledgement falls below the oldest buffered
delta is *too far behind* and gets a state instead (as Akka Distributed Data does): the full
state, or, when we hold the peer's digest, only the entries its context lacks plus the list
of live dots it already has (an *elided* state: the same join, without resending values the
peer holds).

On (re)connect both sides send a ``Digest``: their causal contexts and how far they got in
the other's stream. If our contexts are all inside the peer's, it lacks nothing of ours;
otherwise it gets intervals if our buffer still reaches back to its position, else a state.
Digests also repair a lost position: a receiver that cannot apply an interval (it lost state,
or the sender thinks it has more than it has) answers with a digest, which resets the sender's
idea of its position.

This module keeps the books and decides what to send; ``replica`` builds and reads messages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from crdt.buckets import Round
from crdt.causal import Causal
from crdt.dots import CausalContext


@dataclass(frozen=True, slots=True)
class AntiEntropyConfig:
    max_buffer: int = 1024
    """Deltas kept for peers that have not acknowledged them; older ones fall back to state."""
    max_interval: int = 256
    """Buffered deltas joined into one message."""
    retransmit_ms: int = 400
    """Resend an unacknowledged interval or state after this long; each resend in a row
    without an acknowledgement doubles the wait, up to ``max_backoff`` doublings (Karn)."""
    max_backoff: int = 5
    digest_every_ms: int = 30_000
    """Send each connected peer a digest this often (repairs anything lost)."""
    digest_reply_ms: int = 200
    """At most one repair digest per peer this often."""
    max_message_bytes: int = 900_000
    """Budget for one message's object payloads (the envelope cap is 1 MiB); larger intervals
    are cut, larger states go in parts."""
    max_staged_bytes: int = 64 << 20
    """Parts of one peer's multi-part state held until the last one arrives."""
    passive_digest_every_ms: int = 300_000
    """A peer that sends us its own summaries gets ours this often: fresh enough for its
    stable point (``crdt.prune``), ten times rarer than ``digest_every_ms``."""
    summaries: bool = True
    """Send bucket summaries (``crdt.buckets``) where a digest was due; False: the full
    digest, as every node did before summaries (``CrdtDigest`` is still understood)."""
    state_retransmit_ms: int = 4_000
    """A state unacknowledged this long goes again (doubling as intervals do), or after the
    peer's interval timeout if that is longer. States are the largest messages (the whole
    registry, or all but what the peer holds) and their acknowledgement times no round trip:
    at the intervals' 400 ms, a state on a loaded sub-Mbit uplink went two and three times.
    The stream is reliable; a resend only replaces a frame the host could not queue."""
    compare_wait_ms: int = 3_000
    """A state for a peer too far behind waits this long for the peer's context (a summary
    round or its full digest in flight), so that it carries only what the peer lacks."""
    max_wants: int = 64
    """Summary wants answered per peer per ``digest_every_ms`` (a round needs a few)."""


class SendKind(Enum):
    NOTHING = "nothing"
    INTERVAL = "interval"
    STATE = "state"


@dataclass(slots=True)
class PeerStream:
    """Everything this replica knows about one peer."""

    connected: bool = False
    summaries: bool = True
    """We send this peer a summary every ``digest_every_ms``. False for a peer that sends us
    its own (it compares both replicas; our deltas to it are acknowledged): it gets ours
    every ``passive_digest_every_ms`` only, about one periodic summary per link instead of
    two."""
    acked: int = 0
    """The highest of our sequence numbers (this session) the peer has."""
    sent_to: int = -1
    sent_at: int = -(1 << 62)
    needs_state: bool = False
    digest: dict[str, CausalContext] | None = None
    """The peer's contexts from its last digest (for elided states)."""
    their_session: int = 0
    applied: int = 0
    """How far we applied the peer's stream in ``their_session``."""
    stream_end: int = 0
    """Where our messages to the peer end, in the order it takes them (the last interval's or
    state's end; a position the peer reported). The next interval starts right after it: the
    deltas in between all came from the peer, and an interval leaves those out, but starting
    it after them showed the peer a gap, which it answers with a summary that sets our
    position back and sends what was in flight again (``CrdtReplica._interval_msg``)."""
    attested: int = 0
    """How far the peer had applied our stream (this session) when it built the summary or
    digest we last compared with: acknowledgements may have moved ``acked`` on since."""
    digest_sent_at: int = -(1 << 62)
    round: Round | None = None
    """Our open reconciliation against the peer's last summary (``crdt.buckets``)."""
    comparing_since: int | None = None
    """Since when we wait for the peer's context (a summary round, its full digest)."""
    full_sent_at: int = -(1 << 62)
    wants_at: int = -(1 << 62)
    wants: int = 0
    """Wants answered since ``wants_at`` (rate limit)."""
    cache: tuple[int, int, dict[str, Causal]] | None = None
    """The last interval built for this peer ``(start, end, joined)``: extended, not rebuilt,
    while the peer's acknowledgement stays put."""
    resends: int = 0
    """Sends in a row while what we sent before was still unacknowledged (``Books.decide``)."""
    timing: tuple[int, int] | None = None
    """``(end, sent at)`` of an interval or state sent once and not yet acknowledged: its
    acknowledgement is a round-trip sample (``Books.on_ack``). Cleared when it is sent again
    (Karn's rule: the acknowledgement of a retransmission could answer either copy)."""
    srtt: float | None = None
    rttvar: float = 0.0
    """Smoothed round trip to the peer's acknowledgements and its variation (ms, RFC 6298)."""


@dataclass(slots=True)
class SendDecision:
    kind: SendKind
    seq_from: int = 0
    seq_to: int = 0


class DeltaBuffer:
    """Numbered deltas of one session: ``push`` appends, ``interval`` joins a range."""

    __slots__ = ("session", "head", "low", "_items", "max_size", "base_state")

    def __init__(self, session: int, max_size: int, base_state: bool = False) -> None:
        self.session = session
        self.base_state = base_state
        """The session started from a non-empty state (a restored snapshot) that is in no
        delta: a peer with nothing of this session needs a state, not intervals."""
        self.head = 0
        """Sequence number of the newest delta (0: none yet)."""
        self.low = 1
        """Sequence number of the oldest delta still buffered (``head + 1`` when empty)."""
        self._items: deque[tuple[str | None, dict[str, Causal]]] = deque()
        self.max_size = max_size

    def __len__(self) -> int:
        return len(self._items)

    def push(self, deltas: dict[str, Causal], origin: str | None = None) -> int:
        """Append; ``origin`` is the peer the deltas came from (None: our own mutation)."""
        self.head += 1
        self._items.append((origin, deltas))
        while len(self._items) > self.max_size:
            self._items.popleft()
            self.low += 1
        return self.head

    def covers(self, after: int) -> bool:
        """True if a peer that has our stream up to ``after`` can catch up from the buffer."""
        if after == 0 and self.base_state:
            return False
        return after + 1 >= self.low

    def interval(self, after: int, limit: int, peer: str | None = None
                 ) -> tuple[int, int, dict[str, Causal]]:
        """Deltas ``after + 1 .. min(head, after + limit)`` joined per object, leaving out
        those that came from ``peer`` (it has them: no back-propagation)."""
        start = after + 1
        end = min(self.head, after + limit)
        joined: dict[str, Causal] = {}
        for i in range(start - self.low, end - self.low + 1):
            origin, deltas = self._items[i]
            if origin is not None and origin == peer:
                continue
            for name, delta in deltas.items():
                acc = joined.get(name)
                if acc is None:
                    joined[name] = delta.copy()
                else:
                    acc.join(delta)
        return start, end, joined

    def gc(self, acked_by_all: int) -> None:
        """Drop deltas every peer that matters has."""
        while self._items and self.low <= acked_by_all:
            self._items.popleft()
            self.low += 1


@dataclass(slots=True)
class Books:
    """The anti-entropy state of one replica: its buffer and its peers."""

    buffer: DeltaBuffer
    config: AntiEntropyConfig
    peers: dict[str, PeerStream] = field(default_factory=dict)
    state_reasons: dict[str, int] = field(default_factory=dict)

    def note(self, why: str) -> None:
        """Count why a peer came to need a state (``status``: ``softstate.crdt
        .state_reasons``): behind our buffer, lacking dots it had applied, over budget."""
        self.state_reasons[why] = self.state_reasons.get(why, 0) + 1

    def resting(self) -> bool:
        """Whether ``decide`` has nothing for any connected peer, and will have nothing until
        a new delta is buffered or a message comes: each has every buffered delta
        acknowledged and needs no state. Only the periodic digests then fall due
        (``digest_every_ms``), so the caller may tick rarely until it writes or hears
        something (``daemon.softstate.service``)."""
        head = self.buffer.head
        return all(not p.connected or (p.acked >= head and not p.needs_state)
                   for p in self.peers.values())

    def peer(self, name: str) -> PeerStream:
        p = self.peers.get(name)
        if p is None:
            p = self.peers[name] = PeerStream()
        return p

    def decide(self, p: PeerStream, now_ms: int) -> SendDecision:
        """What to send ``p`` on this tick."""
        buf, cfg = self.buffer, self.config
        # Each resend of an unacknowledged interval waits twice as long as the last. A fixed
        # 400 ms sent each peer the same deltas again and again wherever an acknowledgement
        # takes longer: a 100 KB interval needs 1.3 s on a 0.6 Mbit/s uplink. Thirty nodes
        # forming over such lines sent 10-75 MB each in six minutes, their uplinks dropped
        # packets, and dials and pings timed out on the full queues. (Holding new deltas
        # back while an interval is unacknowledged helped more, but changed what the CRDT
        # simulation's forgers achieve in ways not yet understood: not landed.)
        backoff = 1 << min(p.resends, cfg.max_backoff)
        due = now_ms - p.sent_at >= self.rto(p) * backoff
        if p.needs_state or (p.acked < buf.head and not buf.covers(p.acked)):
            if not p.needs_state:
                self.note("behind_buffer")
            p.needs_state = True
            if p.comparing_since is not None and \
                    now_ms - p.comparing_since < cfg.compare_wait_ms:
                return SendDecision(SendKind.NOTHING)  # its context is on the way
            wait = max(self.rto(p), float(cfg.state_retransmit_ms)) * backoff
            return SendDecision(SendKind.STATE, 0, buf.head) if now_ms - p.sent_at >= wait \
                else SendDecision(SendKind.NOTHING)
        if p.acked >= buf.head:
            return SendDecision(SendKind.NOTHING)
        end = min(buf.head, p.acked + cfg.max_interval)
        if p.sent_to >= end and not due:
            return SendDecision(SendKind.NOTHING)
        if not due and p.acked < p.sent_to:
            # New deltas while an interval is on its way: send only what follows it. The
            # stream is ordered, so the peer applies the two in turn (one that lost the first
            # sees a gap and answers with a digest, which resets our position). Sending from
            # ``acked`` each time carried every unacknowledged delta again with each new one:
            # on a 30-daemon planet testnet a seed with 29 soft-state partners sent 73 MB in
            # 13 minutes, its 1 Mbit/s uplink queued for seconds, so acknowledgements came
            # later still and each interval grew: its round trips reached 50 s.
            return SendDecision(SendKind.INTERVAL, p.sent_to + 1, end)
        return SendDecision(SendKind.INTERVAL, p.acked + 1, end)

    def rto(self, p: PeerStream) -> float:
        """The wait (ms) before an unacknowledged interval goes again, before back-off:
        ``retransmit_ms``, or TCP's ``srtt + 4 x rttvar`` of the peer's acknowledgements if
        that is longer (RFC 6298). The stream is ordered and reliable while it lasts, so a
        resend only replaces what a broken stream lost; at a fixed 400 ms every interval
        went again while a slow uplink's queue held it, and the copies lengthened the queue."""
        if p.srtt is None:
            return float(self.config.retransmit_ms)
        return max(float(self.config.retransmit_ms), p.srtt + 4 * p.rttvar)

    def interval_for(self, name: str, p: PeerStream, start: int | None = None
                     ) -> tuple[int, int, dict[str, Causal]]:
        """The interval to send peer ``name`` now (from ``start``, default just after what it
        acknowledged), reusing the last one built for it."""
        buf = self.buffer
        start = p.acked + 1 if start is None else start
        end = min(buf.head, p.acked + self.config.max_interval)
        c = p.cache
        if c is not None and c[0] == start and c[1] <= end and buf.covers(start - 1):
            joined = c[2]
            if c[1] < end:
                _, _, more = buf.interval(c[1], end - c[1], name)
                for obj_name, delta in more.items():
                    acc = joined.get(obj_name)
                    if acc is None:
                        joined[obj_name] = delta
                    else:
                        acc.join(delta)
        else:
            _, _, joined = buf.interval(start - 1, end - start + 1, name)
        p.cache = (start, end, joined)
        return start, end, joined

    def sent(self, p: PeerStream, upto: int, now_ms: int, start: int | None = None) -> None:
        """We sent ``p`` our stream up to ``upto``, from ``start`` (default: from what it
        acknowledged). An interval that only follows what is in flight leaves the
        retransmission timer alone: it runs from the last send of the oldest unacknowledged
        delta, as TCP's does from its oldest unacknowledged segment, or a stream of new
        deltas would keep it from ever firing or, firing, resend everything each time."""
        if start is not None and start > max(p.sent_to, p.acked + 1):
            if upto > p.sent_to and p.timing is None:
                p.timing = (upto, now_ms)
            p.sent_to = max(p.sent_to, upto)
            return
        p.resends = p.resends + 1 if p.sent_to > p.acked else 0
        if upto > p.sent_to:
            p.timing = (upto, now_ms)
        elif p.timing is not None and p.timing[0] <= upto:
            p.timing = None  # a retransmission: its acknowledgement is no sample
        p.sent_to = upto
        p.sent_at = now_ms

    def on_ack(self, p: PeerStream, session: int, seq: int,
               now_ms: int | None = None) -> int | None:
        """Note the peer has our stream up to ``seq``. Returns a round trip (ms) when this
        acknowledges an interval sent once at a known time (``now_ms`` given), else None:
        the soft state then needs no pings to peers it exchanges deltas with."""
        if session != self.buffer.session or seq > self.buffer.head:
            return None
        rtt = None
        t = p.timing
        if t is not None and seq >= t[0] and now_ms is not None:
            p.timing = None
            rtt = now_ms - t[1]
            if p.srtt is None:
                p.srtt, p.rttvar = float(rtt), rtt / 2
            else:
                p.rttvar = 0.75 * p.rttvar + 0.25 * abs(p.srtt - rtt)
                p.srtt = 0.875 * p.srtt + 0.125 * rtt
        if seq > p.acked:
            p.acked = seq
        if p.needs_state and self.buffer.covers(p.acked):
            p.needs_state = False
            p.sent_at = -(1 << 62)  # what came after the state can go at once
        return rtt

    def on_digest(self, p: PeerStream, applied_session: int, applied: int,
                  lacks_nothing: bool) -> None:
        """A digest resets what we believe the peer has of our stream."""
        self.on_position(p, applied_session, applied)
        self.on_compared(p, lacks_nothing)

    def on_position(self, p: PeerStream, applied_session: int, applied: int) -> None:
        """A digest's or summary's word on how far the peer applied our stream."""
        head = self.buffer.head
        p.acked = min(applied, head) if applied_session == self.buffer.session else 0
        p.attested = p.stream_end = p.acked
        p.cache = None
        p.timing = None  # what is in flight may be sent again: its acknowledgement is ambiguous
        p.sent_to = -1
        p.sent_at = -(1 << 62)

    def on_compared(self, p: PeerStream, lacks_nothing: bool) -> None:
        """Our contexts were compared with the peer's (a digest, or a finished summary round)."""
        p.comparing_since = None
        head = self.buffer.head
        if lacks_nothing:
            p.acked = head
            p.needs_state = False
        else:
            # It lacks something. If it is still in flight, deltas from ``acked`` bring it; if
            # the peer had applied our whole stream when it described its replica and still
            # lacked it, it dropped those dots (a writer it had pruned, re-admitted since):
            # only a state against its digest helps. ``attested``, not ``acked``: a summary
            # round takes round trips, and deltas sent before it ends are acknowledged while it
            # runs. Comparing with ``acked`` took every delta in flight when a summary was
            # built for dots the peer dropped: on a 30-daemon ``planet`` testnet during a job,
            # nearly every periodic summary sent a state.
            p.needs_state = p.attested >= head or not self.buffer.covers(p.acked)
            if p.needs_state:
                self.note("lacks_applied" if p.attested >= head else "lacks_behind_buffer")

    def gc(self) -> None:
        acks = [p.acked for p in self.peers.values() if p.connected]
        if acks:
            self.buffer.gc(min(acks))


__all__ = ["AntiEntropyConfig", "Books", "DeltaBuffer", "PeerStream", "SendDecision",
           "SendKind"]
