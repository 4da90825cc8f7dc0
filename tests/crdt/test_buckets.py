"""Bucket summaries: agreeing replicas exchange a fixed-size summary; differences recurse."""

import random

import pytest

from crdt import CrdtReplica, ObjectSpec, PNCounter
from crdt import buckets
from crdt.antientropy import AntiEntropyConfig
from crdt.codec import pack_payload
from crdt.dots import CausalContext
from protocol.canonical import packb
from protocol.errors import MalformedMessage
from protocol.messages.crdt import (CrdtDigest, CrdtObject, CrdtSummary, CrdtSummaryReply,
                                    CrdtSummaryWant)
from protocol.schema import encode_body

NODE = "12D3KooW" + "x" * 44
LIMITS = CrdtReplica("a", {}, session=1).limits


def writers(n, seed=1):
    rng = random.Random(seed)
    return {f"{i:06d}{NODE[:46]}": rng.randint(1, 50) for i in range(n)}


def size(msg):
    return len(packb(encode_body(msg), maps=False))


def reconcile(ours, theirs, max_bytes=500_000):
    """We compare the peer's summary of ``theirs``; returns (rebuilt context or None when the
    full digest was asked for, messages both ways, bytes both ways)."""
    summary = CrdtSummary(1, 0, 0, buckets.summary_objects(theirs))
    msgs, nbytes = 1, size(summary)
    r = buckets.start_round(1, ours, summary.objects, LIMITS)
    while r is not None and not r.done():
        for objs in r.wants():
            want = CrdtSummaryWant(r.id, objs)
            msgs, nbytes = msgs + 1, nbytes + size(want)
            asked = buckets.decode_wants(want.objects, theirs, LIMITS)
            for table, robjs in buckets.reply_objects(theirs, asked, max_bytes):
                reply = CrdtSummaryReply(r.id, table, robjs)
                msgs, nbytes = msgs + 1, nbytes + size(reply)
                if not buckets.absorb_reply(r, ours, reply.replicas, reply.objects, LIMITS):
                    return None, msgs, nbytes
    return (None if r is None else r.theirs), msgs, nbytes


@pytest.mark.parametrize("n", [100, 10_000])
def test_replicas_that_agree_exchange_one_small_summary_whatever_the_writers(n):
    ctx = CausalContext(writers(n))
    got, msgs, nbytes = reconcile({"caps": ctx}, {"caps": ctx.copy()})
    assert msgs == 1 and nbytes < 300  # 16 hashes; a full digest of 10,000 writers: ~590 KB
    assert got["caps"] == ctx


def test_one_changed_writer_costs_a_few_small_round_trips_and_rebuilds_the_exact_context():
    vv = writers(10_000)
    ours = CausalContext(vv)
    theirs = CausalContext(vv)
    w = sorted(vv)[1234]
    theirs.add(w, vv[w] + 1)
    theirs.add_range(w, vv[w] + 5, vv[w] + 7)  # outstanding ranges travel too
    got, msgs, nbytes = reconcile({"caps": ours}, {"caps": theirs})
    assert got["caps"] == theirs
    assert msgs <= 1 + 2 * 4 and nbytes < 2_000


def test_the_rebuilt_context_is_exact_for_many_scattered_differences():
    rng = random.Random(7)
    vv = writers(3_000)
    ours, theirs = CausalContext(vv), CausalContext(vv)
    for w in rng.sample(sorted(vv), 5):
        theirs.add(w, vv[w] + 1)
    for w in rng.sample(sorted(vv), 2):
        ours.add(w, vv[w] + 1)  # we are ahead there: the peer's own rows still come back
    newcomer = "zz" + NODE
    theirs.add(newcomer, 1)
    got, _, _ = reconcile({"caps": ours, "links": CausalContext()},
                          {"caps": theirs, "links": CausalContext()})
    assert got["caps"] == theirs and got["links"] == CausalContext()


def test_when_most_buckets_differ_the_full_digest_is_asked_for():
    got, msgs, _ = reconcile({"caps": CausalContext()}, {"caps": CausalContext(writers(500))})
    assert got is None and msgs == 1


def test_an_object_the_peer_does_not_list_is_empty_on_its_side():
    ours = {"caps": CausalContext(writers(50)), "links": CausalContext()}
    r = buckets.start_round(1, ours, buckets.summary_objects({"links": CausalContext()}), LIMITS)
    assert r is not None and r.done() and r.theirs["caps"] == CausalContext()


def _open_round(ours, theirs):
    r = buckets.start_round(1, ours, buckets.summary_objects(theirs), LIMITS)
    assert r is not None and not r.done()
    return r, r.wants()


def test_rows_outside_the_bucket_they_answer_are_malformed():
    vv = writers(40)
    ours, theirs = CausalContext(vv), CausalContext(vv)
    w = sorted(vv)[3]
    theirs.add(w, vv[w] + 1)
    r, (objs,) = _open_round({"caps": ours}, {"caps": theirs})
    (prefix,) = r.pending["caps"]
    outsider = next(x for x in vv if not buckets.in_prefix(x, prefix))
    body = [[prefix[0], prefix[1], 1, [[0, 9]]]]
    with pytest.raises(MalformedMessage):
        buckets.absorb_reply(r, {"caps": ours}, (outsider,),
                             (CrdtObject("caps", pack_payload(body)),), LIMITS)


def test_unasked_buckets_in_a_reply_are_ignored_and_hashes_at_the_deepest_level_refused():
    vv = writers(40)
    ours, theirs = CausalContext(vv), CausalContext(vv)
    w = sorted(vv)[3]
    theirs.add(w, vv[w] + 1)
    r, _ = _open_round({"caps": ours}, {"caps": theirs})
    (prefix,) = r.pending["caps"]
    other = (1, (prefix[1] + 1) % 16)
    stray = [[other[0], other[1], 1, []]]
    assert buckets.absorb_reply(r, {"caps": ours}, (), (CrdtObject("caps", pack_payload(stray)),),
                                LIMITS)
    assert r.pending["caps"] == {prefix}
    deep = [[16, 5, 0, [0] * 16]]
    r.pending["caps"].add((16, 5))
    with pytest.raises(MalformedMessage):
        buckets.absorb_reply(r, {"caps": ours}, (), (CrdtObject("caps", pack_payload(deep)),),
                             LIMITS)


def test_a_peer_that_always_answers_with_hashes_ends_in_the_full_digest_not_forever():
    ours = {"caps": CausalContext(writers(200))}
    r = buckets.start_round(1, ours, (CrdtObject("caps", pack_payload([200, [1] * 16])),),
                            LIMITS)
    assert r is None  # every top bucket differs: the full digest, at once
    vv = writers(200)
    theirs = CausalContext(vv)
    w = sorted(vv)[0]
    theirs.add(w, vv[w] + 1)
    r, wants = _open_round(ours, {"caps": theirs})
    rounds = 0
    while True:
        rounds += 1
        body = [[d, v, 0, [rounds] * 16] for d, v in sorted(r.pending["caps"]) if d < 16]
        if not buckets.absorb_reply(r, ours, (), (CrdtObject("caps", pack_payload(body)),),
                                    LIMITS):
            break
        assert rounds < 10
    assert r.asked > buckets.MAX_PENDING


def test_wants_are_bounded_and_checked():
    too_many = [[1, i % 16] for i in range(buckets.MAX_WANT + 1)]
    with pytest.raises(MalformedMessage):
        buckets.decode_wants((CrdtObject("caps", pack_payload(too_many)),), {"caps": 1}, LIMITS)
    for bad in ([[17, 0]], [[1, 16]], [[-1, 0]], [["1", 0]], [[1]]):
        with pytest.raises(MalformedMessage):
            buckets.decode_wants((CrdtObject("caps", pack_payload(bad)),), {"caps": 1}, LIMITS)


def _pair(**cfg):
    config = AntiEntropyConfig(**cfg)
    return {n: CrdtReplica(n, {"c": ObjectSpec(PNCounter())}, session=i + 1, config=config)
            for i, n in enumerate(("a", "b"))}


def test_a_replica_answers_wants_at_a_bounded_rate_and_a_full_want_with_its_digest():
    rs = _pair(max_wants=3)
    rs["a"].update("c", lambda c, w: c.p_inc(w, 1), 0)
    want = CrdtSummaryWant(9, (CrdtObject("c", pack_payload([[1, 0], [1, 1]])),))
    answered = [rs["a"].on_message("b", want, 1000 + i) for i in range(5)]
    assert [len(x) for x in answered] == [1, 1, 1, 0, 0]
    assert all(isinstance(m, CrdtSummaryReply) and m.round == 9 for x in answered for _, m in x)
    assert rs["a"].stats.wants_refused == 2
    assert len(rs["a"].on_message("b", want, 1000 + 30_000)) == 1  # a new window
    full = CrdtSummaryWant(9, (CrdtObject("c", pack_payload([[0, 0]])),))
    (_, digest), = rs["a"].on_message("b", full, 50_000)
    assert isinstance(digest, CrdtDigest)
    assert rs["a"].on_message("b", full, 50_001) == []  # not again at once


def test_a_reply_of_an_earlier_round_is_ignored():
    rs = _pair()
    reply = CrdtSummaryReply(12345, (), (CrdtObject("c", pack_payload([[1, 0, 1, []]])),))
    assert rs["a"].on_message("b", reply, 0) == []


def test_replicas_reconcile_through_summary_rounds_and_rebuild_each_others_context():
    """40 writers; two replicas that differ in one write reconcile by summary, wants and
    replies only (no full digest), and each rebuilds the other's exact context."""
    from tests.crdt.harness import connect, pump
    names = [f"w{i:02d}{NODE[:50]}" for i in range(40)]
    rs = {n: CrdtReplica(n, {"c": ObjectSpec(PNCounter())}, session=i + 1)
          for i, n in enumerate(names)}
    inflight = []
    for n in names[1:]:
        inflight += connect(rs, names[0], n, 0)
        rs[n].update("c", lambda c, w: c.p_inc(w, 1), 0)
    now = pump(rs, 0, inflight, rounds=80)
    a, b = rs[names[1]], rs[names[2]]
    now = pump(rs, now, connect(rs, names[1], names[2], now), rounds=60)
    assert a.get("c").value() == b.get("c").value() == 39
    a.on_disconnect(names[0])
    a.on_disconnect(names[2])
    b.on_disconnect(names[1])
    a.update("c", lambda c, w: c.p_inc(w, 5), now)  # b has not seen this one
    sent = []
    queue = connect(rs, names[1], names[2], now)
    while queue:
        src, dst, m = queue.pop(0)
        sent.append(type(m).__name__)
        queue += [(dst, d, r) for d, r in rs[dst].on_message(src, m, now)]
    assert "CrdtSummaryWant" in sent and "CrdtSummaryReply" in sent
    assert "CrdtDigest" not in sent and "CrdtDigestPart" not in sent
    assert b.books.peer(names[1]).digest["c"] == a.get("c").ctx
    assert a.books.peer(names[2]).digest["c"] == b.get("c").ctx
    pump(rs, now, rounds=20)
    assert b.get("c").value() == 44


def test_a_malformed_summary_is_refused_and_changes_nothing():
    rs = _pair()
    p = rs["a"].books.peer("b")
    p.acked, p.their_session = 7, 3
    for bad in ([1, [1] * 15], [1], "x", [-1, [0] * 16], [1, [-1] + [0] * 15]):
        with pytest.raises(MalformedMessage):
            rs["a"].on_message("b", CrdtSummary(4, 1, 0, (CrdtObject("c", pack_payload(bad)),)), 0)
    assert p.acked == 7 and p.their_session == 3 and p.round is None
