"""One key, one daemon, on the network: the trio shell around ``daemon.softstate.twins``.

The soft-state service owns one ``TwinGuard``. It

- reads every capability entry peers send (``CrdtReplica.watch``): records of this node's own
  id from another instance are judged (``twins.judge``); other nodes' records go to the
  witness book, which logs and counts evidence of a node running twice;
- answers ``/novacron/twin/1``: a peer asks, for its own id, which records of other instances
  we hold; the answer goes back on the asker's own stream, so each of two daemons sharing one
  peer id hears it, whichever connection our other traffic to that id takes;
- asks up to ``ASK_PEERS`` connected peers that question every ``ASK_S`` seconds;
- acts: the earlier daemon names the later in its record's ``rivals`` and writes its record
  at once, with a dot above the later one's, so it replaces the later one's record
  everywhere; the later daemon, once it sees a record of the earlier one naming it, says so
  in one line (log and ``status``) and stops with ``DuplicateIdentity`` (the node's exit
  says the same line and returns non-zero).

Bounded: requests are answered at most once per ``ANSWER_EVERY_S`` per peer, replies are
capped (``twins.MAX_REPLY_BYTES``), the book holds a fixed number of nodes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from crdt import LWWMap
from crdt.auth import DotVerifier
from crdt.replica import CrdtReplica, Observed
from daemon.duplicate import DuplicateIdentity
from daemon.p2p.errors import P2PError
from daemon.p2p.host import P2PHost
from daemon.softstate.twins import (
    SignedRecord, TwinBook, Verdict, decode_reply, decode_request, encode_reply,
    encode_request, judge, signed_winner,
)
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity
from protocol.messages.capability import CapabilityAnnounce

log = logging.getLogger("novacron.softstate.twins")

PROTOCOL = "/novacron/twin/1"
ASK_S = 10.0
ASK_PEERS = 4
ASK_TIMEOUT_S = 10.0
ANSWER_EVERY_S = 1.0
REPORT_S = 15 * 60.0
"""``status`` reports a later daemon with this key until none has been seen for this long."""
STEP_ASIDE_FLUSH_S = 1.0
"""How long a daemon stepping aside lets its status be read and its last frames go."""


class Registry(Protocol):
    """What the guard needs of the soft-state service."""

    identity: NodeIdentity
    network: str
    host: P2PHost
    replica: CrdtReplica

    def record_of(self, node_id: str) -> CapabilityAnnounce | None: ...

    def publish(self, reason: str) -> int: ...


class TwinGuard:
    def __init__(self, service: Registry, caps: str, *, instance: int,
                 started_ms: int, rng: random.Random,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.s = service
        self.caps = caps
        self.me = service.identity.node_id
        self.instance = instance
        self.started_ms = started_ms
        self.rivals: dict[int, SignedRecord] = {}
        """Later instances of our key seen, by instance (the newest four go in our record)."""
        self.book = TwinBook()
        self.verifier = DotVerifier(service.network)
        self.rng = rng
        self.now = now
        self.step_aside: SignedRecord | None = None
        self._stepping = trio.Event()
        """Set with ``step_aside``: what ``run`` waits on."""
        self.rejected = 0
        self._answered: dict[tuple[str, int], float] = {}
        self._rival_seen = -1e18
        self.on_later: Callable[[CapabilityAnnounce], None] = lambda record: None
        """Called each time a later daemon with our key is seen to have written again."""
        service.host.handle_request(PROTOCOL, self._on_request)

    # -- what the record says ---------------------------------------------------------------

    def record_fields(self) -> dict[str, Any]:
        return {"instance": self.instance, "started_ms": self.started_ms,
                "rivals": tuple(self.rivals)[-4:]}

    def _signed_winner(self, node: str) -> SignedRecord | None:
        caps: LWWMap = self.s.replica.get(self.caps)  # type: ignore[assignment]
        return signed_winner(caps, node)

    # -- seeing records ------------------------------------------------------------------------

    def on_observed(self, items: list[Observed]) -> None:
        for o in items:
            if o.name != self.caps or not o.path:
                continue
            try:
                sr = SignedRecord.from_entry(o.path[0], o.entry, o.sig)
            except RemoteProtocolError:
                continue  # a record its writer signed malformed: the registry skips it too
            if sr.node == self.me:
                self.consider(sr, o.verified)
                continue
            self._witness(sr, self._signed_winner(sr.node), o.verified)

    def _witness(self, sr: SignedRecord, w: SignedRecord | None, verified: bool) -> None:
        """Another node's record: keep it if the registry does not (signature checked)."""
        if not self.book.wants(sr, w.record if w else None):
            return
        if not verified and not sr.verify(self.verifier, self.caps):
            self.rejected += 1
            return
        ev = self.book.observe(sr, w)
        if ev is not None:
            log.warning("node %s runs as two daemons with one key (started %s and %s): "
                        "the later one must step aside", ev.node[:16] + "...",
                        _stamp(ev.earlier.record.started_ms),
                        _stamp(ev.later.record.started_ms))

    def consider(self, sr: SignedRecord, verified: bool) -> Verdict:
        """A record of our own id from somewhere: act on it."""
        if sr.record.instance in (0, self.instance):
            return Verdict.NONE
        verdict = judge(self.me, self.instance, self.started_ms, sr.record)
        if verdict is Verdict.NONE:
            return verdict
        if not verified and not sr.verify(self.verifier, self.caps):
            self.rejected += 1
            return Verdict.NONE
        if verdict is Verdict.STEP_ASIDE:
            if self.step_aside is None:
                self.step_aside = sr
                self._stepping.set()
                log.error("%s", self.step_aside_line())
            return verdict
        known = self.rivals.get(sr.record.instance)
        if known is None or known.counter < sr.counter:
            self._rival_seen = self.now()  # it wrote again: still running
            self.on_later(sr.record)
        self.rivals[sr.record.instance] = sr if known is None or known.counter < sr.counter \
            else known
        while len(self.rivals) > 4:
            self.rivals.pop(next(iter(self.rivals)))
        if known is None:
            log.warning("another daemon with this node's key started at %s (%s), after this "
                        "one: it has been told to step aside; this daemon keeps its seat",
                        _stamp(sr.record.started_ms), _where(sr.record))
        mine = self.s.record_of(self.me)
        if known is None or mine is None or mine.instance != self.instance \
                or sr.record.instance not in mine.rivals:
            self.s.replica.reserve_own(self.caps, sr.counter)
            self.s.publish("another daemon with this key started later")
        return verdict

    def step_aside_line(self) -> str:
        other = self.step_aside.record if self.step_aside else None
        where = _where(other) if other else "another address"
        started = _stamp(other.started_ms) if other else "earlier"
        return (f"node {self.me} also runs at {where} (started {started}, before this one): "
                "one key runs one daemon, so this one steps aside. If this data directory is a "
                "copy, start it from an empty data directory (a new key)")

    # -- asking and answering ----------------------------------------------------------------

    async def _on_request(self, peer: str, frame: bytes) -> bytes:
        instance, theirs = decode_request(peer, frame)
        now = self.now()
        last = self._answered.get((peer, instance), -1e9)
        if now - last < ANSWER_EVERY_S:
            return encode_reply([])
        self._answered[(peer, instance)] = now
        if len(self._answered) > 4096:
            self._answered.clear()
        w = self._signed_winner(peer)
        if theirs is not None:
            self._witness(theirs, w, verified=False)
        return encode_reply(self.book.others(peer, instance, w))

    async def ask(self, peer: str) -> None:
        mine = self._signed_winner(self.me)
        if mine is not None and mine.record.instance != self.instance:
            mine = None
        try:
            reply = await self.s.host.request(peer, PROTOCOL,
                                              encode_request(self.instance, mine),
                                              ASK_TIMEOUT_S)
            records = decode_reply(self.me, reply)
        except (P2PError, RemoteProtocolError) as err:
            log.debug("twin question to %s: %r", peer[:16], err)
            return
        for sr in records:
            self.consider(sr, verified=False)

    async def run(self) -> DuplicateIdentity:
        """Ask peers every ``ASK_S``; return (for the caller to raise, outside its tasks)
        the one-line error once this daemon must step aside."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._asking)
            await self._stepping.wait()
            await trio.sleep(STEP_ASIDE_FLUSH_S)
            nursery.cancel_scope.cancel()
        return DuplicateIdentity(self.step_aside_line())

    async def _asking(self) -> None:
        await trio.sleep(1.0)
        while True:
            peers = sorted(self.s.host.connected_peers())
            for peer in self.rng.sample(peers, min(ASK_PEERS, len(peers))):
                await self.ask(peer)
            await trio.sleep(ASK_S)

    def status(self) -> dict[str, Any]:
        recent = self.now() - self._rival_seen < REPORT_S
        later = sorted(self.rivals.values(), key=lambda r: r.record.started_ms) if recent else []
        return {
            "instance": f"{self.instance:016x}", "started_ms": self.started_ms,
            "later_daemons_with_this_key": [
                {"instance": f"{r.record.instance:016x}", "started_ms": r.record.started_ms,
                 "listen": [a.split("/p2p/")[0] for a in r.record.listen_addrs[:4]]}
                for r in later],
            "stepping_aside": self.step_aside is not None,
            "twins_witnessed": self.book.evidence, "twin_records_rejected": self.rejected,
        }


def _where(r: CapabilityAnnounce) -> str:
    return ", ".join(a.split("/p2p/")[0] for a in r.listen_addrs[:2]) or "an unknown address"


def _stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000)) if ms else "?"
