"""Epochs on the wire: joining, advancing, and handing every committee's state to the next.

Theory of operation
-------------------
1. *Join.* A node whose key is not among the epoch's members submits ``["join", pow]`` to the
   directory committee (``consensus.directory``), with a proof of work at the genesis
   difficulty. Directory members submit ``["advance", e+1]`` once joins, leaves or evictions
   are pending and the epoch has lasted ``EPOCH_MIN_S``; the first one ordered wins.

   *Evict.* A directory committee member reports ``["evict", pk, e]`` for each member it has
   had no word of (``SoftStateService.last_heard``: connected, or a fresh capability record)
   for the genesis' ``evict_after_s``, counted from no earlier than its own start, so a node
   that just came up does not take everyone for silent. f+1 reports evict at the next epoch.
2. *End the directory's epoch.* A directory member whose replica executed the advance submits
   ``EndEpoch`` to its committee. When that checkpoint is stable the replica reports
   ``EpochEnded``; the member wraps the directory's final state and its proof in an
   ``EpochNotice``: self-certifying, since anyone who knows epoch e's directory committee can
   check the 2f+1 signed checkpoints over the state's digest.
3. *Follow.* Every node applies epoch notices in order (each is checked against the directory
   committee of the epoch before) and keeps the chain in its database (the newest
   ``CHAIN_KEPT`` notices in memory). It tells each peer how far it has followed the chain as
   the peer connects and as it moves on (``EpochHave``), and a node that is behind, a new one
   or one that was away, asks a peer that is ahead for the notices it lacks (``EpochFetch``,
   a batch at a time): ``epoch_sync``. Each notice after the first is sent as the difference
   from the one before (``EpochDelta``, ``consensus.statedelta``): the state is the whole
   membership, 740 KB at 10,000 members, but changes by a few members an epoch.
4. *Hand over.* On entering e+1, members of a shard's old committee submit ``EndEpoch`` to it;
   each old member then sends a ``HandoffNotice`` to a few of the new members (each new member
   hears from ``handoff_plan.FANOUT`` old ones, and asks others with ``HandoffWant`` if no
   valid one came), who check it, fetch the
   final state from old members (``consensus.reconfig.HandoffFetch``; a member of both takes
   its own copy when the digest matches) and start their replica from ``next_genesis``. Clients
   re-send cut-off requests to the new committee with the same ids (``Client.reconfigure``), so
   nothing committed is lost and nothing runs twice. Old replicas keep serving their final
   state for ``RETIRE_S`` seconds, then stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import trio

from consensus.chain import config_of, next_config
from consensus.checkpoint import InvalidProof
from consensus.committee import DIRECTORY_SHARD, shard_words
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.directory import DirectoryMachine, EpochConfig
from consensus.health import Health, Verdict
from consensus.pow import solve_pow
from consensus.reconfig import Handoff, HandoffFetch, next_genesis, verify_handoff
from consensus.replica import Replica
from consensus.statedelta import apply_delta, make_delta
from consensus.statemachine import state_digest
from daemon.clock import Clock
from daemon.committees.epoch_plan import (EPOCH_MIN_S, JOIN_RETRY_S, RETIRE_S, Advance,  # noqa: F401
                                          EpochPlanner, EpochStep, Evict, Join, Retire)
from daemon.committees.epoch_sync import FETCH_BATCH, EpochSync, Fetch
from daemon.committees.handoff_plan import HandoffAsks, handoff_targets
from daemon.committees.runner import ReplicaRunner
from daemon.genesis import Genesis
from protocol.canonical import DEFAULT_MAX_SIZE, packb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import node_id_from_public_key
from protocol.messages.pbft import (EndEpoch, EpochDelta, EpochFetch, EpochHave, EpochNotice,
                                    HandoffNotice, HandoffWant, StateChunk)

log = logging.getLogger("novacron.epochs")

_NS = "epochs"
CHAIN_KEPT = 16
"""Notices kept in memory, the newest; older ones are read from the database when asked for."""
ANNOUNCE_WHILE_BEHIND_S = 10.0
"""While a peer says it is further on, our own progress is announced only this often: during a
catch-up of many epochs nobody needs each step. Not never: a peer that lies about how far it
is would otherwise keep our neighbours from hearing of our real progress."""


class EpochHost(Protocol):
    """What the epoch manager uses of the committees service (which implements it): the node's
    keys and store, the current epoch (which the manager moves on), the replicas, and sending."""

    identity: Any
    genesis: Genesis
    network: str
    db: Any
    signer: Ed25519Signer
    verifier: Ed25519Verifier
    epoch: EpochConfig
    replicas: dict[tuple[int, int], ReplicaRunner]
    host: Any
    last_heard: Callable[[str], float | None]
    clock: Clock

    def config_for(self, shard: int) -> ReplicaConfig: ...

    def machine_for(self, shard: int, committee: tuple[bytes, ...]) -> Any: ...

    def reconfigure_clients(self) -> None: ...

    def send_public(self, public_key: bytes, data: bytes) -> None: ...

    def send_to_node(self, node_id: str, data: bytes) -> None: ...

    async def submit(self, shard: int, operation: bytes, timeout: float = ...) -> bytes: ...


def _key(epoch: int) -> bytes:
    return epoch.to_bytes(8, "big")


class EpochManager:
    def __init__(self, svc: EpochHost) -> None:
        self.svc = svc
        self.configs: dict[int, EpochConfig] = {svc.epoch.epoch: svc.epoch}
        """Epoch -> its configuration: the newest ``CHAIN_KEPT`` (``config`` rebuilds any)."""
        self._older: dict[int, EpochConfig] = {}
        """A few older configurations ``config`` rebuilt (certificates of a job that ran a
        while ago ask for the same few epochs many times)."""
        self.chain: dict[int, bytes] = {}
        """Ended epoch -> the sealed ``EpochNotice`` envelope that proves the next one: the
        newest ``CHAIN_KEPT`` (``notice`` reads any)."""
        self.deltas: dict[int, bytes] = {}
        """Ended epoch -> our sealed ``EpochDelta`` of its notice, as built to be sent (the
        newest ``CHAIN_KEPT``)."""
        self.sync = EpochSync()
        """Who is ahead of us on the chain, what we asked for: ``epoch_sync``."""
        self._announced_at = float("-inf")
        self.future: dict[int, Any] = {}
        self.handoffs: dict[tuple[int, int], tuple[Handoff, bytes | None]] = {}
        self.fetches: dict[tuple[int, int], HandoffFetch] = {}
        self.ended_sent: set[tuple[int, int]] = set()
        self.outbox: dict[tuple[int, int], bytes] = {}
        """(shard, ended epoch) -> our sealed HandoffNotice, sent once the new epoch is known."""
        self.handed: dict[tuple[int, int], bytes] = {}
        """(shard, ended epoch) -> our sealed HandoffNotice, for new members that ask for it
        (the last two epochs')."""
        self.asks = HandoffAsks()
        """Hand-overs we need as a new member and have not got: ``handoff_plan``."""
        self.planner = EpochPlanner(self.svc.clock.now(), self.svc.clock.wall())
        """What to do on each tick (join, advance, evict, retire): ``epoch_plan``."""
        self.stay_out = False
        """Set while the volunteer has left on purpose (``daemon.membership``): never join."""

    @property
    def entered_at(self) -> float:
        return self.planner.entered_at

    # -- start-up: replay the chain we kept -------------------------------------------------------

    def replay(self) -> None:
        for _key_bytes, raw in self.svc.db.scan(_NS):
            try:
                env = self.svc.verifier.open(raw)
                self._apply_notice(env.body, raw, replaying=True)
            except (RemoteProtocolError, InvalidProof) as err:
                log.warning("stored epoch notice rejected: %s", err)
                break

    # -- hooks from the service -------------------------------------------------------------------

    def on_committed(self, runner: ReplicaRunner) -> None:
        """A directory batch executed: if it advanced the epoch, end ours."""
        if runner.config.shard != DIRECTORY_SHARD:
            return
        machine: DirectoryMachine = runner.machine
        if machine.epoch > runner.config.epoch:
            self._end(DIRECTORY_SHARD, runner.config)

    def on_epoch_ended(self, runner: ReplicaRunner, seq: int, digest: bytes,
                       proof: tuple[bytes, ...]) -> None:
        shard, epoch = runner.config.shard, runner.config.epoch
        now = self.svc.clock.now()
        if shard == DIRECTORY_SHARD:
            notice = EpochNotice(shard, epoch, seq, digest, proof, runner.replica.service.snapshot())
            raw = self.svc.signer.seal(notice, now)
            self._apply_notice(notice, raw)
        own = runner.replica.service.snapshot()
        handoff = Handoff(shard, epoch, seq, digest, proof)
        raw = self.svc.signer.seal(HandoffNotice(shard, epoch, seq, digest, proof), now)
        self.outbox[(shard, epoch)] = self.handed[(shard, epoch)] = raw
        for key in [k for k in self.handed if k[1] < epoch - 1]:
            del self.handed[key]
        self.handoffs.setdefault((shard, epoch), (handoff, own))
        self._flush_outbox()
        self._maybe_fetch(shard, epoch)

    def on_notice(self, env: Any, raw: bytes) -> None:
        m = env.body
        if isinstance(m, (EpochNotice, EpochDelta)):
            if isinstance(m, EpochNotice):
                self._apply_notice(m, raw)
            else:
                self._apply_delta(m)
            self._send_fetch(self.sync.progressed(self.svc.epoch.epoch, self.svc.clock.now()))
        elif isinstance(m, EpochHave):
            peer = node_id_from_public_key(env.sender)
            self._send_fetch(self.sync.have(peer, m.epoch, self.svc.epoch.epoch,
                                            self.svc.clock.now()))
        elif isinstance(m, EpochFetch):
            self._serve(node_id_from_public_key(env.sender), m.epoch)
        elif isinstance(m, HandoffNotice):
            key = (m.shard, m.epoch)
            if key not in self.handoffs:
                self.handoffs[key] = (Handoff(m.shard, m.epoch, m.seq, m.state_digest, m.proof), None)
            self._maybe_fetch(m.shard, m.epoch)
        elif isinstance(m, HandoffWant):
            raw = self.handed.get((m.shard, m.epoch))
            if raw is not None and self.asks.may_answer(node_id_from_public_key(env.sender),
                                                        self.svc.clock.now()):
                self.svc.send_public(env.sender, raw)

    def on_state_chunk(self, env: Any) -> bool:
        """Feed a fetch; True if the chunk was for one of ours."""
        m = env.body
        fetch = self.fetches.get((m.shard, m.epoch)) if isinstance(m, StateChunk) else None
        if fetch is None:
            return False
        self._run(fetch.receive(env, self.svc.clock.now()))
        if fetch.snapshot is not None:
            del self.fetches[(m.shard, m.epoch)]
            self._start_replica(m.shard, m.epoch, fetch.handoff, fetch.snapshot)
        return True

    def on_peer(self, peer: str) -> None:
        """A peer connected: tell it how far we have followed the chain (it asks for what it
        lacks, and tells us how far it is)."""
        self.svc.send_to_node(peer, self._have())

    def on_peer_gone(self, peer: str) -> None:
        self.sync.gone(peer)

    def config(self, epoch: int) -> EpochConfig | None:
        """Epoch ``epoch``'s configuration; an old one is rebuilt from the stored notice that
        ended the epoch before (checked when it was applied). Each holds the whole
        membership (320 KB at 10,000 members): kept for every epoch since the start, they
        grew with the network's age."""
        cfg = self.configs.get(epoch) or self._older.get(epoch)
        if cfg is not None or not 0 <= epoch < self.svc.epoch.epoch:
            return cfg
        if epoch == 0:
            cfg = self.svc.genesis.epoch0()
        else:
            raw = self.notice(epoch - 1)
            if raw is None:
                return None
            cfg = config_of(self.svc.verifier.open(raw).body.state,
                            self.svc.genesis.directory_params())
        if len(self._older) >= 4:
            del self._older[next(iter(self._older))]
        self._older[epoch] = cfg
        return cfg

    def notice(self, epoch: int) -> bytes | None:
        """The sealed notice that ends ``epoch``, from memory or the database."""
        raw = self.chain.get(epoch)
        return raw if raw is not None else self.svc.db.get(_NS, _key(epoch))

    def _have(self) -> bytes:
        return self.svc.signer.seal(EpochHave(DIRECTORY_SHARD, self.svc.epoch.epoch),
                                    self.svc.clock.now())

    def _send_fetch(self, fetch: Fetch | None) -> None:
        if fetch is not None:
            log.info("fetching epoch notices from %d on from %s", fetch.epoch, fetch.peer)
            self.svc.send_to_node(fetch.peer, self.svc.signer.seal(
                EpochFetch(DIRECTORY_SHARD, fetch.epoch), self.svc.clock.now()))

    def _serve(self, peer: str, first: int) -> None:
        """Send ``peer`` the notices from the one ending ``first`` on (a batch; at most one
        batch a second: ``epoch_sync.SERVE_EVERY_S``)."""
        last = min(first + FETCH_BATCH, self.svc.epoch.epoch)
        if first >= last or not self.sync.may_serve(peer, self.svc.clock.now()):
            return
        for epoch in range(first, last):
            raw = self.notice(epoch) if epoch == 0 else self._delta(epoch)
            if raw is None:
                break
            self.svc.send_to_node(peer, raw)

    def _delta(self, epoch: int) -> bytes | None:
        """Our sealed ``EpochDelta`` of the notice that ends ``epoch`` (> 0)."""
        if epoch in self.deltas:
            return self.deltas[epoch]
        raw, base_raw = self.notice(epoch), self.notice(epoch - 1)
        if raw is None or base_raw is None:
            return None
        m, base = self.svc.verifier.open(raw).body, self.svc.verifier.open(base_raw).body.state
        delta = self.svc.signer.seal(EpochDelta(
            m.shard, m.epoch, m.seq, m.state_digest, m.proof, state_digest(base),
            make_delta(base, m.state)), self.svc.clock.now())
        self.deltas[epoch] = delta
        if len(self.deltas) > CHAIN_KEPT:
            del self.deltas[min(self.deltas)]
        return delta

    def _apply_delta(self, m: EpochDelta) -> None:
        """The notice ``m`` stands for, rebuilt from the one before it and applied (only the
        next one: the rest of a batch follows in order, and what is missed is asked again)."""
        if m.epoch != self.svc.epoch.epoch or m.epoch == 0:
            return
        base_raw = self.notice(m.epoch - 1)
        if base_raw is None:
            return
        base = self.svc.verifier.open(base_raw).body.state
        if state_digest(base) != m.base_digest:
            raise MalformedMessage(f"epoch {m.epoch}'s delta is against a state we do not hold")
        notice = EpochNotice(m.shard, m.epoch, m.seq, m.state_digest, m.proof,
                             apply_delta(base, m.delta, DEFAULT_MAX_SIZE))
        self._apply_notice(notice, self.svc.signer.seal(notice, self.svc.clock.now()))

    def tick(self, nursery: trio.Nursery, now: float) -> None:
        self._send_fetch(self.sync.next(self.svc.epoch.epoch, now))  # one that timed out
        for (shard, ended), pk in self.asks.due(now):
            log.info("no hand-over of %s, epoch %d, yet: asking %s", shard_words(shard), ended,
                     node_id_from_public_key(pk))
            self.svc.send_public(pk, self.svc.signer.seal(HandoffWant(shard, ended), now))
        for fetch in list(self.fetches.values()):
            self._run(fetch.tick(now))
        svc = self.svc
        epoch = svc.epoch
        directory = svc.replicas.get((DIRECTORY_SHARD, epoch.epoch))
        dm: DirectoryMachine | None = directory.machine if directory is not None else None
        for step in self.planner.plan(now, svc.clock.wall(), svc.identity.public_key, epoch,
                                      self.stay_out, dm, svc.genesis.params["evict_after_s"],
                                      svc.last_heard):
            if isinstance(step, Join):
                nursery.start_soon(self._join)
            elif isinstance(step, Advance):
                nursery.start_soon(self._directory_request, ["advance", step.epoch], step)
            elif isinstance(step, Evict):
                log.info("member %s silent for %.0f s: reporting it to the directory",
                         node_id_from_public_key(step.public_key), step.silent_s)
                nursery.start_soon(self._directory_request,
                                   ["evict", step.public_key, step.epoch], step)
            elif isinstance(step, Retire):
                if svc.replicas.pop((step.shard, step.epoch), None) is not None:
                    log.info("retired the replica of %s, epoch %d", shard_words(step.shard),
                             step.epoch)

    # -- steps ------------------------------------------------------------------------------------

    async def _join(self) -> None:
        svc = self.svc
        params = svc.genesis.directory_params()
        nonce = await trio.to_thread.run_sync(solve_pow, svc.network, svc.identity.public_key,
                                              params.difficulty)
        await self._directory_request(["join", nonce])

    async def _directory_request(self, op: list[Any], step: EpochStep | None = None) -> None:
        try:
            reply = await self.svc.submit(DIRECTORY_SHARD, packb(op), timeout=20.0)
            log.info("directory %s: %s", op[0], reply.decode(errors="replace"))
        except Exception as err:  # noqa: BLE001 - a background request: log, retry later
            log.info("directory %s not done yet: %s", op[0], err)
            if step is not None:
                self.planner.failed(step)

    def _end(self, shard: int, cfg: Any) -> None:
        key = (shard, cfg.epoch)
        if key in self.ended_sent:
            return
        self.ended_sent.add(key)
        raw = self.svc.signer.seal(EndEpoch(shard, cfg.epoch), self.svc.clock.now())
        for pk in cfg.committee:
            self.svc.send_public(pk, raw)
        log.info("asked %s to end epoch %d", shard_words(shard), cfg.epoch)

    def _apply_notice(self, m: EpochNotice, raw: bytes, replaying: bool = False) -> None:
        current = self.svc.epoch
        if m.epoch < current.epoch:
            return
        if m.epoch > current.epoch:
            if len(self.future) < 64:
                self.future[m.epoch] = (m, raw)
            return
        new = next_config(m, current, self.svc.genesis.directory_params(), self.svc.verifier)
        self.chain[m.epoch] = raw
        self.chain.pop(m.epoch - CHAIN_KEPT, None)
        if not replaying:
            with self.svc.db.transaction():
                self.svc.db.put(_NS, _key(m.epoch), raw)
        self._enter(new, replaying)
        now = self.svc.clock.now()
        if not replaying and (not self.sync.behind(new.epoch)
                              or now - self._announced_at >= ANNOUNCE_WHILE_BEHIND_S):
            self._announced_at = now  # catching up, a batch at a time: now and then only
            have = self._have()
            for peer in self.svc.host.connected_peers():
                self.svc.send_to_node(peer, have)
        nxt = self.future.pop(m.epoch + 1, None)
        if nxt is not None:
            self._apply_notice(nxt[0], nxt[1], replaying)

    def _enter(self, new: EpochConfig, replaying: bool) -> None:
        old = self.svc.epoch
        self.configs[new.epoch] = new
        self.configs.pop(new.epoch - CHAIN_KEPT, None)
        self.svc.epoch = new
        me = self.svc.identity.public_key
        self.planner.entered(self.svc.clock.now(), [] if replaying else [
            (shard, old.epoch) for shard, committee in old.committees.items() if me in committee])
        log.info("entered epoch %d: %d members, committees of %d", new.epoch, len(new.members),
                 new.committee_size)
        if replaying:
            return
        for shard, committee in old.committees.items():
            if me in committee:
                self._end(shard, ReplicaConfigView(shard, old.epoch, committee))
        now = self.svc.clock.now()
        self.asks.drop_before(old.epoch)
        for shard, committee in new.committees.items():
            if me in committee:  # until a valid one is in (``_maybe_fetch``)
                self.asks.want((shard, old.epoch), now, old.committees.get(shard, ()),
                               committee.index(me))
        self.svc.reconfigure_clients()
        self._flush_outbox()
        for shard in new.committees:
            self._maybe_fetch(shard, old.epoch)

    def _flush_outbox(self) -> None:
        me = self.svc.identity.public_key
        for (shard, ended), raw in list(self.outbox.items()):
            new, old = self.configs.get(ended + 1), self.configs.get(ended)
            if new is None or old is None:
                continue
            del self.outbox[(shard, ended)]
            for pk in handoff_targets(me, old.committees.get(shard, ()),
                                      new.committees.get(shard, ())):
                self.svc.send_public(pk, raw)

    def _maybe_fetch(self, shard: int, ended: int) -> None:
        """Start the replica of (shard, ended+1) once we know the handoff and are a member."""
        new = self.configs.get(ended + 1)
        old = self.configs.get(ended)
        me = self.svc.identity.public_key
        got = self.handoffs.get((shard, ended))
        if new is None or old is None or got is None or me not in new.committees.get(shard, ()):
            return
        if (shard, ended + 1) in self.svc.replicas or (shard, ended) in self.fetches:
            return
        handoff, own = got
        try:
            verify_handoff(handoff, old.committees[shard], self.svc.verifier)
        except InvalidProof as err:
            log.warning("rejected a handoff of %s: %s", shard_words(shard), err)
            del self.handoffs[(shard, ended)]
            return
        self.asks.got((shard, ended))
        if own is not None and state_digest(own) == handoff.digest:
            self._start_replica(shard, ended, handoff, own)
            return
        self.fetches[(shard, ended)] = HandoffFetch(handoff, self.svc.signer, self.svc.verifier)
        log.info("fetching the final state of %s, epoch %d", shard_words(shard), ended)

    def _start_replica(self, shard: int, ended: int, handoff: Handoff, snapshot: bytes) -> None:
        svc = self.svc
        cfg = svc.config_for(shard)
        machine = svc.machine_for(shard, cfg.committee)
        genesis = next_genesis(handoff, snapshot, svc.machine_for(shard, cfg.committee))
        with svc.db.transaction():
            svc.db.put(_NS + "-genesis", f"{shard}/{cfg.epoch}", genesis)
        replica = Replica(cfg, svc.signer, svc.verifier, machine, genesis=genesis,
                          now=self.svc.clock.now())
        svc.replicas[(shard, cfg.epoch)] = ReplicaRunner(cfg, replica, machine)
        log.info("started the replica of %s, epoch %d, from the handed-over state",
                 shard_words(shard), cfg.epoch)

    def stored_genesis(self, shard: int, epoch: int) -> bytes | None:
        return self.svc.db.get(_NS + "-genesis", f"{shard}/{epoch}")

    def _run(self, actions: list[Any]) -> None:
        for a in actions:
            self.svc.send_public(a.to, a.data)

    def health(self) -> Verdict:
        """Degraded while the node follows the chain from two or more epochs behind: its
        committees are old ones until it catches up."""
        ours = self.svc.epoch.epoch
        target = self.sync.catching_up_to(ours)
        if target is None:
            return Verdict(Health.OK, "")
        return Verdict(Health.DEGRADED, f"following the epoch chain (epoch {ours} of {target})")

    def status(self) -> dict[str, Any]:
        """``catching_up``: a peer said it is further on (even one epoch, even one that later
        failed a fetch); ``catching_up_to``: the epoch the health line's "following the epoch
        chain" counts to, or None (``EpochSync.catching_up_to``), so the two never disagree."""
        ours = self.svc.epoch.epoch
        return {"chain_to": ours, "catching_up": self.sync.behind(ours),
                "catching_up_to": self.sync.catching_up_to(ours),
                "fetching": [f"{_name(s)}@{e}" for s, e in self.fetches],
                "joining": self.svc.identity.public_key not in self.svc.epoch.members
                and not self.stay_out, "left": self.stay_out}


class ReplicaConfigView:
    """Just what ``_end`` needs of a committee: shard, epoch, members."""

    def __init__(self, shard: int, epoch: int, committee: tuple[bytes, ...]) -> None:
        self.shard, self.epoch, self.committee = shard, epoch, committee


def _name(shard: int) -> str:
    return "directory" if shard == DIRECTORY_SHARD else str(shard)
