"""The committees service: this node's PBFT replicas and its client, over direct libp2p streams.

From the genesis (and, later, the directory's epochs) every node computes the same committees:
the directory committee and one committee per shard. For each committee this node sits on it
runs a ``consensus.Replica`` whose state machine the shard application makes
(``daemon.committees.hooks.ShardApplication``: the job ledger + key-value store), or the
``DirectoryMachine``; for every shard it can submit requests as a client.

Transport: protocol ``/novacron/pbft/2``, one signed envelope per frame. Inbound envelopes are
opened (signature checked; no replay window, since replicas forward older evidence on purpose
and de-duplicate themselves) and routed by (shard, epoch) to a replica, or by shard to the
client when it is a ``Reply``. Envelopes that do not open are counted against the peer that
sent them by the p2p layer; misbehaviour a replica proves is reported there too.

A committee above ``consensus.mesh.MESH_ABOVE`` members broadcasts over its mesh instead
(``daemon.committees.relay``: protocol ``/novacron/pbft-mesh/2``, each member forwarding a
message it has not seen to its other neighbours), so a member keeps a bounded number of
connections however large the committee; a message to one member of it goes along the
mesh (``/novacron/pbft-route/2``) unless that member is a neighbour or outside it.

Time: one injected clock (``daemon.clock``; virtual in tests): replicas run on its ``now()``,
envelopes carry its wall clock. On every tick the application may submit operations of its own to the shards this node sits on (the ledger's
clock reports, so leases and deadlines advance: ``daemon.ledger.shard``).
"""

from __future__ import annotations

import hashlib

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import trio

from consensus.actions import Committed, EpochEnded, Misbehaviour, ViewEntered
from consensus.checkpoint import InvalidProof
from consensus.committee import DIRECTORY_SHARD, max_faulty, shard_words
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.health import Health, committee_health, worst
from consensus.mesh import MESH_ABOVE
from consensus.directory import EpochConfig
from consensus.replica import Replica
from consensus.sizes import MAX_REQUEST_BYTES
from daemon.clock import Clock, SystemClock
from daemon.committees.epochs import EpochManager
from daemon.committees.hooks import ShardApplication
from daemon.committees.relay import (
    MESH_PROTOCOL, ROUTE_HEADER, ROUTE_HOPS, ROUTE_PROTOCOL, MeshPlace, Route, SeenFrames,
    parse_route, place_on,
)
from daemon.committees.requests import CommitteeUnavailable, QueueFull, ShardRequests
from daemon.committees.runner import ActionSink, ReplicaRunner, load_store
from daemon.control.jsonrpc import NOT_FOUND, NOT_READY, REJECTED, UNAVAILABLE, RpcError
from daemon.control.params import get, only
from daemon.control.server import ControlServer
from daemon.genesis import Genesis
from daemon.ledger.shard import KV
from daemon.p2p.errors import P2PError
from daemon.p2p.host import P2PHost
from daemon.p2p.rtt import RETUNE_EVERY, pbft_timers
from daemon.storage.db import Database
from daemon.tick import RestingTick
from protocol.canonical import packb
from protocol.envelope import peek_type
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import NodeIdentity, node_id_from_public_key
from protocol.messages.pbft import (EpochDelta, EpochFetch, EpochHave, EpochNotice,
                                    HandoffNotice, HandoffWant, Reply, StateChunk)

log = logging.getLogger("novacron.consensus")

PROTOCOL = "/novacron/pbft/2"
TICK_S = 0.05
REST_TICK_S = 1.0
"""The tick while every replica and client here rests (``Replica.resting``,
``ShardRequests.resting``): their timers have nothing to do until input comes, and input (a
consensus message, a submission) brings the next tick at once (``daemon.tick``). What is left
to time at rest is seconds apart: reachability counts (``REACH_EVERY``), the ledger's idle
clock reports, the epoch manager's asks and fetches. An idle daemon's ticks at ``TICK_S`` were
about a third of its idle CPU: 20 wake-ups a second each, on 30 daemons sharing two cores
(0.82 cores all told, 0.47-0.59 with slower ticks); then 0.25 s of rest, now 1 s."""
REQUEST_TIMEOUT_S = 30.0
REACH_GRACE_S = 10.0
"""A member not connected now still counts as reachable this long after it was last connected
or heard from (a dropped connection is redialled at once, and a dial over 300 ms lines takes a
few seconds). Past it the member is unreachable, so ``status`` says a committee that lost its
quorum is stalled within seconds: at 60 s since a member was last heard, as this was before,
two members of four killed left ``health ok`` for a minute (and the replicas' timers, which
stand still short of a quorum, ran on meanwhile)."""
STALL_S = 0.25
"""A gap between two consensus ticks this much longer than the interval the loop waited for
(``TICK_S`` when busy, ``REST_TICK_S`` at rest) is this process's own stall, which the
replicas' view-change timers do not count."""
REACH_EVERY = 1.0
"""Seconds between counts of each committee's reachable members, which the replicas' timers
follow (``Replica.reach``)."""
VIEW_CHANGE_TIMEOUT_S = 2.0
"""The base view-change timeout (doubled for each view change in a row without progress): a
Python daemon executing a big job's batches on a busy machine needs more than a second."""

BATCH_SIZE = 32
MAX_INFLIGHT = 2
"""Requests per batch, and batches a primary keeps proposed but unexecuted. Every batch costs
each member a pre-prepare, two votes from every other member and the signatures on them
(tens of frames whatever the batch holds), so a busy committee orders more requests by
proposing fewer, fuller batches: with 8 and 4, a 19-member committee on 30 loaded daemons
ordered 4.6 requests per batch, each request took 5-9 s, and a 100-task job took 177-196 s;
with 32 and 2, 144-146 s. An idle committee is not slowed: a request is proposed at once
while fewer than ``MAX_INFLIGHT`` batches are in flight."""

Listener = Callable[[int, "ReplicaRunner", Committed], None]


class NewsOfNodes(Protocol):
    def last_heard(self, node_id: str) -> float | None: ...


def _never_heard(_node_id: str) -> float | None:
    return None


class CommitteeService:
    name = "consensus"

    def __init__(self, identity: NodeIdentity, genesis: Genesis, host: P2PHost, db: Database,
                 app: ShardApplication, clock: Clock | None = None) -> None:
        self.identity = identity
        self.clock: Clock = clock or SystemClock()
        self.app = app
        self.genesis = genesis
        self.network = genesis.network
        self.host = host
        self.db = db
        context = int.from_bytes(os.urandom(8), "big") >> 1
        self.signer = Ed25519Signer(identity, self.network, context,
                                    clock_ms=lambda _now: int(self.clock.wall() * 1000))
        self.verifier = Ed25519Verifier(self.network)
        self.sink = ActionSink(db, self._send, self._on_event, self._spread)
        self.seen = SeenFrames()
        self.places: dict[tuple[int, int], MeshPlace | None] = {}
        """This node's place on each (shard, epoch) committee's mesh (None: all-to-all)."""
        self.mesh_above = MESH_ABOVE
        """Committees above this size use a mesh (a benchmark raises it for its baseline)."""
        self.mesh_counts = {"sent": 0, "forwarded": 0, "duplicates": 0, "routed": 0,
                            "route_dropped": 0}
        self.epoch: EpochConfig = genesis.epoch0()
        self.replicas: dict[tuple[int, int], ReplicaRunner] = {}
        self.clients: dict[int, ShardRequests] = {}
        self.listeners: list[Listener] = []
        self.ready = False
        self.pace = RestingTick(TICK_S, REST_TICK_S)
        self.dropped = 0
        self.sent_bytes: dict[str, int] = {}
        """Bytes of consensus messages sent, by message type: what fills a member's uplink."""
        self.sent_frames: dict[str, int] = {}
        """Frames sent, by message type: what a loaded machine's CPU follows (a frame costs
        the libp2p stack about the same whatever its size)."""
        self.local_reads = 0
        """Reads answered from our own replica's state instead of ordered (``local_machine``)."""
        self.misbehaviour: dict[str, int] = {}
        self.heard: dict[bytes, float] = {}
        """Last contact with each key: a signed consensus message of it arrived, or (our
        committees' members) we were connected to it. ``_reachable`` counts a member not
        connected now for ``REACH_GRACE_S`` after it."""
        self.last_heard: Callable[[str], float | None] = _never_heard
        """When we last had word of a node (wall clock; the soft state knows, ``connect``):
        what evictions of silent members go by. None: never."""
        self.epochs = EpochManager(self)
        self.epochs.replay()
        host.handle(PROTOCOL, self._on_frame)
        host.handle(MESH_PROTOCOL, self._on_mesh_frame)
        host.handle(ROUTE_PROTOCOL, self._on_route_frame)
        # Streams to the members we keep are opened as they connect and kept while they stay
        # members: a committee's first request (after forming, after any quiet spell longer
        # than the streams' idle close) waited for a round trip or two of stream set-up on
        # every member's line.
        host.warm_kept(PROTOCOL)
        host.warm_kept(MESH_PROTOCOL)
        host.on_peer(self.epochs.on_peer, self.epochs.on_peer_gone)

    # -- committees -------------------------------------------------------------------------------

    def config_for(self, shard: int) -> ReplicaConfig:
        frame = self.host.max_frame
        # max_message: the replica keeps everything it builds under our frame cap (a frame
        # over it is refused by the transport, and a refused batch would wedge the committee).
        # certify=False: no listener here reads a ``Committed`` event's quorum certificate,
        # and building one checks 2f signatures on every member for every batch, before the
        # batch's replies go out (the commit itself stands on votes read from their senders'
        # own connections). A lagging peer's commit proof builds and checks its certificate
        # when asked for (``consensus.recovery``), and reports a bad vote then.
        return ReplicaConfig(shard, self.epoch.epoch, self.epoch.committees[shard],
                             checkpoint_interval=self.genesis.params["checkpoint_interval"],
                             window=2 * self.genesis.params["checkpoint_interval"],
                             batch_size=BATCH_SIZE, max_inflight=MAX_INFLIGHT, max_message=frame,
                             view_change_timeout=VIEW_CHANGE_TIMEOUT_S,
                             max_batch_bytes=max(MAX_REQUEST_BYTES, min(256 * 1024, frame // 2)),
                             chunk_size=min(256 * 1024, frame // 2), certify=False)

    def connect(self, soft: NewsOfNodes) -> None:
        """Start-up's second phase: when we last had word of each node (evictions go by it)."""
        self.last_heard = soft.last_heard

    def place(self, shard: int, epoch: int, committee: tuple[bytes, ...]) -> MeshPlace | None:
        """Our place on that committee's mesh, or None (all-to-all, or not a member)."""
        key = (shard, epoch)
        if key not in self.places:
            if len(self.places) >= 64:  # a few epochs of every committee we sit on
                self.places.clear()
            self.places[key] = place_on(committee, epoch, shard, self.identity.public_key,
                                        self.mesh_above)
        return self.places[key]

    def peers_to_keep(self) -> set[str]:
        """The members of this epoch's committees we sit on that we exchange broadcasts with:
        all of a small committee's, our mesh neighbours on a large one's."""
        me = self.identity.public_key
        keep: set[str] = set()
        for shard, members in self.epoch.committees.items():
            if me not in members:
                continue
            place = self.place(shard, self.epoch.epoch, members)
            keep.update(place.by_node if place is not None else
                        (node_id_from_public_key(pk) for pk in members if pk != me))
        return keep

    def current_members(self) -> tuple[bytes, ...]:
        """This epoch's members' public keys."""
        return self.epoch.members

    def is_member(self) -> bool:
        """Whether this node sits on any committee of the current epoch."""
        me = self.identity.public_key
        return any(me in c for c in self.epoch.committees.values())

    @property
    def shards(self) -> list[int]:
        return sorted(s for s in self.epoch.committees if s != DIRECTORY_SHARD)

    def shard_of(self, key: bytes) -> int:
        return int.from_bytes(key[:8], "big") % len(self.shards)

    def machine_for(self, shard: int, committee: tuple[bytes, ...]) -> Any:
        if shard == DIRECTORY_SHARD:
            return self.genesis.directory()
        return self.app.machine(committee)

    def _start_epoch(self, now: float) -> None:
        me = self.identity.public_key
        for shard, committee in sorted(self.epoch.committees.items()):
            cfg = self.config_for(shard)
            if me in committee and (shard, cfg.epoch) not in self.replicas:
                machine = self.machine_for(shard, committee)
                stored = load_store(self.db, shard, cfg.epoch) or None
                genesis = self.epochs.stored_genesis(shard, cfg.epoch) if cfg.epoch else None
                if cfg.epoch and genesis is None:
                    log.warning("no handed-over state for %s, epoch %d: waiting for a "
                                "handoff from the previous committee", shard_words(shard), cfg.epoch)
                    self.clients[shard] = self._requests(cfg)
                    continue
                replica = Replica(cfg, self.signer, self.verifier, machine, genesis=genesis,
                                  stored=stored, now=now)
                runner = ReplicaRunner(cfg, replica, machine)
                self.replicas[(shard, cfg.epoch)] = runner
                log.info("replica of %s, epoch %d, %d members%s", _shard_name(shard), cfg.epoch,
                         len(committee), " (restarted from its store)" if stored else "")
            self.clients[shard] = self._requests(cfg)

    def renumber_requests(self, at_least: int) -> None:
        """Another daemon used our key (``daemon.softstate.twins``): our requests take ids
        above ``at_least``, past any it can have used, or the replicas would ignore them."""
        for client in self.clients.values():
            client.client.renumber(at_least)

    def _requests(self, cfg: ReplicaConfig) -> ShardRequests:
        if cfg.shard == DIRECTORY_SHARD:
            return ShardRequests(cfg, self.signer)
        return ShardRequests(cfg, self.signer, self.app.batcher, pack=self.app.pack)

    # -- running ----------------------------------------------------------------------------------

    def reconfigure_clients(self) -> None:
        """Point every shard's client at this epoch's committee (cut-off requests re-sent)."""
        now = self.clock.now()
        for shard in self.epoch.committees:
            cfg = self.config_for(shard)
            client = self.clients.get(shard)
            if client is None:
                self.clients[shard] = self._requests(cfg)
            else:
                self.sink.execute(None, None, (), self.identity.public_key,
                                  client.client.reconfigure(cfg, now))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._start_epoch(self.clock.now())
        self._retune_at = self.clock.now() + RETUNE_EVERY
        reach_at = self.clock.now()
        self.ready = True
        task_status.started()
        async with trio.open_nursery() as nursery:
            last = self.clock.now()
            while True:
                now = self.clock.now()
                stalled, last = now - last - self.pace.interval, now
                if now >= reach_at:
                    reach_at = now + REACH_EVERY
                    reachable = self._reachable()
                    for key, runner in self.replicas.items():
                        runner.replica.reach(reachable[key])
                for runner in list(self.replicas.values()):
                    if stalled > STALL_S:
                        # This process did not run for that long (executing a big batch,
                        # snapshotting a checkpoint, another service's work, the OS): our own
                        # time, not the primary's silence (``Replica.busy``).
                        runner.replica.busy(stalled)
                    self._execute(runner, runner.replica.tick(now))
                for shard, client in list(self.clients.items()):
                    self._pump(shard, client, now)
                    self.sink.execute(None, None, (), self.identity.public_key, client.client.tick(now))
                self._tick_shards(now)
                self.epochs.tick(nursery, now)
                if now >= self._retune_at:
                    self._retune_at = now + RETUNE_EVERY
                    self._retune_timers()
                self.pace.settle(self._all_resting())
                await self.pace.wait()

    @property
    def resting(self) -> bool:
        """Whether the tick loop rests (every replica and client here has nothing to time)."""
        return self.pace.resting

    def _all_resting(self) -> bool:
        return all(r.replica.resting() for r in self.replicas.values()) and \
            all(c.resting() for c in self.clients.values())

    def _retune_timers(self) -> None:
        """Scale each replica's PBFT timers by its committee's measured round trip."""
        for runner in self.replicas.values():
            base = runner.config
            members = [node_id_from_public_key(pk) for pk in base.committee]
            vc, status = pbft_timers(base.view_change_timeout, base.status_interval,
                                     self.host.round_trip(members), base.max_view_change_timeout)
            runner.replica.retune(vc, status)

    def _pump(self, shard: int, client: ShardRequests, now: float) -> None:
        self.sink.execute(None, None, (), self.identity.public_key, client.pump(now))

    def _execute(self, runner: ReplicaRunner, actions: list[Any]) -> None:
        self.sink.execute(runner, runner.namespace, runner.config.committee,
                          self.identity.public_key, actions)

    def send_public(self, public_key: bytes, data: bytes) -> None:
        if public_key == self.identity.public_key:
            self._deliver_local(data)
            return
        routed = self._shared_mesh(public_key)
        if routed is not None and len(data) + ROUTE_HEADER.size <= self.host.max_frame:
            (shard, epoch), place = routed
            via = place.via(public_key, data)
            if via is not None:
                self._route_on(place, Route(shard, epoch, ROUTE_HOPS, public_key, via), data)
                return
        self.send_to_node(node_id_from_public_key(public_key), data)

    def _shared_mesh(self, public_key: bytes) -> tuple[tuple[int, int], MeshPlace] | None:
        """A large committee we sit on with ``public_key``, not our neighbour there: the
        mesh to route a message to it on. None: send direct."""
        found = None
        for key, runner in sorted(self.replicas.items()):
            place = self.place(key[0], key[1], runner.config.committee)
            if place is None or place.mesh.index(public_key) is None:
                continue
            if public_key in place.neighbours:
                return None  # connected already: direct is one hop
            found = found or (key, place)
        return found

    def _route_on(self, place: MeshPlace, route: Route, envelope: bytes) -> None:
        nxt = place.toward(route.dest, route.via, envelope)
        if nxt is None or route.hops <= 0:
            self.mesh_counts["route_dropped"] += 1
            return
        frame = Route(route.shard, route.epoch, route.hops - 1, route.dest, route.via).frame(envelope)
        self.send_to_node(node_id_from_public_key(nxt), frame, ROUTE_PROTOCOL)
        self.mesh_counts["routed"] += 1

    _send = send_public

    def _spread(self, owner: Any, data: bytes) -> bool:
        """A replica's broadcast: over its committee's mesh if it has one (True)."""
        if not isinstance(owner, ReplicaRunner):
            return False
        cfg = owner.config
        place = self.place(cfg.shard, cfg.epoch, cfg.committee)
        if place is None:
            return False
        self.seen.first(hashlib.sha256(data).digest(), self.clock.now())  # its echoes
        for pk in place.neighbours:
            self.send_to_node(node_id_from_public_key(pk), data, MESH_PROTOCOL)
        self.mesh_counts["sent"] += 1
        return True

    def send_to_node(self, node_id: str, data: bytes, protocol: str = PROTOCOL) -> None:
        kind = peek_type(data) if protocol != ROUTE_PROTOCOL else "route"
        self.sent_bytes[kind] = self.sent_bytes.get(kind, 0) + len(data)
        self.sent_frames[kind] = self.sent_frames.get(kind, 0) + 1
        try:
            sent = self.host.send(node_id, protocol, data)
        except P2PError as err:  # over the frame cap: our bug, never the peer's
            log.error("cannot send a consensus message: %s", err)
            sent = False
        if not sent:
            self.dropped += 1

    def _deliver_local(self, data: bytes) -> None:
        try:
            env = self.verifier.open(data)
            self._route(env, data)
        except (RemoteProtocolError, InvalidProof) as err:
            log.error("our own message was refused: %s", err)

    async def _on_frame(self, peer: str, frame: bytes) -> None:
        # Read from ``peer``'s own connection: its votes are taken on the channel's word
        # (``Ed25519Verifier.open_direct``). A RemoteProtocolError counts against ``peer``.
        env = self.verifier.open_direct(frame, peer)
        self._heard_from(env.sender)
        try:
            self._route(env, frame)
        except InvalidProof as err:
            raise MalformedMessage(f"invalid proof: {err}") from None

    def _heard_from(self, sender: bytes) -> None:
        """A signed message of ``sender`` reached us, directly or relayed (``_reachable``)."""
        if len(self.heard) >= 4096:  # clients' keys are free to make: keep the map bounded
            self.heard.clear()
        self.heard[sender] = self.clock.now()

    async def _on_mesh_frame(self, peer: str, frame: bytes) -> None:
        """A large committee's broadcast, from its origin or relayed (``relay``'s steps)."""
        now = self.clock.now()
        if not self.seen.first(hashlib.sha256(frame).digest(), now):
            self.mesh_counts["duplicates"] += 1
            return
        env = self.verifier.open(frame)  # a RemoteProtocolError counts against ``peer``
        shard, epoch = getattr(env.body, "shard", None), getattr(env.body, "epoch", None)
        runner = self.replicas.get((shard, epoch)) if isinstance(shard, int) and \
            isinstance(epoch, int) else None
        if runner is not None:
            place = self.place(runner.config.shard, runner.config.epoch, runner.config.committee)
            targets = () if place is None else place.targets(env.sender, peer)
            for pk in targets:
                self.send_to_node(node_id_from_public_key(pk), frame, MESH_PROTOCOL)
            self.mesh_counts["forwarded"] += bool(targets)
        self._deliver_relayed(peer, env, frame)

    async def _on_route_frame(self, peer: str, frame: bytes) -> None:
        """A message for one member, along a large committee's mesh (``relay``)."""
        route, raw = parse_route(frame)  # garbage counts against ``peer``
        env = self.verifier.open(raw)  # as does an envelope that does not open
        if route.dest == self.identity.public_key:
            self._deliver_relayed(peer, env, raw)
            return
        runner = self.replicas.get((route.shard, route.epoch))
        place = None if runner is None else \
            self.place(route.shard, route.epoch, runner.config.committee)
        if place is None or peer not in place.by_node:
            self.mesh_counts["route_dropped"] += 1  # not a mesh we relay on, or not its way
            return
        self._route_on(place, route, raw)

    def _deliver_relayed(self, peer: str, env: Any, raw: bytes) -> None:
        """Hand a relayed envelope to its replica or client; a bad message inside is signed by
        its origin, which the relay could not alter: the origin's fault, not the relay's."""
        self._heard_from(env.sender)
        try:
            self._route(env, raw)
        except (RemoteProtocolError, InvalidProof) as err:
            origin = node_id_from_public_key(env.sender)
            self.misbehaviour[origin] = self.misbehaviour.get(origin, 0) + 1
            self.host.report_fault(origin, "consensus")
            log.warning("a bad message from %s (relayed by %s): %s", origin, peer, err)

    def _route(self, env: Any, raw: bytes) -> None:
        self.pace.wake()
        m = env.body
        shard, epoch = getattr(m, "shard", None), getattr(m, "epoch", None)
        if shard is None or epoch is None:
            raise MalformedMessage(f"{env.type} is not a consensus message")
        if isinstance(m, (EpochNotice, EpochDelta, HandoffNotice, HandoffWant, EpochHave,
                          EpochFetch)):
            self.epochs.on_notice(env, raw)
            return
        if isinstance(m, StateChunk) and self.epochs.on_state_chunk(env):
            return
        now = self.clock.now()
        if isinstance(m, Reply):
            client = self.clients.get(shard)
            if client is not None and client.config.epoch == epoch:
                self.sink.execute(None, None, (), self.identity.public_key, client.client.receive(env, now))
                self._pump(shard, client, now)
            return
        runner = self.replicas.get((shard, epoch))
        if runner is None:
            return  # not a committee we sit on (yet, or any more)
        self._execute(runner, runner.replica.receive(env, now))

    def _on_event(self, runner: Any, event: Any) -> None:
        if isinstance(event, Committed):
            runner.commits += 1
            runner.requests += len(event.requests)
            self.epochs.on_committed(runner)
            for listener in self.listeners:
                listener(runner.config.shard, runner, event)
        elif isinstance(event, ViewEntered):
            runner.view_changes += 1
            log.info("%s entered view %d (the last view change this replica started: %s)",
                     _shard_name(runner.config.shard), event.view,
                     runner.replica.last_view_change or "none")
        elif isinstance(event, Misbehaviour):
            offender = node_id_from_public_key(event.offender)
            self.misbehaviour[offender] = self.misbehaviour.get(offender, 0) + 1
            self.host.report_fault(offender, "consensus")
            log.warning("misbehaviour by %s: %s", offender, event.reason)
        elif isinstance(event, EpochEnded):
            runner.ended = event
            self.epochs.on_epoch_ended(runner, event.seq, event.digest, event.proof)

    def _tick_shards(self, now: float) -> None:
        """Give the application its tick on each shard we sit on (the ledger clock reports)."""
        wall_ms = int(self.clock.wall() * 1000)
        for (shard, epoch), runner in self.replicas.items():
            if shard == DIRECTORY_SHARD or epoch != self.epoch.epoch:
                continue  # a retiring replica's shard has this epoch's replica, or no tick
            client = self.clients[shard]
            for op in self.app.tick(shard, runner.machine, now, wall_ms, len(client.queue)):
                client.enqueue(op)

    # -- submitting -------------------------------------------------------------------------------

    async def submit(self, shard: int, operation: bytes, timeout: float = REQUEST_TIMEOUT_S,
                     urgent: bool = False) -> bytes:
        """Order ``operation`` on ``shard``; ``urgent`` (a user waiting) goes ahead of bulk."""
        client = self.clients.get(shard)
        if client is None:
            raise CommitteeUnavailable(f"no committee of {shard_words(shard)} here")
        pending = client.enqueue(operation, urgent)
        self._pump(shard, client, self.clock.now())
        self.pace.wake()
        with trio.move_on_after(timeout):
            await pending.done.wait()
        if pending.result is None:
            raise CommitteeUnavailable(
                f"the committee of {shard_words(shard)} gave no result within {timeout:.0f} s "
                f"(is a quorum of its {len(client.config.committee)} members reachable?)")
        return pending.result

    def local_machine(self, shard: int) -> Any | None:
        """The state machine of our own replica on ``shard``'s committee this epoch, for reads
        that need not be ordered (``daemon.jobs.ports.CommitteeLedger.order``); None if we do
        not sit on it, it ended, or it is stalled (its state may be far behind the committee's).

        What it holds was executed at committed sequence numbers only, so a read of it is a
        committed state, perhaps a few batches old: CometBFT answers queries from a node's
        last committed block the same way. A write this node made is in it (its client took
        this very replica's reply), so a node reads its own writes."""
        key = (shard, self.epoch.epoch)
        runner = self.replicas.get(key)
        if runner is None or runner.ended is not None or not self.ready:
            return None
        verdict = committee_health(runner.replica.observe(self._reachable()[key]))
        if verdict.health is Health.STALLED:
            return None
        self.local_reads += 1
        return runner.machine

    # -- status and control -----------------------------------------------------------------------

    def _reachable(self) -> dict[tuple[int, int], int]:
        """Members of each of our committees that we can reach now, ourselves included:
        connected now, or connected or heard from within ``REACH_GRACE_S``."""
        connected = set(self.host.connected_peers())
        me = self.identity.public_key
        now = self.clock.now()
        recent = now - REACH_GRACE_S

        def reachable(pk: bytes) -> bool:
            if node_id_from_public_key(pk) in connected:
                self.heard[pk] = now  # seen connected: the grace runs from here if it drops
                return True
            return self.heard.get(pk, -1e18) > recent
        return {key: 1 + sum(1 for pk in runner.config.committee if pk != me and reachable(pk))
                for key, runner in self.replicas.items()}

    def health(self) -> tuple[Health, str]:
        """This node's committees of the current epoch, judged by ``consensus.health``."""
        reachable = self._reachable()
        verdicts = []
        for (shard, epoch), runner in sorted(self.replicas.items()):
            if epoch != self.epoch.epoch or runner.ended is not None:
                continue
            verdicts.append((_shard_name(shard), committee_health(
                runner.replica.observe(reachable[(shard, epoch)]))))
        verdicts.append(("epochs", self.epochs.health()))
        return worst(verdicts)

    def status(self) -> dict[str, Any]:
        mine = [r.status() for r in self.replicas.values()]
        commits = sum(r.commits for r in self.replicas.values())
        current = [r for r in mine if r["epoch"] == self.epoch.epoch]
        roles = ", ".join(f"{_shard_name(r['shard'])}{'*' if r['primary'] else ''}" for r in current)
        retiring = len(mine) - len(current)
        summary = f"epoch {self.epoch.epoch}, member of [{roles or 'none'}], {commits} commits"
        if retiring:
            summary += f", {retiring} retiring"
        if self.epochs.stay_out:
            summary += ", left the network (`novacron join` to come back)"
        if any(r["members"] == 1 for r in current):
            summary += "; a committee of one: results are checked by nobody else"
        health, why = self.health()
        return {
            "health": "starting" if not self.ready else
                      health.value if health is Health.OK else f"{health.value}: {why}",
            "summary": summary,
            "epoch": self.epoch.epoch,
            "replicas": mine,
            "clients": {_shard_name(s): c.status() for s, c in self.clients.items()},
            "dropped_sends": self.dropped,
            "sent_kib": {k: round(n / 1024) for k, n in sorted(self.sent_bytes.items())},
            "sent_frames": dict(sorted(self.sent_frames.items())),
            "local_reads": self.local_reads,
            "mesh": {**self.mesh_counts, "seen": len(self.seen)},
            "misbehaviour": self.misbehaviour,
            "epochs": self.epochs.status(),
        }

    def membership(self) -> tuple[set[str], set[str]]:
        """(this epoch's members, nodes that were members of an epoch we know and are not now)."""
        current = {node_id_from_public_key(m) for m in self.epoch.members}
        ever = {node_id_from_public_key(m) for cfg in self.epochs.configs.values()
                for m in cfg.members}
        return current, ever - current

    def register_rpc(self, server: ControlServer) -> None:
        server.register("committees", self.rpc_committees)
        server.register("kv.put", self.rpc_kv_put)
        server.register("kv.get", self.rpc_kv_get)

    async def rpc_committees(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        e = self.epoch
        return {
            "epoch": e.epoch, "randomness": e.randomness.hex(), "committee_size": e.committee_size,
            "members": [node_id_from_public_key(m) for m in e.members],
            "committees": [
                {"shard": _shard_name(s), "members": [node_id_from_public_key(m) for m in c],
                 "f": max_faulty(len(c))}
                for s, c in sorted(e.committees.items())],
        }

    def _kv_shard(self, params: dict[str, Any], key: str) -> int:
        # By a hash of the key: its first 8 bytes alone put every short key (zero-padded, so
        # even) on shard 0 of an even number of shards, and keys sharing a prefix together.
        default = self.shard_of(hashlib.sha256(b"novacron/kv-key/v1" + key.encode()).digest())
        shard = get(params, "shard", int, default)
        if shard not in self.clients or shard == DIRECTORY_SHARD:
            raise RpcError(NOT_FOUND, ("the directory takes no kv keys" if shard == DIRECTORY_SHARD
                                      else f"no shard {shard}")
                           + "; see `novacron status` for the shards")
        return shard

    async def rpc_kv_put(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "key", "value", "shard")
        key, value = get(params, "key", str), get(params, "value", str)
        if not 0 < len(key) <= 256 or len(value) > 4096:
            raise RpcError(REJECTED, "key must be 1-256 characters and value at most 4096")
        shard = self._kv_shard(params, key)
        t0 = self.clock.now()
        result = await self._guarded(shard, KV + packb(["put", key, value]))
        return {"result": result.decode(errors="replace"), "shard": shard,
                "latency_ms": round((self.clock.now() - t0) * 1000, 2)}

    async def rpc_kv_get(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "key", "shard")
        key = get(params, "key", str)
        shard = self._kv_shard(params, key)
        result = await self._guarded(shard, KV + packb(["get", key]))
        return {"value": result.decode(errors="replace"), "shard": shard}

    async def _guarded(self, shard: int, operation: bytes) -> bytes:
        if not self.ready:
            raise RpcError(NOT_READY, "the consensus service is still starting")
        try:
            return await self.submit(shard, operation, urgent=True)
        except CommitteeUnavailable as err:
            raise RpcError(UNAVAILABLE, str(err)) from None
        except QueueFull as err:
            raise RpcError(UNAVAILABLE, f"too many requests waiting: {err}") from None


def _shard_name(shard: int) -> str:
    return "directory" if shard == DIRECTORY_SHARD else f"shard{shard}"
