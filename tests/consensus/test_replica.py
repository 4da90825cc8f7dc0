"""The replica on real Ed25519 envelopes, driven message by message (``testnet.pbft_sim.bus``)."""

import pytest

from consensus.actions import Broadcast, Committed, Misbehaviour, Send, StateInstalled, ViewEntered
from consensus.batches import REFS_GRACE
from consensus.evidence import Equivocation, check_equivocation
from consensus.log import batch_digest
from consensus.quorum import ed25519_vote_check, prepare_bytes, verify_qc
from consensus.replica import Replica
from consensus.statemachine import KeyValueMachine, kv_op
from protocol.messages.pbft import Commit, PrePrepare, Prepare, Request
from testnet.pbft_sim.bus import Bus


def committed(bus, i):
    return [a for a in bus.actions[bus.cfg.committee[i]] if isinstance(a, Committed)]


def kv(bus, i):
    return bus.replica(i).service.machine.data


def test_normal_case_commits_replies_and_certifies():
    bus = Bus(4)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "x", b"1"))
    bus.run()
    assert [d.result for d in client.done] == [b"ok"]
    for i in range(4):
        (c,) = committed(bus, i)
        assert c.seq == 1 and kv(bus, i) == {"x": b"1"}
        # Anyone can check the certificate offline with just the committee's public keys.
        assert verify_qc(c.qc, bus.cfg.committee, ed25519_vote_check) is None
        assert c.qc.digest == batch_digest([r.raw for r in c.requests])
    qc = committed(bus, 0)[0].qc
    forged = qc.__class__(qc.shard, qc.epoch, qc.view, qc.seq, b"\x01" * 32, qc.signers,
                          qc.signatures)
    assert "does not verify" in verify_qc(forged, bus.cfg.committee)
    other = Bus(4, seed=9).cfg.committee
    assert verify_qc(qc, other) is not None


def test_duplicates_execute_once_and_get_the_cached_reply():
    bus = Bus(4)
    client = bus.add_client()
    bus.submit(client, kv_op("add", "n", 5))
    sent = [raw for _, _, raw in list(bus.queue)]
    bus.run()
    assert client.done[-1].result == b"5"
    client.current = client.done[-1].request_id  # the client retries the same request id
    client.replies = {}
    bus.emit(next(iter(bus.clients)), client.tick(10.0))
    for raw in sent:  # and an attacker replays its original envelope to every replica
        for pk in bus.cfg.committee:
            bus.inject(b"", pk, raw)
    bus.run()
    assert client.current is None and client.done[-1].result == b"5"
    assert all(kv(bus, i) == {"n": 5} for i in range(4))
    assert all(len(committed(bus, i)) == 1 for i in range(4))


def test_restarted_replica_never_prepares_a_conflicting_batch():
    bus = Bus(4)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "a", b"1"))
    # Deliver only the pre-prepare to replica 1, which persists it and prepares.
    bus.drop = lambda src, dst, env: env.type != "pbft.request" and not (
        env.type == "pbft.preprepare" and dst == bus.cfg.committee[1])
    bus.run()
    r1 = bus.cfg.committee[1]
    assert any(isinstance(a, Broadcast) for a in bus.actions[r1])
    # Replica 1 crashes and restarts from its store; the primary equivocates.
    primary = bus.signer(bus.cfg.committee[0])
    alt_req = bus.signer(bus.cfg.committee[0]).seal(Request(3, 1, 99, b"other"), 0.0)
    alt_digest = batch_digest([alt_req])
    alt = primary.seal(PrePrepare(3, 1, 0, 1, alt_digest, (alt_req,), primary.sign_vote(
        prepare_bytes(3, 1, 0, 1, alt_digest))), 0.0)

    def reaction(replica):
        acts = replica.tick(0.0) + replica.receive(bus.verifier.open(alt))
        prepares = [a for a in acts if isinstance(a, Broadcast)
                    and isinstance(bus.verifier.open(a.data).body, Prepare)]
        return prepares, [a for a in acts if isinstance(a, Misbehaviour)]

    prepares, blame = reaction(bus.make(r1))
    assert prepares == []
    (m,) = blame
    assert isinstance(m.evidence, Equivocation) and m.offender == bus.cfg.committee[0]
    assert check_equivocation(m.evidence, bus.verifier) is None
    # Without its store the same replica would have voted for the second batch: the test bites.
    bus.disks[r1].clear()
    prepares, _ = reaction(bus.make(r1))
    assert len(prepares) == 1


def test_restart_re_executes_committed_batches_from_the_store():
    bus = Bus(4, checkpoint_interval=2, window=4)
    client = bus.add_client()
    for i in range(5):
        bus.submit(client, kv_op("add", "n", 1))
        bus.run()
    r2 = bus.cfg.committee[2]
    before = bus.replica(2).service.snapshot()
    assert bus.replica(2).stable.seq == 4 and "slot:1" not in bus.disks[r2]
    restarted = bus.make(r2)
    acts = restarted.tick(0.0)
    assert [a.seq for a in acts if isinstance(a, Committed)] == [5]  # 1-4 are in the checkpoint
    assert restarted.service.snapshot() == before and restarted.last_executed == 5


def test_silent_primary_is_voted_out_and_pending_requests_commit():
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    primary = bus.cfg.committee[0]
    bus.drop = lambda src, dst, env: src == primary
    bus.submit(client, kv_op("put", "k", b"w"))
    for _ in range(40):
        bus.tick(0.25)
        bus.run()
        if client.current is None:
            break
    assert client.current is None and client.done[-1].result == b"ok"
    for i in (1, 2, 3):
        assert bus.replica(i).view == 1 and kv(bus, i) == {"k": b"w"}
        assert any(isinstance(a, ViewEntered) and a.view == 1 for a in bus.actions[
            bus.cfg.committee[i]])


def test_a_replica_behind_a_committee_that_commits_does_not_blame_the_primary_for_a_while():
    """It hears a quorum commit batches it cannot execute (its line brings only votes): its
    lag, not the primary's fault, up to LAG_PATIENCE timeouts; then it suspects after all."""
    from consensus.timers import LAG_PATIENCE
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25, refs_above=3)  # requests to all
    client = bus.add_client()
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    r3 = bus.cfg.committee[3]
    votes = ("pbft.prepare", "pbft.commit", "pbft.request")
    bus.drop = lambda src, dst, env: dst == r3 and env.type not in votes
    bus.submit(client, kv_op("put", "k", b"w"))
    bus.run()
    slow = bus.replica(3)
    assert slow.last_executed == 1 and bus.replica(0).last_executed == 2
    for _ in range(int(2 * 4)):  # two timeouts
        bus.tick(0.25)
        bus.run()
    assert slow.view == 0 and not slow.view_changing and slow.timeouts_excused >= 1
    for _ in range(int(4 * (LAG_PATIENCE + 1))):
        bus.tick(0.25)
        bus.run()
    assert slow.view_changing  # the patience is bounded
    assert all(bus.replica(i).view == 0 for i in (0, 1, 2))


def test_messages_outside_the_window_epoch_or_committee_are_dropped():
    bus = Bus(4, checkpoint_interval=2, window=4)
    r = bus.replica(1)
    s0 = bus.signer(bus.cfg.committee[0])
    s2 = bus.signer(bus.cfg.committee[2])
    for msg, signer in [(Prepare(3, 1, 0, 5, b"\x00" * 32, b"\x00" * 64), s2),  # above the high watermark
                        (Prepare(3, 2, 0, 1, b"\x00" * 32, b"\x00" * 64), s2),  # another epoch
                        (Prepare(4, 1, 0, 1, b"\x00" * 32, b"\x00" * 64), s2),  # another shard
                        (Prepare(3, 1, 7, 1, b"\x00" * 32, b"\x00" * 64), s2),  # a future view
                        (Prepare(3, 1, 0, 1, b"\x00" * 32, b"\x00" * 64), s0)]:  # from the primary
        assert r.receive(bus.verifier.open(signer.seal(msg, 0.0))) == []
    assert r.log.slots == {}
    stranger = bus.add_client()
    raw = stranger.signer.seal(Commit(3, 1, 0, 1, b"\x00" * 32, b"\x00" * 64), 0.0)
    (m,) = r.receive(bus.verifier.open(raw))
    assert isinstance(m, Misbehaviour) and m.offender == stranger.signer.public_key
    bad_batch = s0.seal(PrePrepare(3, 1, 0, 1, b"\x00" * 32, (), b"\x00" * 64), 0.0)
    (m,) = r.receive(bus.verifier.open(bad_batch))
    assert isinstance(m, Misbehaviour) and "digest" in m.reason


def test_wiped_replica_catches_up_by_state_transfer_in_chunks():
    bus = Bus(4, checkpoint_interval=2, window=4, chunk_size=40, status_interval=0.25)
    r3 = bus.cfg.committee[3]
    bus.drop = lambda src, dst, env: r3 in (src, dst)
    client = bus.add_client()
    for i in range(9):
        bus.submit(client, kv_op("put", f"key{i}", b"x" * 20))
        bus.run()
    assert bus.replica(0).stable.seq == 8
    bus.disks[r3].clear()
    bus.replicas[r3] = bus.make(r3)  # restarted with lost state
    bus.drop = lambda src, dst, env: False
    bus.submit(client, kv_op("put", "late", b"y"))
    for _ in range(20):
        bus.tick(0.25)
        bus.run()
    installed = [a for a in bus.actions[r3] if isinstance(a, StateInstalled)]
    assert installed and installed[-1].seq >= 8  # beyond its old window: only a state transfer helps
    assert bus.replica(3).last_executed == bus.replica(0).last_executed == 10
    assert bus.replica(3).service.snapshot() == bus.replica(0).service.snapshot()


def test_laggers_fetch_state_from_members_other_than_the_primary_and_spread_over_them():
    """Every lagger asked the checkpoint's first signer, in committee order the view-0
    primary: its uplink carried every snapshot, and the committee stalled behind it."""
    bus = Bus(7, checkpoint_interval=2, window=4, chunk_size=40, status_interval=0.25)
    laggers = [bus.cfg.committee[i] for i in (3, 5)]
    bus.drop = lambda src, dst, env: src in laggers or dst in laggers
    client = bus.add_client()
    for i in range(9):
        bus.submit(client, kv_op("put", f"key{i}", b"x" * 20))
        bus.run()
    for pk in laggers:
        bus.disks[pk].clear()
        bus.replicas[pk] = bus.make(pk)  # restarted with lost state
    asked: dict[bytes, list[bytes]] = {pk: [] for pk in laggers}

    def watch(src: bytes, dst: bytes, env) -> bool:
        if env.type == "pbft.state_request" and src in asked:
            asked[src].append(dst)
        return False
    bus.drop = watch
    bus.submit(client, kv_op("put", "late", b"y"))
    for _ in range(20):
        bus.tick(0.25)
        bus.run()
    primary = bus.cfg.committee[bus.replica(0).primary]
    for pk in laggers:
        assert asked[pk] and primary not in asked[pk]
        assert bus.replicas[pk].last_executed == bus.replica(0).last_executed
    assert asked[laggers[0]][0] != asked[laggers[1]][0]  # each began with another signer


def test_replica_refuses_a_key_outside_its_committee():
    bus = Bus(4)
    outsider = bus.add_client()
    with pytest.raises(ValueError):
        Replica(bus.cfg, outsider.signer, bus.verifier, KeyValueMachine())


def test_pending_requests_are_bounded():
    bus = Bus(4, max_pending=3)
    backup = bus.replica(1)
    for _ in range(5):
        c = bus.add_client()
        raw = c.signer.seal(Request(3, 1, 1, b"op"), 0.0)
        backup.receive(bus.verifier.open(raw))
    assert len(backup.pending) == 3


@pytest.mark.parametrize("n", [1, 2, 3])
def test_small_committees_commit_and_checkpoint(n):
    # One node is a valid network (f = 0, quorum 1): its pre-prepare alone is a prepared
    # certificate. Two and three nodes also have f = 0 but need every (2) or two (3) members.
    bus = Bus(n, checkpoint_interval=2, window=4)
    client = bus.add_client()
    for i in range(7):
        bus.submit(client, kv_op("put", f"k{i}", b"v"))
        bus.run()
        assert client.current is None, f"request {i} did not commit with n={n}"
    assert [d.result for d in client.done] == [b"ok"] * 7
    for i in range(n):
        assert bus.replica(i).last_executed == 7 and bus.replica(i).stable.seq == 6
        assert bus.replica(i).view == 0
    (c, *_) = committed(bus, 0)
    assert verify_qc(c.qc, bus.cfg.committee, ed25519_vote_check) is None


def test_one_node_view_change_keeps_committing():
    bus = Bus(1, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    r = bus.replica(0)
    bus.emit(bus.cfg.committee[0], r.receive(bus.verifier.open(
        bus.signer(bus.cfg.committee[0]).seal(Prepare(3, 1, 0, 1, b"\x00" * 32, b"\x00" * 64),
                                              0.0))))
    r._start_view_change(1)  # as after a restart mid view change
    bus.emit(bus.cfg.committee[0], r.tick(0.0))
    bus.run()
    assert r.view == 1 and not r.view_changing
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    assert client.done[-1].result == b"ok"


def test_time_the_replica_spends_on_its_own_work_is_not_blamed_on_the_primary():
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "first", b"v"))  # past the committee's first batch
    bus.run()
    bus.drop = lambda src, dst, env: env.type != "pbft.request"  # the primary looks silent
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    backup = bus.replica(1)
    bus.tick(1.0)  # the client retries to every replica
    bus.run()
    assert backup.pending and backup.progress_at == 1.0
    bus.tick(0.5)
    backup.busy(3.0)  # e.g. it executed a huge batch: the shell read nothing for 3 s
    bus.tick(3.0)
    assert backup.view == 0 and not backup.view_changing
    bus.tick(1.0)  # but a second of real silence after that is suspicious
    assert backup.view_changing and backup.view == 1
def test_timers_retuned_for_a_far_committee_wait_longer_before_suspecting_the_primary():
    """A 300 ms committee gets a 2.4 s view-change timeout (daemon.p2p.rtt): the primary is
    not voted out after the loopback default of 1 s, but still is once really silent."""
    def first_view_change(retune: float | None) -> float:
        bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
        if retune is not None:
            for i in range(4):
                bus.replica(i).retune(retune, 0.25)
        client = bus.add_client()
        bus.submit(client, kv_op("put", "k", b"v"))
        bus.run()
        primary = bus.cfg.committee[0]
        bus.drop = lambda src, dst, env: src == primary
        bus.submit(client, kv_op("put", "k", b"w"))
        for step in range(1, 81):
            bus.tick(0.125)
            bus.run()
            if any(bus.replica(i).view_changing or bus.replica(i).view > 0 for i in (1, 2, 3)):
                return step * 0.125
        raise AssertionError("the silent primary was never suspected")

    loopback, far = first_view_change(None), first_view_change(2.4)
    # The suspicion starts when a backup first sees the request; from there it waits the
    # timeout: 1.4 s longer with the retuned one, and no longer than that.
    assert 1.4 - 0.125 <= far - loopback <= 1.4 + 0.25


def test_a_client_whose_key_a_copy_used_with_higher_ids_gets_through_after_renumbering():
    """A copy of a node's data directory signed requests with the node's key, from ids taken
    at its later start: the replicas ignore the node's own lower ids (the copy's were executed
    last) until ``renumber`` moves them, the request in flight included, past the copy's."""
    from consensus.client import Client
    from consensus.crypto import Ed25519Signer
    from testnet.pbft_sim.bus import NETWORK
    bus = Bus(4)
    orig = bus.add_client()
    pk = next(iter(bus.clients))
    bus.submit(orig, kv_op("put", "x", b"orig"))
    bus.run()
    assert orig.done[-1].result == b"ok"
    copy = Client(bus.cfg, Ed25519Signer(bus.idents[-1], NETWORK, 2), retry=1.0,
                  first_request_id=5_000)
    bus.clients[pk] = copy  # the copy holds the connections for a while
    bus.submit(copy, kv_op("put", "x", b"copy"))
    bus.run()
    assert copy.done[-1].result == b"ok" and kv(bus, 0) == {"x": b"copy"}
    bus.clients[pk] = orig  # the copy stepped aside
    bus.submit(orig, kv_op("put", "x", b"orig again"))
    for _ in range(3):
        bus.tick(1.0)
        bus.run()
    assert orig.busy and kv(bus, 0) == {"x": b"copy"}  # ignored: an id below the copy's
    orig.renumber(5_000 + 100)
    bus.tick(0.0)
    bus.run()
    assert not orig.busy and orig.done[-1].request_id == 5_101
    assert all(kv(bus, i) == {"x": b"orig again"} for i in range(4))
    orig.renumber(10)  # never backwards
    assert orig.next_id == 5_102


def test_a_replica_short_of_a_quorum_neither_suspects_its_primary_nor_floods_status():
    """Members still dialling each other (a committee forming over a slow network) cannot
    commit or complete a view change: their timers stand still and their status re-sends slow
    down until a quorum is reachable; then a silent primary is voted out as usual."""
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "first", b"v"))  # past the committee's first batch
    bus.run()
    primary = bus.cfg.committee[0]
    bus.drop = lambda src, dst, env: src == primary  # the primary looks silent
    bus.submit(client, kv_op("put", "k", b"v"))
    backups = [bus.replica(i) for i in (1, 2, 3)]
    for r in backups:
        r.reach(2)  # itself and one more: a quorum is 3
    for _ in range(80):  # 10 s, ten timeouts
        bus.tick(0.125)
        bus.run()
    assert all(r.pending for r in backups)  # the client's retry reached them: work waits
    assert all(r.view == 0 and not r.view_changing for r in backups)
    statuses = [a for a in bus.actions[bus.cfg.committee[1]]
                if isinstance(a, Broadcast) and bus.verifier.open(a.data).type == "pbft.status"]
    # every 8 status intervals (2 s) since the request first reached it, not every 0.25 s
    assert 3 <= len(statuses) <= 5
    for r in backups:
        r.reach(4)
    for _ in range(24):  # 3 s: one timeout and the view change
        bus.tick(0.125)
        bus.run()
    assert all(r.view == 1 and not r.view_changing for r in backups)
    assert client.current is None and client.done[-1].result == b"ok"


def test_a_large_committee_sends_pre_prepares_by_reference_and_rebuilds_them():
    """Seven members: the client sends its request to every member, the primary sends its
    batch once in all (``PrePrepareRefs``: the signed envelope with each request by hash), the
    backups rebuild the exact signed bytes and commit. A backup that lost the request asks the
    primary for the batch once its grace for the request has passed, and commits too."""
    bus = Bus(7, status_interval=0.25)
    assert bus.cfg.by_reference and not Bus(4).cfg.by_reference
    client = bus.add_client()
    lost = bus.cfg.committee[3]
    bus.drop = lambda src, dst, env: env.type == "pbft.request" and dst == lost
    bus.submit(client, kv_op("put", "x", b"1"))
    sent = [env for env in (bus.verifier.open(raw) for _, _, raw in bus.queue)]
    assert {e.type for e in sent} == {"pbft.request"} and len(sent) == 7  # to every member
    bus.run()
    assert [d.result for d in client.done] == [b"ok"]
    assert committed(bus, 3) == [] and bus.replica(3).refs_fetched == 0  # waits for the request
    bus.tick(REFS_GRACE * 0.25)
    bus.run()
    for i in range(7):
        (c,) = committed(bus, i)
        assert c.seq == 1 and kv(bus, i) == {"x": b"1"}
    whole = [a for a in bus.actions[bus.cfg.committee[0]]
             if isinstance(a, Broadcast) and bus.verifier.open(a.data).type == "pbft.preprepare"]
    assert not whole  # the primary never broadcast the batch itself
    assert bus.replica(3).refs_fetched == 1
    assert all(bus.replica(i).refs_rebuilt == 1 for i in range(1, 7))
    # the rebuilt envelope is the primary's own signed pre-prepare: evidence as good as sent
    s = bus.replica(5).log.get(1)
    assert bus.verifier.open(s.pp_raw).sender == bus.cfg.committee[0]


def test_a_missing_batch_is_asked_of_the_primary_then_of_f_plus_1_members_in_turn():
    """Every member that has a batch answers an ask with all of it: asking everyone brought
    n-1 copies down one line. The primary that named it is asked first, then the next f+1
    members in ring order (one of them correct), a different f+1 each time, the wait
    doubling from two status intervals (a slow line gets time to bring the answer)."""
    from consensus.actions import Send

    bus = Bus(7, status_interval=0.25)
    client = bus.add_client()
    lost = bus.cfg.committee[3]
    # replica 3 gets no request and no batch body: it keeps asking
    bus.drop = lambda src, dst, env: dst == lost and env.type in ("pbft.request",
                                                                  "pbft.batch_body")
    bus.submit(client, kv_op("put", "x", b"1"))
    bus.run()
    r3 = bus.replica(3)

    def asked(acts) -> list[int]:
        return [bus.cfg.committee.index(a.to) for a in acts if isinstance(a, Send)
                and bus.verifier.open(a.data).type == "pbft.batch_fetch"]

    assert asked(bus.actions[lost]) == []  # the request may be on its way: wait for it
    assert asked(r3.tick(0.25)) == []
    assert asked(r3.tick(0.5)) == [0]  # then ask the primary, first
    rounds = [asked(r3.tick(t)) for t in (1.0, 1.1, 1.5, 2.0, 3.5, 4.0)]
    assert rounds == [[0, 1, 2], [], [], [4, 5, 6], [], [0, 1, 2]]


def test_a_pre_prepare_by_reference_that_overtook_its_request_is_rebuilt_when_it_comes():
    """The primary's pre-prepare can reach a backup before the client's own copy of a request
    (the client's uplink sends it to every member in turn): the backup waits for the copy and
    rebuilds on its arrival, asking nobody for the batch."""
    bus = Bus(7, status_interval=0.25)
    client = bus.add_client()
    late = bus.cfg.committee[3]
    held: list[tuple[bytes, bytes, bytes]] = []

    def hold(src, dst, env):
        if env.type == "pbft.request" and dst == late and not held:
            held.append((src, dst, env.to_bytes()))
            return True
        return False

    bus.drop = hold
    bus.submit(client, kv_op("put", "x", b"1"))
    bus.run()
    r3 = bus.replica(3)
    assert committed(bus, 3) == [] and r3._refs_waiting
    bus.tick(0.25)
    bus.run()
    bus.inject(*held[0])
    bus.run()
    (c,) = committed(bus, 3)
    assert c.seq == 1 and kv(bus, 3) == {"x": b"1"}
    assert r3.refs_fetched == 0 and r3.refs_rebuilt == 1 and not r3._refs_waiting
    assert not [a for a in bus.actions[late] if isinstance(a, Send)
                and bus.verifier.open(a.data).type == "pbft.batch_fetch"]


def test_a_pre_prepare_by_reference_that_does_not_rebuild_is_misbehaviour():
    from protocol.messages.pbft import PrePrepareRefs
    bus = Bus(7)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "x", b"1"))
    requests = [raw for _, _, raw in bus.queue]
    bus.run()
    primary = bus.signer(bus.cfg.committee[0])
    digest = batch_digest([requests[0]])
    import hashlib
    forged = primary.seal(PrePrepareRefs(0, 1, 0, b"\x07" * 64, 3, 1, 0, 2, digest,
                                         (hashlib.sha256(requests[0]).digest(),),
                                         primary.sign_vote(prepare_bytes(3, 1, 0, 2, digest))), 0.0)
    backup = bus.replica(2)
    acts = backup.receive(bus.verifier.open(forged))
    assert any(isinstance(a, Misbehaviour) and "does not verify" in a.reason for a in acts)
    assert backup.log.get(2) is None or backup.log.get(2).pp_view != 0


def test_status_answers_carry_only_what_the_peer_lacks():
    """A status that shows a peer a moment behind gets no commit proofs (its commits are on the
    way), one that stays behind gets them; an in-flight pre-prepare goes only to a peer whose
    prepare on it we have not seen, and by reference. Every member answering every status with all it had
    filled the sub-Mbit uplinks of a 19-member committee with copies of the same batches."""
    from consensus.actions import Send
    from protocol.messages.pbft import Status

    bus = Bus(7, view_change_timeout=1.0, status_interval=0.25, refs_above=6)
    client = bus.add_client()
    for k in range(3):
        bus.submit(client, kv_op("put", f"k{k}", b"v"))
        bus.run()
    assert all(len(committed(bus, i)) == 3 for i in range(7))

    def answers(frm: int, view: int, executed: int, t: float, to: list[int]) -> dict[int, list[str]]:
        pk = bus.cfg.committee[frm]
        raw = bus.signer(pk).seal(Status(3, 1, view, False, 0, executed), t)
        out = {}
        for i in to:
            acts = bus.replica(i).receive(bus.verifier.open(raw), t)
            out[i] = [bus.verifier.open(a.data).type for a in acts
                      if isinstance(a, Send) and a.to == pk]
        return out

    t0, others = bus.now, [0, 1, 2, 4, 5, 6]
    assert not any(answers(3, 0, 0, t0, others).values())  # executed just now: not settled
    late = answers(3, 0, 0, t0 + 0.6, others)  # it stood still: proofs from every member
    assert all(kinds.count("pbft.commit_proof") == 3 for kinds in late.values())
    going = answers(3, 0, 1, t0 + 2.0, others)  # it executes, slowly: from f+1 after it
    assert {i for i, kinds in going.items() if "pbft.commit_proof" in kinds} == {4, 5, 6}

    # In flight: nothing reaches replica 6, and no commit reaches replica 1, which has the
    # others' prepares on the next batch and is then asked by 5 (whose prepare it has) and 6.
    bus.drop = lambda src, dst, env: dst == bus.cfg.committee[6] or \
        (dst == bus.cfg.committee[1] and env.type == "pbft.commit")
    bus.submit(client, kv_op("put", "k3", b"v"))
    bus.run()
    r1 = bus.replica(1)
    assert 4 in r1.log.slots and not r1.log.slots[4].committed
    t1 = bus.now + 1.0
    for frm in (5, 6):
        (kinds,) = answers(frm, 0, 3, t1, [1]).values()
        # by reference (replica 6 has the requests or asks for the batch), never whole again
        assert ("pbft.preprepare_refs" in kinds) == (frm == 6), (frm, kinds)
        assert "pbft.preprepare" not in kinds


def test_a_status_answer_carries_at_most_answer_bytes_of_commit_proofs():
    """A commit proof carries its whole batch: eight of large requests from every member at
    once buried a peer on a home line. One answer carries about ``ANSWER_BYTES``."""
    from consensus.actions import Send
    from consensus.recovery import ANSWER_BYTES
    from protocol.messages.pbft import Status

    bus = Bus(4, status_interval=0.25)
    client = bus.add_client()
    for k in range(8):
        bus.submit(client, kv_op("put", f"k{k}", bytes(40_000)))
        bus.run()
    assert len(committed(bus, 1)) == 8
    behind = bus.cfg.committee[3]
    raw = bus.signer(behind).seal(Status(3, 1, 0, False, 0, 0), bus.now + 1)
    acts = bus.replica(1).receive(bus.verifier.open(raw), bus.now + 1)
    proofs = [len(a.data) for a in acts if isinstance(a, Send) and a.to == behind
              and bus.verifier.open(a.data).type == "pbft.commit_proof"]
    assert 1 <= len(proofs) < 8 and sum(proofs) - proofs[-1] < ANSWER_BYTES <= sum(proofs)


def _statuses(bus, i):
    return [a for a in bus.actions[bus.cfg.committee[i]]
            if isinstance(a, Broadcast) and bus.verifier.open(a.data).type == "pbft.status"]


def _hop_by_hop(bus, hop, seconds, drop=lambda src, dst, env: False):
    """Deliver what is queued one message delay (``hop``) at a time, ticking in between."""
    bus.drop = drop
    for _ in range(round(seconds / hop)):
        bus.tick(hop / 2)
        bus.tick(hop / 2)
        bus.run(limit=len(bus.queue))


def test_status_goes_only_when_a_replica_stood_still_a_status_interval():
    """Status asks peers for what did not come. A put whose phases each arrive within the
    status interval sends none, though it takes longer than the interval; a replica whose
    commits are lost stands still, sends status, and catches up from the answers."""
    bus = Bus(4, status_interval=0.25, view_change_timeout=2.0)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "a", b"1"))
    _hop_by_hop(bus, 0.1, 1.0)  # a phase every 0.1 s: about 0.5 s in all
    assert client.done and client.done[-1].result == b"ok"
    assert all(not _statuses(bus, i) for i in range(4))

    lagging = bus.cfg.committee[3]
    bus.submit(client, kv_op("put", "b", b"2"))
    _hop_by_hop(bus, 0.1, 1.0, drop=lambda src, dst, env:
                dst == lagging and env.type == "pbft.commit")
    assert kv(bus, 3) == {"a": b"1"}  # prepared, then stood still without the commits
    assert _statuses(bus, 3) and not any(_statuses(bus, i) for i in range(3))
    _hop_by_hop(bus, 0.1, 1.0)
    assert kv(bus, 3) == {"a": b"1", "b": b"2"}


def test_before_the_first_batch_a_backup_gives_the_primary_several_timeouts():
    """A committee's first batch waits for members still dialling each other: at one timeout,
    3-5 of a forming 19-member committee on slow lines asked for a new view at every start
    while the rest carried on, and stayed behind. A silent primary is still replaced, later."""
    from consensus.timers import GENESIS_TIMEOUTS

    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    bus.drop = lambda src, dst, env: src == bus.cfg.committee[0]  # a silent genesis primary
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    backup = bus.replica(1)
    t = 0.0
    while backup.view == 0 and t < 20:
        t += 0.125
        bus.tick(0.125)
        bus.run()
    # the client's re-send brings the request to the backups at 1 s; then four timeouts
    assert 1.0 + GENESIS_TIMEOUTS * 1.0 <= t <= 1.0 + GENESIS_TIMEOUTS * 1.0 + 0.5
    for _ in range(40):
        bus.tick(0.125)
        bus.run()
    assert client.done and client.done[-1].result == b"ok"
    assert all(bus.replica(i).view == 1 for i in (1, 2, 3))
    # past the first batch, one timeout is enough again
    assert backup.last_executed > 0


def test_a_restarted_replica_catches_up_in_an_idle_committee():
    """Down while the others commit ten batches, then back with its store, in a committee that
    has nothing more to do: nothing but its own statuses brings it what it missed, and each
    peer answers one with a bounded number of commit proofs. It asked once after a restart,
    and stayed behind until the next work came (a real testnet's member: two batches)."""
    bus = Bus(4, status_interval=0.25, checkpoint_interval=64, window=128)
    client = bus.add_client()
    bus.submit(client, kv_op("add", "n", 1))
    bus.run()
    r2 = bus.cfg.committee[2]
    bus.drop = lambda src, dst, env: r2 in (src, dst)
    for _ in range(10):
        bus.submit(client, kv_op("add", "n", 1))
        bus.run()
    assert bus.replica(0).last_executed == 11 and bus.replica(2).last_executed == 1
    bus.replicas[r2] = bus.make(r2)
    bus.drop = lambda src, dst, env: False
    for _ in range(120):  # 30 s, and no more requests
        bus.tick(0.25)
        bus.run()
    assert bus.replica(2).last_executed == 11
    assert bus.replica(2).service.snapshot() == bus.replica(0).service.snapshot()


def test_a_restarted_replica_that_keeps_up_with_a_busy_committee_asks_for_nothing():
    """Restarted while the committee works on: once it follows the commits, its head moves
    with everyone's, and its statuses (each answered by its peers' votes again) stop."""
    bus = Bus(4, status_interval=0.25)
    client = bus.add_client()
    bus.submit(client, kv_op("add", "n", 1))
    bus.run()
    r2 = bus.cfg.committee[2]
    bus.replicas[r2] = bus.make(r2)
    statuses = 0

    def watch(src: bytes, dst: bytes, env) -> bool:
        nonlocal statuses
        statuses += src == r2 and env.type == "pbft.status"
        return False
    bus.drop = watch
    for _ in range(40):  # a put every 0.1 s for 4 s
        bus.submit(client, kv_op("add", "n", 1))
        bus.run()
        bus.tick(0.1)
        bus.run()
    assert bus.replica(2).last_executed == bus.replica(0).last_executed == 41
    assert statuses <= 3  # its first ask (to each of 3 peers); it asked every 0.25 s for good


def test_a_replica_rests_only_when_its_timers_have_nothing_to_do():
    """``resting`` lets the shell tick a replica less often; it must be False whenever a timer
    could fire: a request pending (a silent primary is suspected), a view change under way."""
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    assert all(bus.replica(i).resting() for i in range(4))  # a fresh committee
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    assert all(bus.replica(i).resting() for i in range(4))  # executed: nothing left
    primary = bus.cfg.committee[0]
    bus.drop = lambda src, dst, env: src == primary
    bus.submit(client, kv_op("put", "k", b"w"))
    seen = set()
    for _ in range(40):
        bus.tick(0.25)
        bus.run()
        for i in (1, 2, 3):
            r = bus.replica(i)
            if r.pending or r.view_changing:
                seen.update({"pending"} if r.pending else set())
                seen.update({"view change"} if r.view_changing else set())
                assert not r.resting(), (i, r.pending, r.view_changing)
        if client.current is None:
            break
    assert client.current is None and "pending" in seen
    assert all(bus.replica(i).view == 1 and bus.replica(i).resting() for i in (1, 2, 3))
    # Members hear the client but not each other: the view changes they start cannot end,
    # and a replica in one never rests.
    members = set(bus.cfg.committee)
    bus.drop = lambda src, dst, env: src in members
    bus.submit(client, kv_op("put", "k", b"x"))
    for _ in range(40):
        bus.tick(0.25)
        bus.run()
    changing = [bus.replica(i) for i in range(4) if bus.replica(i).view_changing]
    assert changing and not any(r.resting() for r in changing)


def _replies_to(bus, pk):
    """Reply frames the replicas sent to ``pk``, by sender index."""
    return sorted(i for i, r in enumerate(bus.cfg.committee)
                  for a in bus.actions[r] if isinstance(a, Send) and a.to == pk
                  and bus.verifier.open(a.data).type == "pbft.reply")


def test_members_reply_to_a_member_client_only_through_its_own_replica():
    """A client on a member's node takes its own replica's reply alone
    (``consensus.client``), so the other members send it none: 3f frames and signature checks
    a request, for nothing. An outside client still gets every member's reply."""
    bus = Bus(4)
    outside, member = bus.add_client(), bus.add_member_client(2)
    bus.submit(outside, kv_op("put", "a", b"1"))
    bus.submit(member, kv_op("put", "b", b"2"))
    bus.run()
    assert [d.result for d in outside.done] == [b"ok"]
    assert [d.result for d in member.done] == [b"ok"]
    assert _replies_to(bus, bus.cfg.committee[2]) == [2]
    outside_pk = next(k for k, c in bus.clients.items() if c is outside)
    assert _replies_to(bus, outside_pk) == [0, 1, 2, 3]


def test_a_member_client_whose_replica_lags_gets_f_plus_1_replies_when_it_re_sends():
    bus = Bus(4)
    member = bus.add_member_client(3)
    me = bus.cfg.committee[3]
    bus.drop = lambda src, dst, env: dst == me and env.type != "pbft.reply"  # replica 3 hears nothing
    bus.submit(member, kv_op("put", "c", b"3"))
    bus.run()
    assert member.done == [] and all(kv(bus, i) == {"c": b"3"} for i in range(3))
    bus.tick(member.wait)  # no reply within its wait: it re-sends to every member
    bus.run()
    assert [d.result for d in member.done] == [b"ok"]
    assert len(set(_replies_to(bus, me))) >= bus.cfg.f + 1


def test_uncertified_commits_check_no_commit_votes_yet_a_lagging_peer_gets_a_checked_proof(
        monkeypatch):
    """``certify=False`` (the daemon's: nothing there reads a batch's certificate) saves each
    member 2f signature checks per batch before its replies; the certificate a lagging peer's
    commit proof needs is built, and its votes checked, when the peer asks."""
    from consensus.crypto import Ed25519Verifier
    from protocol.messages.pbft import Status

    def checks(certify: bool) -> tuple[int, Bus]:
        counted = []
        real = Ed25519Verifier.verify_vote
        def counting(self, pk, data, sig):
            counted.append(pk)
            return real(self, pk, data, sig)
        monkeypatch.setattr(Ed25519Verifier, "verify_vote", counting)
        bus = Bus(4, certify=certify, status_interval=0.25)
        client = bus.add_client()
        bus.submit(client, kv_op("put", "k", b"v"))
        bus.run()
        monkeypatch.undo()
        assert [d.result for d in client.done] == [b"ok"]
        return len(counted), bus

    certified, _ = checks(True)
    uncertified, bus = checks(False)
    assert certified - uncertified == 4 * 2  # each of 4 members: 2f = 2 votes besides its own
    assert all(c.qc is None for i in range(4) for c in committed(bus, i))

    behind = bus.cfg.committee[3]
    raw = bus.signer(behind).seal(Status(3, 1, 0, False, 0, 0), bus.now + 1)
    acts = bus.replica(1).receive(bus.verifier.open(raw), bus.now + 1)
    (proof,) = [bus.verifier.open(a.data).body for a in acts if isinstance(a, Send)
                and a.to == behind and bus.verifier.open(a.data).type == "pbft.commit_proof"]
    assert verify_qc(proof.qc, bus.cfg.committee, ed25519_vote_check) is None
