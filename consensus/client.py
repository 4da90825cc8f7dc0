"""A PBFT client: one outstanding request at a time, done when f+1 replicas give the same reply.

It sends a request to the primary it believes in (to every member in a committee that takes
pre-prepares by reference: ``consensus.replica``), and after ``retry`` seconds without a
result re-sends it to every replica, which makes backups forward it and start their
view-change timers if the primary is faulty. A re-send is the same signed bytes (sealed again
only under a new id or epoch): a primary orders the copy it got first, and a backup rebuilds a
pre-prepare by reference from the hash of those bytes, so a copy sealed afresh (a new
timestamp) looked like another request to every member holding the first, and each asked the
primary for the whole batch. f+1 matching replies
include one from a correct replica, so the result is the committed one.

Each further re-send of the same request waits twice as long, up to ``max_retry``: the first
one is what recruits the backups, and later ones only help a committee that lost it. A fixed
0.5 s made every member of a 19-member committee that could not commit yet (members still
dialling each other) sign and send 38 frames a second for its own ledger requests alone,
keeping busy the very members that were trying to form the committee.

The first re-send waits for the committee's own pace, as TCP's retransmission timeout follows
its round trip (RFC 6298): ``srtt + 4 x rttvar`` of the client's recent requests (submission to
result), never below ``retry`` nor above ``max_retry``. A fixed 0.5 s sent every request of a
busy 19-member committee on 50-300 ms lines to all members (each forwarding it to the primary
and starting a view-change timer) though it would have committed in a second or two. As in TCP
(Karn's rule), only a request that finished without a re-send is a sample: one that needed its
re-send measures the re-send, not the committee (a first send to a member that is no longer
primary is answered only after it), and sampling those drove the wait up on itself. In a committee
that takes pre-prepares by reference (below), also as in TCP (RFC 6298 5.5-5.7), the backed-off
wait is kept for the next request until one finishes without a re-send: a committee slower
than the wait re-sends every request (none is a sample), so a wait that fell back to the base
after each was never learned. On a 30-daemon WAN testnet every client stayed at 0.5 s while
requests took 45-76 s, and each one went to all 19 members about a dozen times. Where the
client sends to the primary alone, its first send can go to a replica that is no longer
primary (a reply names the view it was sent in); there the next request starts from the
learned wait again, or a stale view would cost every later request the backed-off wait.

In a committee that takes pre-prepares by reference the first send already went to every
member, which holds the request and forwards it to the primary itself if it is not ordered in
time. A re-send there only replaces copies lost on the way (a connection cut), so each goes to
the next f+1 members in turn (one of them correct), not to all: whole requests re-sent to all
19 members were the largest thing on a 0.65 Mbit/s uplink of a 30-daemon WAN testnet (5 MB in
two minutes, over half the line).

A client on a committee member (a daemon submitting to a shard it serves) also takes its own
replica's reply alone: a replica replies only once it has executed the request at a committed
sequence number, and the node trusts its own replica as it trusts itself. That saves the half
round trip of waiting for a second member's reply (PBFT commit latency from a member: about 2
round trips instead of 2.5). The other members therefore send it no reply when they execute
its request, only when it re-sends one they executed (``Replica._replies_to``): a client whose
own replica lags gets f+1 replies that way. Pure, like the replica: ``submit``, ``receive`` and ``tick`` return actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.actions import Action, Send
from consensus.config import ReplicaConfig, in_turn
from consensus.crypto import Signer
from protocol.envelope import Envelope
from protocol.messages.pbft import Reply, Request


BY_REFERENCE_MAX_RETRY = 32.0
"""Longest wait between re-sends where every member got the first send (module docstring):
at 8 s, a committee stalled for minutes was sent each pending request (up to 48 KiB) every
8 s by every client, 126 MB in three minutes of a 30-daemon WAN testnet."""


@dataclass(frozen=True, slots=True)
class Done:
    """The request finished: ``result`` is what f+1 replicas replied."""

    request_id: int
    result: bytes
    submitted_at: float
    done_at: float


class Client:
    __slots__ = ("cfg", "signer", "base_retry", "retry", "max_retry", "wait", "next_id",
                 "current", "op", "sent_at", "first_at", "replies", "view", "now", "done",
                 "srtt", "rttvar", "resent", "resends", "raw")

    def __init__(self, config: ReplicaConfig, signer: Signer, *, retry: float = 0.5,
                 max_retry: float = 8.0, first_request_id: int = 1) -> None:
        if not 0 < retry <= max_retry:
            raise ValueError("need 0 < retry <= max_retry")
        self.cfg = config
        self.signer = signer
        self.base_retry = retry
        self.retry = retry
        """Seconds from a request's first send to its first re-send (``_sample`` adapts it)."""
        self.max_retry = max_retry
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.resent = False
        """The request in flight was re-sent (its time is then no sample: Karn's rule)."""
        self.resends = 0
        """Re-sends so far (by reference: which members the next one goes to)."""
        self.wait = retry
        """Seconds from the last send of the current request to its next re-send."""
        self.next_id = first_request_id
        self.current: int | None = None
        self.op = b""
        self.raw = b""
        """The current request, sealed once (re-sends repeat these bytes)."""
        self.sent_at = 0.0
        self.first_at = 0.0
        self.replies: dict[int, bytes] = {}
        self.view = 0
        self.now = 0.0
        self.done: list[Done] = []

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, operation: bytes, now: float) -> list[Action]:
        if self.current is not None:
            raise ValueError("one request at a time: wait for the previous result")
        self.now = now
        self.current, self.next_id = self.next_id, self.next_id + 1
        self.op, self.replies = operation, {}
        self.first_at = self.sent_at = now
        self.resent = False
        self.resends = 0
        self.wait = self.retry
        raw = self.raw = self._sealed()
        if self.cfg.by_reference:  # the primary sends its batches by reference: all need it
            return [Send(pk, raw) for pk in self.cfg.committee]
        primary = self.cfg.committee[self.cfg.primary(self.view)]
        return [Send(primary, raw)]

    def _sealed(self) -> bytes:
        assert self.current is not None
        return self.signer.seal(Request(self.cfg.shard, self.cfg.epoch, self.current, self.op),
                                self.now)

    def receive(self, env: Envelope, now: float | None = None) -> list[Action]:
        if now is not None:
            self.now = max(self.now, now)
        m = env.body
        idx = self.cfg.index_of(env.sender)
        if not isinstance(m, Reply) or idx is None or m.request_id != self.current or \
                (m.shard, m.epoch) != (self.cfg.shard, self.cfg.epoch):
            return []
        self.replies[idx] = m.result
        self.view = max(self.view, m.view)
        own = self.cfg.committee[idx] == self.signer.public_key
        if own or sum(1 for r in self.replies.values() if r == m.result) >= self.cfg.f + 1:
            self.done.append(Done(m.request_id, m.result, self.first_at, self.now))
            self.current = None
            if not self.resent:
                self._sample(self.now - self.first_at)
            elif self.cfg.by_reference:  # no sample (Karn): keep the backed-off wait
                self.retry = max(self.retry, min(self.wait, self.max_retry))
        return []

    def _sample(self, took: float) -> None:
        """Learn the committee's pace from one request (RFC 6298's estimator, its gains)."""
        if took < 0:
            return
        if self.srtt is None:
            self.srtt, self.rttvar = took, took / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - took)
            self.srtt = 0.875 * self.srtt + 0.125 * took
        self.retry = min(max(self.base_retry, self.srtt + 4 * self.rttvar), self.max_retry)

    def renumber(self, at_least: int) -> None:
        """Take request ids above ``at_least`` from now on, the request in flight included (its
        next retry goes at once, under its new id). Replicas ignore a client's ids at or below
        the last one they executed for its key, so when another daemon signed requests with
        this node's key (a copy of its data directory, ``daemon.softstate.twins``) from ids
        above ours, this is how the node's own requests get through again."""
        if self.next_id <= at_least:
            self.next_id = at_least + 1
        if self.current is not None and self.current <= at_least:
            self.current, self.next_id = self.next_id, self.next_id + 1
            self.replies, self.raw = {}, b""
            self.sent_at, self.wait = self.now - self.retry, self.retry

    def reconfigure(self, config: ReplicaConfig, now: float) -> list[Action]:
        """Follow the shard to its next epoch's committee; a request cut off by the epoch change
        is re-sent there with the same id (the handed-over state de-duplicates it)."""
        self.cfg, self.view, self.now, self.replies = config, 0, max(self.now, now), {}
        if self.current is None:
            return []
        self.sent_at, self.wait = self.now, self.retry
        raw = self.raw = self._sealed()
        return [Send(pk, raw) for pk in self.cfg.committee]

    def tick(self, now: float) -> list[Action]:
        self.now = max(self.now, now)
        if self.current is None or now - self.sent_at < self.wait:
            return []
        self.sent_at = now
        cap = max(self.max_retry, BY_REFERENCE_MAX_RETRY) if self.cfg.by_reference \
            else self.max_retry
        self.wait = min(2 * self.wait, cap)
        self.resent = True
        raw = self.raw = self.raw or self._sealed()
        return [Send(pk, raw) for pk in self._resend_targets()]

    def _resend_targets(self) -> list[bytes]:
        """All members; by reference, the next f+1 of them in turn (module docstring)."""
        if not self.cfg.by_reference:
            return list(self.cfg.committee)
        self.resends += 1
        return in_turn(self.cfg.committee, self.resends - 1, self.cfg.f + 1)
