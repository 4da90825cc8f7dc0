"""Soft state on the wire: the nodes' capability records, as a CRDT kept in sync by anti-entropy.

The registry is an owner-keyed ``LWWMap`` (``crdt``): node k writes only its own record, under
key k, and every write carries k's signature on its dot, so a record can be relayed by anyone
and forged by no one. Anti-entropy (delta intervals, acknowledgements, bucket summaries on
connect, full state when a peer is too far behind) runs over direct streams, protocol
``/novacron/crdt/3`` (version 2: summaries, ``crdt.buckets``; 3: unsigned channel frames,
``protocol.envelope``), one envelope per message: per-peer acknowledgements are what the
delta-interval protocol needs, and a direct stream costs a fraction of a GossipSub message.
It runs with the overlay's links only, not with every connection (``daemon.softstate
.partners``), and each acknowledged delta times its link for the host's round-trip table
(``daemon.p2p.rtt``), which then pings only the rest.

The node rewrites its own record at start, when its facts change (listen addresses, an
attestation), and, unchanged, every ``refresh_period``; a change of load (task slots in use)
writes only a small entry of its own (``daemon.softstate.load``). The refresh period is 5
minutes in a small network, longer as it grows (6 s per node known, at most 8 hours and a
third of the eviction silence), so that relaying everyone's unchanged records costs a node
the same whatever the size of the network; readers take a record for a live node for two
such periods. It persists the replica after each local write (a node that lost its snapshot
must not write before it has caught up, or it could reuse a dot).

Records name the daemon's instance (random per start), its start time and the later daemons
with this key it has seen: ``daemon.softstate.twins`` explains how two daemons holding one key
find each other through the soft state, and ``twin_guard`` how the later one steps aside.

The registry also answers a full node's peer exchange (``daemon.softstate.exchange``): the
records of the peers it tells of, as their writers signed them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Callable
from typing import Any, Protocol

import trio

from crdt import AntiEntropyConfig, CrdtReplica, LWWMap, ObjectSpec, Policy
from crdt.auth import DotSigner, DotVerifier
from daemon.attest.report import AttestationReport
from daemon.capabilities import (
    AvailabilityRecorder, build_record, machine_memory_mib, offered_runtimes,
    record_from_wire, record_to_wire,
)
from daemon.clock import Clock, SystemClock
from daemon.control.params import get, only
from daemon.control.jsonrpc import invalid_params
from daemon.control.server import ControlServer
from daemon.p2p.host import P2PHost
from daemon.runtime.pool import runtime_id
from daemon.softstate import exchange
from daemon.softstate.candidates import to_candidates, with_link_costs
from daemon.softstate.links import LINKS, LinkBook
from daemon.softstate.load import LOAD, LoadBook
from daemon.softstate.partners import Partners
from daemon.softstate.twin_guard import TwinGuard
from daemon.softstate.twins import signed_winner
from daemon.softstate.plan import (LOAD_REPUBLISH_S, MEMBERSHIP_SCAN_S, PERSIST_S,  # noqa: F401
                                   REFRESH_S, TickPlanner, load_period, refresh_period)
from daemon.storage.db import Database
from daemon.tick import RestingTick
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import NodeId, NodeIdentity, public_key_from_node_id
from protocol.messages.capability import CapabilityAnnounce
from protocol.messages.crdt import CrdtDigest, CrdtSummary

ENVELOPE_MARGIN = 4096
"""Bytes a signed envelope adds around a soft-state message (sender, nonce, time, signature)."""
log = logging.getLogger("novacron.softstate")
MAX_LINKS_REPLY = 512
"""Predicted links one ``links`` answer carries (about 100 KB)."""

PROTOCOL = "/novacron/crdt/3"
TICK_S = 0.1
"""The tick while anti-entropy has work in flight: deltas written or received meanwhile go
out together on the next tick (one interval per peer, not one per delta)."""
REST_TICK_S = 1.0
"""The tick while it has none (``CrdtReplica.resting``: every partner has every delta we
buffered): only digests (every 30 s), the planner's timers (seconds apart) and a change of
load or addresses (written seconds apart, ``plan``) can fall due, and a write of our own, a
message or a new partner wakes the loop at once. An idle daemon ticked ten times a second,
a third of the wake-ups of the whole process; a delta now leaves at once when it is the
first after a rest, where it used to wait for the next tick."""
TWIN_ID_MARGIN_MS = 120_000
CAPS = "caps"
SCHEMA = {CAPS: ObjectSpec(LWWMap(), Policy.OWNER_KEYED),
          LINKS: ObjectSpec(LWWMap(), Policy.OWNER_KEYED),
          LOAD: ObjectSpec(LWWMap(), Policy.OWNER_KEYED)}
"""Capability records, every node's link summary (``daemon.softstate.links``) and its load
(``daemon.softstate.load``)."""
_NS = "softstate"


class HardState(Protocol):
    """The committees, as the soft state sees them."""

    def current_members(self) -> tuple[bytes, ...]: ...

    def membership(self) -> tuple[set[str], set[str]]: ...

    def renumber_requests(self, at_least: int) -> None: ...


class Attester(Protocol):
    def build_report(self) -> AttestationReport:
        """This machine's attestation report (blocking: run in a thread)."""


class SoftStateService:
    name = "softstate"

    def __init__(self, identity: NodeIdentity, network: str, host: P2PHost, db: Database, *,
                 slots: int, memory_mib: int, domain: str, load: Callable[[], int],
                 clock: Clock | None = None) -> None:
        self.identity = identity
        self.clock: Clock = clock or SystemClock()
        self.network = network
        self.host = host
        self.db = db
        self.slots = slots
        self.memory_mib = memory_mib or machine_memory_mib()
        self.domain = domain or identity.node_id
        self.load_fn = load
        self._planner: TickPlanner | None = None
        self.hard: HardState | None = None
        self.attester: Attester | None = None
        self.runtimes = offered_runtimes(runtime_id())
        self.attestation: Any = None
        self.availability = AvailabilityRecorder(db)
        session = int.from_bytes(os.urandom(8), "big") | 1
        signer = DotSigner(identity, network)
        # Every message the replica builds must fit one frame of the host (states, intervals
        # and digests are cut to this budget); the envelope around it needs the rest.
        ae = AntiEntropyConfig(max_message_bytes=host.max_frame - ENVELOPE_MARGIN)
        saved = db.get(_NS, "replica")
        self.replica: CrdtReplica
        if saved:
            try:
                self.replica = CrdtReplica.restore(saved, SCHEMA, session=session, signer=signer,
                                                   config=ae)
            except RemoteProtocolError as err:
                log.warning("soft state snapshot unusable (%s): starting empty", err)
                saved = None
        if not saved:
            self.replica = CrdtReplica(identity.node_id, SCHEMA, session=session, signer=signer,
                                       config=ae)
        self.links = LinkBook(self.replica, identity.node_id)
        """Link summaries: ours written when they change (``links.source`` set by the runner)."""
        self.loads = LoadBook(self.replica, identity.node_id)
        self.sealer = EnvelopeSealer(identity, network, context=session)
        self.replica.watch(CAPS)
        self.twins = TwinGuard(self, CAPS, instance=session,
                               started_ms=int(self.clock.wall() * 1000),
                               rng=random.Random(session), now=self.clock.now)
        self.twins.on_later = self._later_twin
        self.opener = EnvelopeOpener(network)
        self.generation = 0
        self.published: dict[str, Any] = {}
        self.seen_up: dict[str, float] = {}
        self._heard: dict[str, tuple[int, float]] = {}
        """Node -> (newest record generation seen, wall time it arrived or it last dropped)."""
        self.rejected = 0
        self.pace = RestingTick(TICK_S, REST_TICK_S)
        self._dirty_at: float | None = None
        """Since when the replica has changes not yet persisted (None: none)."""
        self.silence_s = 0.0
        """The genesis' eviction silence (``connect``): refreshes come well inside it."""
        self.partners = Partners()
        self.sent_bytes: dict[str, int] = {}
        """Bytes sent by message type (``status``: what the soft state costs this uplink)."""
        """The connected peers anti-entropy runs with: the overlay's links."""
        host.handle(PROTOCOL, self._on_frame)
        host.on_peer(self._connected, self._disconnected)
        self._verifier = DotVerifier(network)
        host.set_peer_exchange(exchange.PROTOCOL, self._exchange_offer)
        host.handle_request(exchange.PROTOCOL, self._on_exchange)

    # -- the registry -------------------------------------------------------------------------------

    def records(self) -> list[CapabilityAnnounce]:
        """Every node's record, with its current load (``load.LoadBook.current``)."""
        caps: LWWMap = self.replica.get(CAPS)  # type: ignore[assignment]
        out = []
        for key, value in caps.items():
            try:
                out.append(self._with_load(record_from_wire(value, expected_node=key)))
            except RemoteProtocolError:
                continue  # the writer signed something malformed: skip, never crash
        return out

    def record_of(self, node_id: str) -> CapabilityAnnounce | None:
        caps: LWWMap = self.replica.get(CAPS)  # type: ignore[assignment]
        value = caps.get(node_id)
        if value is None:
            return None
        try:
            return self._with_load(record_from_wire(value, expected_node=node_id))
        except RemoteProtocolError:
            return None

    def _with_load(self, record: CapabilityAnnounce) -> CapabilityAnnounce:
        load = self.loads.current(record)
        return record if load == record.load else dataclasses.replace(record, load=load)

    def _now_ms(self) -> int:
        return int(self.clock.wall() * 1000)

    def connect(self, attester: Attester, hard: HardState, silence_s: float = 0.0) -> None:
        """Start-up's second phase: our attestation report, and the hard state that says
        whose statements count and whose records go (``silence_s``: after how long a silent
        member is evicted, 0: never)."""
        self.attester, self.hard, self.silence_s = attester, hard, silence_s

    def _nodes_known(self) -> int:
        caps: LWWMap = self.replica.get(CAPS)  # type: ignore[assignment]
        return len(caps.keys())

    def refresh_s(self) -> float:
        """How often our unchanged record is written again (``plan.refresh_period``)."""
        return refresh_period(self._nodes_known(), self.silence_s)

    def load_s(self) -> float:
        """How soon after our last write a change of load rewrites our record
        (``plan.load_period``)."""
        return load_period(self._nodes_known())

    def live_window_s(self) -> float:
        """A record written this recently makes its node a placement candidate, connected
        or not: two refresh periods and a minute (a live node writes within one)."""
        return 2 * self.refresh_s() + 60.0

    def trusted_verifiers(self) -> tuple[bytes, ...]:
        """Committee members: the verifiers whose statements a scheduler relies on."""
        return self.hard.current_members() if self.hard is not None else ()

    def membership(self) -> tuple[set[str], set[str]]:
        """(this epoch's members, nodes that were members in an earlier epoch and are not now):
        the hard state that says whose records go (``prune_departed``)."""
        return self.hard.membership() if self.hard is not None else (set(), set())

    def on_attestation(self, report: AttestationReport) -> None:
        """``daemon.attest.service.Registry``: a verifier vouched for us."""
        self.set_attestation(report.to_wire())

    def prune_departed(self) -> set[str]:
        """Drop the records of nodes the membership says have left or been evicted, once every
        connected peer has all of their writes (``crdt.prune``: they cannot come back from a
        lagging peer); take back any that are members again. Returns the nodes pruned now."""
        members, departed = self.membership()
        back = members & self.replica.departed.keys()
        if back:
            self.replica.readmit(back)
            log.info("soft state: readmitted %d node(s) that are members again", len(back))
        todo = departed - members - self.replica.departed.keys() - {self.identity.node_id}
        if not todo:
            return set()
        stable = self.replica.stable_point(self.partners.roles)
        if stable is None:
            return set()  # a peer has not sent its digest yet: next time
        pruned = self.replica.prune(todo, stable)
        if pruned:
            self._mark_dirty()
            log.info("soft state: pruned the records of %d departed node(s)", len(pruned))
        return pruned

    def last_heard(self, node_id: str) -> float | None:
        """When (our wall clock) we last had word of ``node_id``: now while connected, else
        when a new generation of its record reached us or it disconnected (None: never).
        Records refresh every ``refresh_s()`` at least, so a live node is never silent longer."""
        if node_id in self.seen_up or node_id == self.identity.node_id:
            return self.clock.wall()
        heard = self._heard.get(node_id)
        return heard[1] if heard else None

    def _note_heard(self) -> None:
        now = self.clock.wall()
        for r in self.records():
            if r.generation > self._heard.get(r.node_id, (-1, 0.0))[0]:
                self._heard[r.node_id] = (r.generation, now)

    def _recently_heard(self) -> set[str]:
        """Nodes whose own record is fresh (written within two refresh periods): live peers we
        are not connected to, since a node keeps only a partial view of the network."""
        cutoff = self._now_ms() - int(self.live_window_s() * 1000)
        return {r.node_id for r in self.records() if r.updated_ms >= cutoff}

    def candidates(self, toward: str | None = None, nbytes: int = 0) -> tuple[Any, ...]:
        """Placement candidates; ``toward``: a job's submitter, whose predicted link from each
        candidate becomes its link cost (``with_link_costs``)."""
        live = set(self.host.connected_peers()) | {self.identity.node_id} | self._recently_heard()
        cands = to_candidates(self.records(), live, self.seen_up, self.trusted_verifiers(),
                              self.clock.wall())
        if toward is None:
            return cands
        predicted = self.links.predicted_to(toward, [c.node_id for c in cands], self._now_ms())
        return with_link_costs(cands, predicted, nbytes, toward)

    def set_attestation(self, report_wire: Any) -> None:
        """A verifier vouched for us (or our evidence changed): republish our record."""
        self.attestation = report_wire
        self.publish("attestation")

    def publish(self, reason: str) -> int:
        """Write this node's record (a new generation) into the registry."""
        now_ms = self._now_ms()
        load, addrs = self.load_fn(), self.host.listen_addrs()
        self.generation = max(self.generation + 1, now_ms)
        record = build_record(
            self.identity.node_id, slots=self.slots, memory_mib=self.memory_mib,
            runtimes=self.runtimes, listen=tuple(addrs),
            attestation=self.attestation, availability=self.availability.summary_wire(now_ms / 1000),
            load_permille=load, domain=self.domain, now_ms=now_ms,
            generation=self.generation, **self.twins.record_fields())
        wire = record_to_wire(record)
        self.replica.update(CAPS, lambda m, w: m.p_set(w, self.identity.node_id, wire), now_ms)
        self.published = {"generation": self.generation, "reason": reason, "at_ms": now_ms}
        if self._planner is not None:  # what the record says now is what later changes count from
            self._planner.published(self.clock.now(), load, addrs)
        self._persist()
        self._woken()
        return self.generation

    def _publish_links(self, now: float) -> None:
        summary = self.links.due(now, self._now_ms())
        if summary is not None:
            self.links.publish(summary, now)
            self._persist()

    def _persist(self) -> None:
        with self.db.transaction():
            self.db.put(_NS, "replica", self.replica.snapshot())
        self._dirty_at = None

    def _mark_dirty(self) -> None:
        if self._dirty_at is None:
            self._dirty_at = self.clock.now()

    def _later_twin(self, record: CapabilityAnnounce) -> None:
        """A later daemon with our key ran (and may run a few seconds more): its consensus
        requests took ids from its start time (``committees.requests``), above ours, so ours
        move past them: past the present, and past two minutes after its start by its own
        clock, in case that clock runs ahead of ours."""
        if self.hard is not None:
            self.hard.renumber_requests(max(int(self.clock.wall() * 1e6),
                                            (record.started_ms + TWIN_ID_MARGIN_MS) * 1000))

    # -- the wire -----------------------------------------------------------------------------------

    def _exchange_offer(self, nodes: list[NodeId]) -> bytes:
        """The peer exchange telling of ``nodes``: their records as they signed them."""
        caps: LWWMap = self.replica.get(CAPS)  # type: ignore[assignment]
        found = (signed_winner(caps, node) for node in nodes)
        return exchange.encode([r for r in found if r is not None])

    async def _on_exchange(self, peer: str, frame: bytes) -> bytes:
        """A peer we dialled is full and tells us where else to go (``exchange``)."""
        good, bad = exchange.verified(exchange.decode(frame), self._verifier, CAPS, peer,
                                      self.identity.node_id)
        if bad:
            self.host.report_fault(peer, "exchange_unsigned")
        if self.host.exchanged(peer, good):
            log.debug("%s is full; it told us of %d peers", peer[:16], len(good))
        return b""

    def _send(self, out: list[tuple[str, Any]]) -> None:
        now_ms = self._now_ms()
        for peer, msg in out:
            raw = self.sealer.seal_channel(msg, now_ms)
            kind = type(msg).__name__
            self.sent_bytes[kind] = self.sent_bytes.get(kind, 0) + len(raw)
            self.host.send(peer, PROTOCOL, raw)

    async def _on_frame(self, peer: str, frame: bytes) -> None:
        # Only ``peer`` can have written what its own connection carries (its Noise session):
        # an envelope's signature would prove that again, so we send and take unsigned
        # channel frames. Nothing here keeps or forwards the envelope, and the records inside
        # carry their writers' signatures of their own.
        env = self.opener.open(frame, now_ms=self._now_ms(),
                               channel_sender=public_key_from_node_id(peer), channel_frames=True)
        if env.sender_id != peer:
            raise MalformedMessage("soft-state messages must be signed by the peer that sends them")
        if isinstance(env.body, (CrdtSummary, CrdtDigest)) and \
                self.partners.heard_summary(peer, self.clock.now()):
            # It holds us in its view: a soft-state link, which it keeps alive (``partners``).
            self._send(self.replica.on_connect(peer, self._now_ms(), summaries=False))
        try:
            out = self.replica.on_message(peer, env.body, self._now_ms())
        except RemoteProtocolError:
            self.rejected += 1
            raise
        finally:
            self.twins.on_observed(self.replica.take_observed())
        self._mark_dirty()
        self._send(out)
        self._round_trips()
        self._woken()

    def _round_trips(self) -> None:
        """Acknowledged deltas time the link (``crdt.antientropy.Books.on_ack``): the host's
        round-trip table takes them as it takes pings, and pings only peers left unmeasured."""
        table = getattr(self.host, "rtts", None)
        now = trio.current_time()  # the table's clock: the host's own probes use it too
        for peer, ms in self.replica.take_round_trips():
            if table is not None:
                table.sample(NodeId(peer), ms / 1000, now)

    def _connected(self, peer: str) -> None:
        self.seen_up.setdefault(peer, self.clock.wall())
        self._sync_partners()
        self._woken()

    def _sync_partners(self) -> None:
        """Anti-entropy with the overlay's links only, not every connection (``partners``)."""
        view = getattr(self.host, "overlay_view", None)
        changed, stopped = self.partners.update(self.host.connected_peers(),
                                                view() if view is not None else None,
                                                self.clock.now())
        for peer, active in changed.items():
            known = self.replica.books.peers.get(peer)
            if known is not None and known.connected:
                self.replica.periodic_summaries(peer, active)
            else:
                self._send(self.replica.on_connect(peer, self._now_ms(), summaries=active))
        for peer in stopped:
            self.replica.on_disconnect(peer)

    def _disconnected(self, peer: str) -> None:
        self.partners.gone(peer)
        self.seen_up.pop(peer, None)
        self._heard[peer] = (self._heard.get(peer, (0, 0.0))[0], self.clock.wall())
        self.replica.on_disconnect(peer)

    # -- running ------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.availability.started(self.clock.wall())
        if self.attester is not None:
            report = await trio.to_thread.run_sync(self.attester.build_report)
            self.attestation = report.to_wire()
        # Our first write takes a dot no daemon with this key can have used (the counters of a
        # copied data directory run on from the same point): records of a copy are then news
        # to every peer, never dropped as a dot already seen (``softstate.twins``). Load
        # entries alike, and the first one goes out now, with the record: a reserved range no
        # delta carries would leave every peer's summary lacking it until our load changed.
        self.replica.reserve_own(CAPS, self.twins.started_ms)
        self.replica.reserve_own(LOAD, self.twins.started_ms)
        self.loads.write(self.load_fn(), self._now_ms())
        self.publish("start")
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticks)
                stop = await self.twins.run()  # only returns when we must step aside
                nursery.cancel_scope.cancel()
            raise stop
        finally:
            with trio.CancelScope(shield=True):
                self.availability.stopped(self.clock.wall())
                self._persist()

    async def _ticks(self) -> None:
        planner = self._planner = TickPlanner(self.clock.now(), self.load_fn(),
                                              self.host.listen_addrs())
        while True:
            await self.pace.wait()
            now = self.clock.now()
            self._send(self.replica.tick(self._now_ms()))
            load = self.load_fn()
            steps = planner.plan(now, load, self.host.listen_addrs(), self._dirty_at)
            if steps.heartbeat:
                self.availability.alive(self.clock.wall())
            if steps.publish:
                self.publish("refresh")
            if steps.load:
                self.loads.write(load, self._now_ms())
                self._persist()
            if steps.persist and self._dirty_at is not None:  # unless a write above persisted
                self._persist()
            if steps.scan:
                self._sync_partners()
                planner.refresh_s = self.refresh_s()
                planner.load_s = self.load_s()
                self._note_heard()
                self.prune_departed()
                self._publish_links(now)
            self.pace.settle(self.replica.resting())

    def _woken(self) -> None:
        """Something may have been written or asked for: a resting tick loop runs now if the
        replica has anything to send."""
        self.pace.wake(lambda: not self.replica.resting())

    # -- status and control -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        records = self.records()
        links = self.links.status()
        twins = self.twins.status()
        health = "ok"
        if self.twins.step_aside is not None:
            health = f"stopping: {self.twins.step_aside_line()}"
        elif twins["later_daemons_with_this_key"]:
            health = ("degraded: another daemon with this node's key started later at "
                      f"{', '.join(twins['later_daemons_with_this_key'][-1]['listen'][:2])}; "
                      "it has been told to step aside, this one keeps its seat")
        return {
            "health": health, "twins": twins,
            "summary": f"{len(records)} capability records, generation {self.generation};"
                       f" link summaries of {links['known']} nodes, ours names"
                       f" {len(links['published'])} peers",
            "records": len(records), "published": self.published, "rejected": self.rejected,
            "load_written": None if self.loads.written is None else
            dict(zip(("permille", "at_ms"), self.loads.written)),
            "crdt": {"deltas_applied": self.replica.stats.deltas_applied,
                     "deltas_redundant": self.replica.stats.deltas_redundant,
                     "states_applied": self.replica.stats.states_applied,
                     "partners": {"active": sum(self.partners.roles.values()),
                                  "passive": sum(not a for a in self.partners.roles.values())},
                     "sent_kib": {k: round(n / 1024)
                                  for k, n in sorted(self.sent_bytes.items())},
                     "sent": dict(sorted(self.replica.stats.messages_out.items())),
                     "intervals_resent": self.replica.stats.intervals_resent,
                     "states_sent": dict(sorted(self.replica.stats.states_sent.items())),
                     "state_reasons": dict(sorted(self.replica.books.state_reasons.items())),
                     "gaps": self.replica.stats.gaps,
                     "duplicates": self.replica.stats.duplicates,
                     "written": {k: dict(zip(("count", "bytes"), v))
                                 for k, v in sorted(self.replica.stats.written.items())}},
            "links": links,
        }

    def peer_info(self, node_id: str) -> dict[str, Any]:
        r = self.record_of(node_id)
        if r is None:
            return {"capabilities": None}
        return {"capabilities": {"cores": r.cores, "slots": r.slots, "memory_mb": r.memory_mb,
                                 "load": r.load, "version": r.software_version,
                                 "generation": r.generation, "domain": r.domain}}

    def register_rpc(self, server: ControlServer) -> None:
        server.register("capabilities", self.rpc_capabilities)
        server.register("capabilities.refresh", self.rpc_refresh)
        server.register("links", self.rpc_links)
        server.register("forecast", self.rpc_forecast)

    async def rpc_capabilities(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "node")
        node = get(params, "node", str, None)
        records = [r for r in self.records() if node is None or r.node_id == node]
        return {"records": [_record_json(r) for r in sorted(records, key=lambda r: r.node_id)]}

    async def rpc_links(self, params: dict[str, Any]) -> dict[str, Any]:
        """The predicted link from every live volunteer to ``to`` (default: this node), read
        from the published summaries; ``volunteers`` lists the live placement candidates."""
        only(params, "to")
        target = get(params, "to", str, self.identity.node_id)
        volunteers = sorted(c.node_id for c in self.candidates())
        others = sorted(set(self.links.summaries()) - set(volunteers))
        links = self.links.predicted_to(target, volunteers + others, self._now_ms())
        shown = list(links)[:MAX_LINKS_REPLY]  # volunteers first
        out: dict[str, Any] = {"to": target, "volunteers": volunteers,
                               "links": {node: links[node].as_dict() for node in sorted(shown)}}
        if len(links) > len(shown):
            out["not_shown"] = len(links) - len(shown)
        return out

    async def rpc_forecast(self, params: dict[str, Any]) -> dict[str, Any]:
        """Each live volunteer's predicted time before leaving within ``horizon_s`` (default
        300), as a share of it, from the availability its record publishes (FL's φ selection:
        ``daemon.fl.select.staying_shares``)."""
        from daemon.fl.select import staying_shares

        only(params, "horizon_s")
        horizon = float(get(params, "horizon_s", (int, float), 300))
        if not 0 < horizon <= 7 * 86400:
            raise invalid_params("horizon_s must be more than 0 and at most a week")
        return {"horizon_s": horizon,
                "staying": staying_shares(self.candidates(), self.clock.wall(), horizon)}

    async def rpc_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        gen = self.publish("refresh requested")
        return {"generation": gen, "at_ms": self.published["at_ms"]}


def _record_json(r: CapabilityAnnounce) -> dict[str, Any]:
    att = r.attestation if isinstance(r.attestation, dict) else {}
    return {
        "node_id": r.node_id, "version": r.software_version, "cores": r.cores, "slots": r.slots,
        "memory_mb": r.memory_mb, "runtimes": list(r.runtimes), "listen": list(r.listen_addrs),
        "load_permille": r.load, "domain": r.domain, "generation": r.generation,
        "updated_ms": r.updated_ms, "instance": f"{r.instance:016x}",
        "started_ms": r.started_ms, "attestation_kind": att.get("kind", "none"),
        "self_reported": True,
    }
