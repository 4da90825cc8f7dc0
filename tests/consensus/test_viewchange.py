"""The new view's batches: recomputed from a quorum of view changes."""

import random

import pytest

from consensus.checkpoint import InvalidProof
from consensus.config import ReplicaConfig
from consensus.log import NULL_DIGEST, batch_digest
from consensus.crypto import MacSigner, MacVerifier
from consensus.quorum import bitmap, prepare_bytes
from consensus.replica_base import Cert, CheckedViewChange
from consensus.viewchange import check_view_change, new_view_set
from protocol.messages.pbft import PreparedCert, ViewChange

rng = random.Random(3)
KEYS = [(rng.randbytes(32), rng.randbytes(32)) for _ in range(4)]
CFG = ReplicaConfig(1, 1, tuple(pk for pk, _ in KEYS), checkpoint_interval=2, window=4)
VERIFIER = MacVerifier("t", dict(KEYS))
SIGNERS = [MacSigner(pk, sk, "t") for pk, sk in KEYS]
GENESIS = b"\x00" * 32


def vc(sender, stable=0, certs=None):
    return CheckedViewChange(sender, 5, stable, GENESIS, (), certs or {}, b"")


def test_highest_view_certificate_wins_and_gaps_get_null_batches():
    a, b = batch_digest((b"A",)), batch_digest((b"B",))
    plan = new_view_set([
        vc(0, certs={1: Cert(1, a), 3: Cert(2, a)}),
        vc(1, certs={1: Cert(3, b)}),
        vc(2),
    ])
    assert plan.min_s == 0
    assert plan.batches == ((1, b), (2, NULL_DIGEST), (3, a))


def test_the_highest_stable_checkpoint_sets_the_start():
    a = batch_digest((b"A",))
    plan = new_view_set([vc(0, stable=2, certs={3: Cert(1, a)}),
                         vc(1, stable=0, certs={1: Cert(1, a)}), vc(2)])
    assert plan.min_s == 2 and [s for s, _ in plan.batches] == [3]


def prepared(view, seq, reqs, voters, signed_digest=None):
    d = batch_digest(reqs)
    data = prepare_bytes(1, 1, view, seq, signed_digest or d)
    order = sorted(set(voters))
    return PreparedCert(view, seq, d, bitmap(order, 4),
                        tuple(SIGNERS[i].sign_vote(data) for i in voters))


def test_view_change_proofs_are_checked():
    good = prepared(0, 1, (b"r",), [0, 1, 2])
    env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 0, GENESIS, (), (good,)), 0))
    checked = check_view_change(CFG, env, VERIFIER, GENESIS)
    assert checked.certs[1].digest == batch_digest((b"r",))
    bad = [prepared(0, 1, (b"r",), [0, 1]),          # too few votes
           prepared(0, 1, (b"r",), [1, 1, 2]),       # the same member twice
           prepared(0, 1, (b"r",), [0, 1, 2], b"x" * 32),  # votes on another digest
           prepared(1, 1, (b"r",), [1, 2, 3]),       # not below the new view
           prepared(0, 9, (b"r",), [0, 1, 2])]       # above the watermarks
    for cert in bad:
        env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 0, GENESIS, (), (cert,)), 0))
        with pytest.raises(InvalidProof):
            check_view_change(CFG, env, VERIFIER, GENESIS)
    env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 2, GENESIS, (), ()), 0))
    with pytest.raises(InvalidProof, match="checkpoint proof"):
        check_view_change(CFG, env, VERIFIER, GENESIS)


def test_a_replica_holding_the_new_view_waits_for_the_view_changes_it_names():
    """The new primary's NEW-VIEW names a quorum of view changes; one of them has not reached
    replica 6 yet (slow line), nor the primary's answer to its fetch, for longer than its
    new-view timeout. The primary did its part: replica 6 must not suspect it and ask for
    view 2 (which nobody else would join: a replica stranded a view ahead), but enter view 1
    once the view change arrives."""
    from consensus.statemachine import kv_op
    from protocol.messages.pbft import ViewChange as VC
    from testnet.pbft_sim.bus import Bus

    bus = Bus(7, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    client_pk = next(iter(bus.clients))
    old, late, slow = bus.cfg.committee[0], bus.cfg.committee[5], bus.cfg.committee[6]
    held = {"until": 1e18}
    bus.drop = lambda src, dst, env: src == old or dst == old or (
        dst == slow and isinstance(env.body, VC) and env.sender == late and
        bus.now < held["until"])
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.emit(client_pk, [a for a in client.tick(5.0)])  # its retry reaches every replica
    steps = 0
    while not bus.replica(6).nv_pending and steps < 200:
        bus.tick(0.25)
        bus.run()
        steps += 1
    r6 = bus.replica(6)
    assert r6.nv_pending is not None and r6.view == 1 and r6.view_changing
    held["until"] = bus.now + 3 * r6.timeout  # past its timeout, within the patience
    for _ in range(int(4 * r6.timeout / 0.25)):
        bus.tick(0.25)
        bus.run()
    assert r6.view == 1 and not r6.view_changing, (r6.view, r6.view_changing)
    assert all(bus.replica(i).view == 1 and not bus.replica(i).view_changing for i in range(1, 6))


def test_a_view_change_is_re_sent_with_back_off_not_every_two_status_intervals():
    """A view change carries prepared certificates (tens of KB in a 19-member committee).
    Re-sent to every member every two status intervals while no new view came, they filled
    the sub-Mbit uplinks of a 30-daemon testnet and no new view ever got through (views
    10-11, nothing committed for minutes). Re-sends now double their wait, up to the
    longest view-change timeout, and go to the new primary alone: the others get its new
    view and fetch from it the view changes it names."""
    from consensus.actions import Broadcast, Send
    from consensus.statemachine import kv_op
    from protocol.messages.pbft import ViewChange as VC
    from testnet.pbft_sim.bus import Bus

    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    client_pk = next(iter(bus.clients))
    gone = {bus.cfg.committee[0], bus.cfg.committee[3]}  # the primary and one more: no quorum
    bus.drop = lambda src, dst, env: src in gone or dst in gone
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.emit(client_pk, client.tick(5.0))
    me = bus.cfg.committee[2]
    for _ in range(240):  # 60 s
        bus.tick(0.25)
        bus.run()

    def view_changes(kind):
        return [a for a in bus.actions[me] if isinstance(a, kind)
                and isinstance(bus.verifier.open(a.data).body, VC)]

    assert bus.replica(2).view_changing and bus.replica(2).view == 1
    assert len(view_changes(Broadcast)) == 1  # to all, once
    again = view_changes(Send)
    c = bus.cfg.committee
    per_target = {pk: sum(1 for a in again if a.to == pk) for pk in {a.to for a in again}}
    # view 1's primary, and the two members no view change or status showed leaving view 0
    assert set(per_target) == {c[1], c[0], c[3]}
    assert all(1 <= k <= 11 for k in per_target.values()), per_target  # it was 100 or more
    assert not [a for a in bus.actions[c[1]] if isinstance(a, Send) and a.to == c[2]
                and isinstance(bus.verifier.open(a.data).body, VC)]  # 2 left view 0: not to it


def test_a_slow_but_live_committee_is_not_taken_for_a_faulty_one():
    """Batches that take 0.8 s each (a loaded committee), then three that take 1.5 s, with a
    1 s base timeout: the replicas learned the committee's pace, so the slower batches commit
    in the same view instead of each costing a view change."""
    from consensus.actions import ViewEntered
    from consensus.statemachine import kv_op
    from testnet.pbft_sim.bus import Bus

    bus = Bus(7, view_change_timeout=1.0, max_view_change_timeout=30.0)
    client = bus.add_client()
    primary = bus.cfg.committee[0]
    held: list[tuple[bytes, bytes, bytes]] = []
    holding = [True]

    def hold(src, dst, env):
        if holding[0] and src == primary and env.type in ("pbft.preprepare_refs",
                                                           "pbft.preprepare"):
            held.append((src, dst, env.to_bytes()))
            return True
        return False

    bus.drop = hold
    for k, delay in enumerate([0.8] * 8 + [1.5] * 3):
        bus.submit(client, kv_op("put", f"k{k}", b"v"))
        bus.run()
        for _ in range(round(delay / 0.1)):
            bus.tick(0.1)
            bus.run()
        holding[0] = False
        for item in held:
            bus.inject(*item)
        held.clear()
        bus.run()
        holding[0] = True
        assert client.current is None, f"request {k} not done"
    views = [a for pk in bus.cfg.committee for a in bus.actions[pk] if isinstance(a, ViewEntered)]
    assert not views, views
    assert bus.replica(1).timeout > 1.5 and bus.replica(1).pace is not None
