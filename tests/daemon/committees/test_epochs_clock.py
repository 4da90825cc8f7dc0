"""The committee service's view change and the epoch manager's hand-over, whole services under
``trio.testing.MockClock``: real PBFT replicas, real Ed25519, real SQLite, over
``testnet.memnet``; no real sleeps, no assertions on durations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path

import pytest
import trio

from consensus.committee import DIRECTORY_SHARD
from consensus.health import Health
from daemon.clock import TrioClock
from daemon.committees.epoch_plan import RETIRE_S
from daemon.committees.epoch_sync import FETCH_TIMEOUT_S
from daemon.committees.peer_pace import FLOOD_ASKS, AskFlood
from daemon.committees.service import CommitteeService
from daemon.genesis import make_genesis
from daemon.ledger.shard import KV, LedgerShards
from daemon.softstate.service import SoftStateService
from daemon.storage.db import Database
from daemon.ledger.certificate import (ResultCertificate, chain_doc, chain_from_doc,
                                       verify_certificate)
from protocol.canonical import packb
from protocol.envelope import peek_type
from protocol.identity import NodeIdentity
from protocol.messages.pbft import EpochFetch, EpochHave
from protocol.messages.tasks import TaskStatus
from testnet.memnet import MemoryNet

WALL_START = 1_750_000_000.0


def network(tmp_path: Path, n: int, seed: int) -> tuple[MemoryNet, list[NodeIdentity],
                                                        list[CommitteeService]]:
    ids = [NodeIdentity(random.Random(seed + i).randbytes(32)) for i in range(n)]
    genesis = make_genesis("memnet", ids, {"shards": 1, "difficulty": 0, "min_committee": 4})
    net = MemoryNet()
    services = [CommitteeService(i, genesis, net.host(i.node_id), Database(tmp_path / f"{k}.db"),
                                 LedgerShards(), clock=TrioClock(WALL_START))
                for k, i in enumerate(ids)]
    return net, ids, services


def isolate(net: MemoryNet, node: str, cut: bool) -> None:
    for other in net.hosts:
        if other != node:
            (net.partition if cut else net.heal)(node, other)


async def test_a_silent_primary_is_replaced_and_catches_up_when_it_returns(
        tmp_path: Path, autojump_clock: object) -> None:
    """The shard's primary loses every link: a request through a backup still commits (the
    backups change view), and once the links come back the old primary learns the new view
    and the batches it missed."""
    net, ids, services = network(tmp_path, 4, 7200)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        assert await services[0].submit(0, KV + packb(["put", "a", "1"])) == b"ok"
        first = services[0].replicas[(0, 0)].replica
        assert first.view == 0
        old_primary = first.cfg.committee[first.primary]
        silent = next(s for s in services if s.identity.public_key == old_primary)
        others = [s for s in services if s is not silent]
        isolate(net, silent.identity.node_id, cut=True)

        assert await others[0].submit(0, KV + packb(["put", "b", "2"])) == b"ok"
        assert await others[1].submit(0, KV + packb(["get", "a"])) == b"1"
        for svc in others:
            replica = svc.replicas[(0, 0)].replica
            assert replica.view >= 1 and replica.cfg.committee[replica.primary] != old_primary
            assert svc.replicas[(0, 0)].machine.kv.data == {"a": "1", "b": "2"}
        assert silent.replicas[(0, 0)].machine.kv.data == {"a": "1"}

        isolate(net, silent.identity.node_id, cut=False)
        assert await others[2].submit(0, KV + packb(["put", "c", "3"])) == b"ok"
        views = {s.replicas[(0, 0)].replica.view for s in others}
        while silent.replicas[(0, 0)].machine.kv.data != {"a": "1", "b": "2", "c": "3"}:
            await trio.sleep(1)
        assert silent.replicas[(0, 0)].replica.view in views
        # And it takes part again: a request through it commits.
        assert await silent.submit(0, KV + packb(["get", "b"])) == b"2"
        nursery.cancel_scope.cancel()


async def test_a_member_that_leaves_hands_its_committees_over(tmp_path: Path,
                                                             autojump_clock: object) -> None:
    """Five members; one asks the directory to leave. At the next epoch every node agrees on
    the four that stay, the shard's state is handed to the re-drawn committee (what was
    written before is read back after), new requests commit there, and the old epoch's
    replicas retire ``RETIRE_S`` later."""
    net, ids, services = network(tmp_path, 5, 7300)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        assert await services[1].submit(0, KV + packb(["put", "before", "1"])) == b"ok"
        leaver = services[4]
        leaver.epochs.stay_out = True  # what ``novacron leave`` sets first (daemon.membership)
        await leaver.submit(DIRECTORY_SHARD, packb(["leave"]))
        while not all(svc.epoch.epoch == 1 for svc in services):
            await trio.sleep(1)
        stay = {i.public_key for i in ids[:4]}
        for svc in services:
            assert set(svc.epoch.members) == stay
            assert all(set(c) <= stay for c in svc.epoch.committees.values())
        assert not leaver.is_member()

        stayers = services[:4]
        assert await stayers[2].submit(0, KV + packb(["get", "before"])) == b"1"
        assert await stayers[3].submit(0, KV + packb(["put", "after", "2"])) == b"ok"
        await trio.sleep(1)
        for svc in stayers:
            assert svc.replicas[(0, 1)].machine.kv.data == {"before": "1", "after": "2"}
        # The node that left is still a client of the network: it reads the new committee.
        assert await leaver.submit(0, KV + packb(["get", "after"])) == b"2"

        await trio.sleep(RETIRE_S + 5)
        for svc in services:
            assert all(epoch == 1 for _, epoch in svc.replicas), sorted(svc.replicas)
        assert not any(shard == 0 for shard, _ in leaver.replicas)
        nursery.cancel_scope.cancel()


async def test_a_silent_member_is_evicted_and_joins_again_when_it_returns(
        tmp_path: Path, autojump_clock: object) -> None:
    """The committees wired to the real soft-state service (``connect``, start-up's second
    phase), which says when each node was last heard of. A member cut off from everyone for
    ``evict_after_s`` is evicted at the next epoch and the shard is handed to the four that
    stay; when its links come back it follows the epoch notices, finds itself outside, and
    joins again (one more epoch)."""
    ids = [NodeIdentity(random.Random(7400 + i).randbytes(32)) for i in range(5)]
    evict_after = 120
    genesis = make_genesis("memnet", ids, {"shards": 1, "difficulty": 0, "min_committee": 4,
                                           "evict_after_s": evict_after})
    net = MemoryNet()
    services, softs = [], []
    for k, i in enumerate(ids):
        host, db, clock = net.host(i.node_id), Database(tmp_path / f"{k}.db"), TrioClock(WALL_START)
        soft = SoftStateService(i, "memnet", host, db, slots=1, memory_mib=1024, domain="",
                                load=lambda: 0, clock=clock)
        svc = CommitteeService(i, genesis, host, db, LedgerShards(), clock=clock)
        svc.connect(soft)
        services.append(svc)
        softs.append(soft)
    away = services[4]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for soft, svc in zip(softs, services):
            await nursery.start(soft.run)
            await nursery.start(svc.run)
        assert await services[0].submit(0, KV + packb(["put", "before", "1"])) == b"ok"
        isolate(net, away.identity.node_id, cut=True)
        stayers = services[:4]
        while not all(svc.epoch.epoch == 1 for svc in stayers):
            await trio.sleep(1)
        stay = {i.public_key for i in ids[:4]}
        for svc in stayers:
            assert set(svc.epoch.members) == stay
        assert away.epoch.epoch == 0  # it heard nothing of it
        assert await stayers[1].submit(0, KV + packb(["get", "before"])) == b"1"

        isolate(net, away.identity.node_id, cut=False)
        while not all(ids[4].public_key in svc.epoch.members for svc in services):
            await trio.sleep(1)
        assert {svc.epoch.epoch for svc in services} == {2}
        assert await away.submit(0, KV + packb(["get", "before"])) == b"1"
        nursery.cancel_scope.cancel()


async def test_a_node_away_for_two_epochs_fetches_each_notice_it_missed_once(
        tmp_path: Path, autojump_clock: object) -> None:
    """A node cut off while a member leaves and joins again (two epochs) is told, as its
    links come back, how far its peers are, and asks one of them for the two notices: the
    first whole, the second as its difference from the first. Before, every peer sent it the
    whole chain as it reconnected and every new notice as they applied it: a notice crossed to
    each node once per neighbour, and the chain only grows."""
    net, ids, services = network(tmp_path, 6, 7600)
    notices_to: dict[tuple[str, str], int] = {}
    for host in net.hosts.values():
        real = host.send

        def send(peer: str, protocol: str, frame: bytes, real=real) -> bool:
            kind = peek_type(frame)
            if kind in ("pbft.epoch", "pbft.epoch_delta"):
                notices_to[(peer, kind)] = notices_to.get((peer, kind), 0) + 1
            return real(peer, protocol, frame)
        host.send = send  # type: ignore[method-assign]
    away, mover = services[5], services[4]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        isolate(net, away.identity.node_id, cut=True)
        mover.epochs.stay_out = True  # what ``novacron leave`` sets first (daemon.membership)
        await mover.submit(DIRECTORY_SHARD, packb(["leave"]))
        while not all(svc.epoch.epoch == 1 for svc in services[:5]):
            await trio.sleep(1)
        mover.epochs.stay_out = False  # ``novacron join``: it asks to join at its next tick
        while not all(svc.epoch.epoch == 2 for svc in services[:5]):
            await trio.sleep(1)
        assert away.epoch.epoch == 0 and mover.is_member()
        me = away.identity.node_id
        assert not any(peer == me for peer, _ in notices_to)
        isolate(net, away.identity.node_id, cut=False)
        while away.epoch.epoch < 2:
            await trio.sleep(1)
        assert away.epoch == services[0].epoch
        assert notices_to[(me, "pbft.epoch")] == notices_to[(me, "pbft.epoch_delta")] == 1
        assert not away.epochs.status()["catching_up"]
        kept = dict(away.epochs.configs)  # older ones are rebuilt from the stored notices
        away.epochs.configs = {2: kept[2]}
        assert [away.epochs.config(e) for e in (0, 1, 2)] == [kept[0], kept[1], kept[2]]
        nursery.cancel_scope.cancel()
    _check_a_certificate_against_the_chain_held_once(away, ids)


def _check_a_certificate_against_the_chain_held_once(node: CommitteeService,
                                                     ids: list[NodeIdentity]) -> None:
    """A result directory holds the chain once (``epoch_chain.json``) and the certificates
    none: an epoch-2 certificate signed by that epoch's committee verifies with it, and says
    what is missing without it."""
    genesis = node.genesis
    doc = json.loads(json.dumps(chain_doc("memnet", tuple(node.epochs.notice(e) for e in range(2)))))
    committee = node.epochs.config(2).committees[0]
    by_key = {i.public_key: i for i in ids}
    cert = ResultCertificate("memnet", 0, 2, 9, b"j" * 32, 0, int(TaskStatus.OK), 0,
                             hashlib.sha256(b"x").digest(), 1, committee, (), agreed=2)
    cert = dataclasses.replace(cert, signatures=tuple(
        (k, by_key[pk].sign(cert.statement())) for k, pk in enumerate(committee)))
    checks = verify_certificate(cert, genesis, b"x", chain=chain_from_doc(doc, genesis))
    assert all(c.ok for c in checks), checks
    assert "2 epoch notice(s)" in checks[-1].what
    alone = verify_certificate(cert, genesis, b"x")
    assert not alone[-1].ok and "epoch_chain.json" in alone[-1].what
    short = chain_from_doc({**doc, "notices": doc["notices"][:1]}, genesis)
    assert "reaches epoch 1, not 2" in verify_certificate(cert, genesis, b"x", chain=short)[-1].what


async def test_a_new_member_whose_handoffs_were_lost_asks_an_old_member_for_one(
        tmp_path: Path, autojump_clock: object) -> None:
    """Each new member hears the hand-over from a few old members only
    (``handoff_plan.FANOUT``; it heard from all of them, each a copy of 2f+1 signatures): if
    none of those comes, it asks the others in turn and takes its seat all the same."""
    net, ids, services = network(tmp_path, 5, 7700)
    asked: list[str] = []
    for host in net.hosts.values():
        real = host.send

        def send(peer: str, protocol: str, frame: bytes, real=real) -> bool:
            kind = peek_type(frame)
            if kind == "pbft.handoff_want":
                asked.append(peer)
            elif kind == "pbft.handoff" and not asked:
                return True  # every pushed copy is lost
            return real(peer, protocol, frame)
        host.send = send  # type: ignore[method-assign]
    mover = services[4]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        assert await services[1].submit(0, KV + packb(["put", "before", "1"])) == b"ok"
        mover.epochs.stay_out = True
        await mover.submit(DIRECTORY_SHARD, packb(["leave"]))
        while not all(svc.epoch.epoch == 1 for svc in services):
            await trio.sleep(1)
        mover.epochs.stay_out = False  # back: a new member of every committee at epoch 2
        while not all(svc.epoch.epoch == 2 for svc in services):
            await trio.sleep(1)
        with trio.fail_after(120):  # virtual seconds: without asking it waits for ever
            while (0, 2) not in mover.replicas:
                await trio.sleep(1)
        assert asked and mover.identity.node_id not in asked
        assert mover.replicas[(0, 2)].machine.kv.data == {"before": "1"}
        nursery.cancel_scope.cancel()


async def test_a_peer_that_claims_to_be_far_ahead_does_not_silence_a_nodes_announcements(
        tmp_path: Path, autojump_clock: object) -> None:
    """A node that believes a peer is further on takes each epoch it applies for a step of a
    catch-up and tells nobody; it still tells its peers now and then, so one neighbour lying
    about how far it is cannot keep the others from hearing of the node's progress."""
    net, ids, services = network(tmp_path, 5, 7800)
    node, liar, leaver = services[0], services[3], services[4]
    announced: list[str] = []
    real = net.hosts[node.identity.node_id].send

    def send(peer: str, protocol: str, frame: bytes) -> bool:
        if peek_type(frame) == "pbft.epoch_have":
            announced.append(peer)
        return real(peer, protocol, frame)
    net.hosts[node.identity.node_id].send = send  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        lie = liar.signer.seal(EpochHave(DIRECTORY_SHARD, 10**6), liar.clock.now())
        node.epochs.on_notice(node.verifier.open(lie), lie)
        assert node.epochs.status()["catching_up"]
        assert node.epochs.status()["catching_up_to"] == 10**6  # what the health line counts to
        health, why = node.health()  # believed until the liar fails a fetch
        assert health is Health.DEGRADED and \
            "epochs: following the epoch chain (epoch 0 of 1000000)" in why
        announced.clear()
        leaver.epochs.stay_out = True
        await leaver.submit(DIRECTORY_SHARD, packb(["leave"]))
        while node.epoch.epoch < 1:
            await trio.sleep(1)
        assert announced  # the epoch it entered, told to its peers all the same
        with trio.fail_after(3 * FETCH_TIMEOUT_S):  # the liar's fetch times out: not believed
            while "epochs:" in node.health()[1]:
                await trio.sleep(1)
        assert node.epochs.status()["catching_up_to"] is None  # status agrees with health
        # Asking for notices without pause: answered once a second, and the flood is counted
        # against the asker (a fault: enough of them ban it).
        def ask() -> bytes:
            return liar.signer.seal(EpochFetch(DIRECTORY_SHARD, 0), liar.clock.now())
        await node._on_frame(liar.identity.node_id, ask())  # answered
        for _ in range(FLOOD_ASKS - 1):
            await node._on_frame(liar.identity.node_id, ask())
        with pytest.raises(AskFlood):
            await node._on_frame(liar.identity.node_id, ask())
        nursery.cancel_scope.cancel()


async def test_status_counts_what_a_member_sent_in_frames_as_well_as_bytes(
        tmp_path: Path, autojump_clock: object) -> None:
    """A put in a committee of 4: every member sends its commit to the 3 others, and status
    says so in frames (what a loaded machine's CPU follows) beside the bytes."""
    net, ids, services = network(tmp_path, 4, 7900)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        before = [svc.status()["sent_frames"].get("pbft.commit", 0) for svc in services]
        assert await services[1].submit(0, KV + packb(["put", "k", "v"])) == b"ok"
        await trio.sleep(1)
        for svc, was in zip(services, before):
            st = svc.status()
            assert set(st["sent_frames"]) == set(st["sent_kib"])
            assert st["sent_frames"]["pbft.commit"] - was >= 3  # at least this batch's
        nursery.cancel_scope.cancel()
