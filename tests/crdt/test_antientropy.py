"""Delta buffers, acknowledgements, digests and the full-state fallback, through replicas."""

from protocol.canonical import packb
from protocol.messages.crdt import CrdtAck, CrdtDelta, CrdtDigest, CrdtState, CrdtSummary
from protocol.schema import encode_body

from crdt import AntiEntropyConfig, LWWMap, ObjectSpec, ORSet, PNCounter, CrdtReplica, Writer
from crdt.antientropy import DeltaBuffer
from tests.crdt.harness import connect, pump

T0 = 1_000_000


def schema():
    return {"m": ObjectSpec(LWWMap()), "s": ObjectSpec(ORSet()), "c": ObjectSpec(PNCounter())}


def make(*names, **cfg):
    config = AntiEntropyConfig(**cfg)
    return {n: CrdtReplica(n, schema(), session=i + 1, config=config) for i, n in enumerate(names)}


def same(rs):
    first, *rest = rs.values()
    return all(o.same_state(r.objects[n]) for r in rest for n, o in first.objects.items())


def size(msg):
    return len(packb(encode_body(msg), maps=False))


def test_buffer_joins_intervals_and_drops_what_everyone_has():
    buf = DeltaBuffer(session=1, max_size=3)
    m = LWWMap()
    for i in range(5):
        d = m.set(Writer("a", (i, 0)), "k", i)
        buf.push({"m": d}, origin="peer" if i == 4 else None)
    assert (buf.low, buf.head, len(buf)) == (3, 5, 3)  # two fell off the end
    assert not buf.covers(1) and buf.covers(2)
    start, end, joined = buf.interval(2, 10)
    assert (start, end) == (3, 5) and joined["m"].get("k") == 4
    _, _, joined = buf.interval(2, 10, peer="peer")  # nothing goes back where it came from
    assert joined["m"].get("k") == 3
    buf.gc(4)
    assert (buf.low, len(buf)) == (5, 1)


def test_replicas_that_diverged_apart_converge_on_reconnect():
    rs = make("a", "b")
    for i in range(20):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", i), T0)
        rs["b"].update("s", lambda s, w: s.p_add(w, i), T0)
    pump(rs, T0, connect(rs, "a", "b", T0))
    assert same(rs) and len(rs["b"].get("m")) == 20 and len(rs["a"].get("s")) == 20


def test_a_peer_too_far_behind_gets_only_what_it_lacks():
    rs = make("a", "b", max_buffer=4)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for i in range(200):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", "x" * 40), now)
    now = pump(rs, now)
    assert same(rs)
    rs["b"].on_disconnect("a")
    rs["a"].on_disconnect("b")
    for i in range(10):  # a's buffer (4 deltas) cannot cover these for b
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", "new"), now)
    inflight = connect(rs, "a", "b", now)
    while inflight:  # summaries, then the buckets that differ, until a knows b's context
        src, dst, m = inflight.pop(0)
        inflight += [(dst, d, r) for d, r in rs[dst].on_message(src, m, now)]
    assert rs["a"].books.peer("b").comparing_since is None
    out = rs["a"].tick(now + 100)
    states = [m for _, m in out if isinstance(m, CrdtState)]
    assert len(states) == 1
    full = CrdtState(1, 1, 0, 1, *_full_objects(rs["a"]))
    assert size(states[0]) < size(full) / 5  # 10 new entries sent, 190 known ones elided
    for _, m in out:
        rs["b"].on_message("a", m, now + 100)
    assert same(rs)


def _full_objects(r):
    from crdt.codec import Interner, encode_object, pack_payload
    from protocol.messages.crdt import CrdtObject
    rep = Interner()
    objs = tuple(CrdtObject(n, pack_payload(encode_object(o, rep))) for n, o in r.objects.items())
    return tuple(rep.table), objs


def test_a_peer_that_lacks_nothing_gets_nothing():
    rs = make("a", "b")
    rs["a"].update("c", lambda c, w: c.p_inc(w, 3), T0)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for r in rs.values():
        r.books.buffer.gc(10**9)  # as if every other peer acknowledged everything
    rs["a"].on_disconnect("b")
    rs["b"].on_disconnect("a")
    inflight = connect(rs, "a", "b", now)
    for src, dst, m in inflight:  # summaries that agree: nothing asked, nothing sent
        assert isinstance(m, CrdtSummary)
        assert rs[dst].on_message(src, m, now) == []
    assert [m for _, m in rs["a"].tick(now + 1) if not isinstance(m, CrdtSummary)] == []


def test_without_summaries_a_peer_that_lacks_nothing_gets_nothing():
    rs = make("a", "b", summaries=False)
    rs["a"].update("c", lambda c, w: c.p_inc(w, 3), T0)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for r in rs.values():
        r.books.buffer.gc(10**9)
    rs["a"].on_disconnect("b")
    rs["b"].on_disconnect("a")
    for src, dst, m in connect(rs, "a", "b", now):
        assert isinstance(m, CrdtDigest)
        assert rs[dst].on_message(src, m, now) == []


def test_duplicates_are_acknowledged_again_and_gaps_ask_for_a_digest():
    rs = make("a", "b", digest_every_ms=10**9)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].update("c", lambda c, w: c.p_inc(w, 1), now)
    (_, first), = [(d, m) for d, m in rs["a"].tick(now + 10) if isinstance(m, CrdtDelta)]
    assert rs["b"].on_message("a", first, now + 10) == [("a", CrdtAck(1, first.seq_to))]
    assert rs["b"].on_message("a", first, now + 20) == [("a", CrdtAck(1, first.seq_to))]
    assert rs["b"].stats.duplicates == 1
    gap = CrdtDelta(first.session, first.seq_to + 5, first.seq_to + 6, first.replicas,
                    first.objects)
    reply = rs["b"].on_message("a", gap, now + 500)
    assert [type(m) for _, m in reply] == [CrdtSummary] and rs["b"].get("c").value() == 1


def test_acknowledged_deltas_leave_the_buffer_and_are_not_echoed_back():
    rs = make("a", "b")
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].update("s", lambda s, w: s.p_add(w, "x"), now)
    now = pump(rs, now)
    assert len(rs["a"].books.buffer) == 0 and len(rs["b"].books.buffer) == 0
    assert rs["b"].stats.messages_out.get("CrdtDelta", 0) == 0  # b never echoed a's delta


def test_a_restarted_replica_that_lost_its_state_catches_up():
    rs = make("a", "b")
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for i in range(30):
        rs["a"].update("m", lambda m, w: m.p_set(w, i, i), now)
    now = pump(rs, now)
    rs["a"].on_disconnect("b")
    rs["b"] = CrdtReplica("b", schema(), session=99)  # crashed, disk lost, new session
    pump(rs, now, connect(rs, "a", "b", now))
    assert same(rs) and len(rs["b"].get("m")) == 30


def test_a_state_over_the_message_budget_goes_in_parts_and_joins_only_when_complete():
    rs = make("a", "b", max_message_bytes=3000, max_buffer=2)
    for i in range(300):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"key-{i:04d}", {"v": "x" * 20}), T0)
        rs["a"].update("s", lambda s, w: s.p_add(w, i), T0)
    inflight = connect(rs, "a", "b", T0)
    while inflight:  # summaries, then the bucket a's summary differs in
        src, dst, m = inflight.pop(0)
        inflight += [(dst, d, r) for d, r in rs[dst].on_message(src, m, T0)]
    parts = [m for _, m in rs["a"].tick(T0 + 100) if isinstance(m, CrdtState)]
    assert len(parts) > 5 and {m.parts for m in parts} == {len(parts)}
    assert all(sum(len(o.data) for o in m.objects) <= 3000 for m in parts)
    # out of order, one part lost: nothing is applied, nothing acknowledged
    for m in reversed(parts[1:]):
        assert rs["b"].on_message("a", m, T0 + 100) == []
    assert len(rs["b"].get("m")) == 0 and rs["b"].get("m").ctx.is_empty()
    # the retransmission brings the missing part: the whole state joins at once; it waits
    # longer than an interval's would (a state is large, and the stream is reliable)
    resend = T0 + 100 + rs["a"].books.config.state_retransmit_ms
    assert not [m for _, m in rs["a"].tick(resend - 1) if isinstance(m, CrdtState)]
    again = [m for _, m in rs["a"].tick(resend) if isinstance(m, CrdtState)]
    assert again == parts
    replies = rs["b"].on_message("a", again[0], resend)
    assert [type(m) for _, m in replies] == [CrdtAck]
    assert same(rs)


def test_updates_persisted_but_never_sent_before_a_crash_still_reach_peers():
    rs = make("a", "b")
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].update("m", lambda m, w: m.p_set(w, "k", "made just before the crash"), now)
    blob = rs["a"].snapshot()  # persisted; the delta never left
    rs["b"].on_disconnect("a")
    rs["a"] = CrdtReplica.restore(blob, schema(), session=77)
    pump(rs, now, connect(rs, "a", "b", now))
    assert rs["b"].get("m").get("k") == "made just before the crash" and same(rs)


def test_an_interval_sent_once_and_its_acknowledgement_time_the_link():
    rs = make("a", "b", digest_every_ms=10**9)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].take_round_trips()
    rs["a"].update("c", lambda c, w: c.p_inc(w, 1), now)
    (_, delta), = [(d, m) for d, m in rs["a"].tick(now + 10) if isinstance(m, CrdtDelta)]
    (_, ack), = rs["b"].on_message("a", delta, now + 40)
    assert rs["a"].on_message("b", ack, now + 73) == []
    assert rs["a"].take_round_trips() == [("b", 63)]  # sent at +10, answered at +73
    assert rs["a"].take_round_trips() == []  # taken once
    assert rs["a"].on_message("b", ack, now + 90) == [] and rs["a"].take_round_trips() == []


def test_a_retransmitted_interval_gives_no_round_trip():
    # Karn's rule: the acknowledgement could answer either copy, so it measures nothing.
    rs = make("a", "b", digest_every_ms=10**9, retransmit_ms=400)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].take_round_trips()
    rs["a"].update("c", lambda c, w: c.p_inc(w, 1), now)
    first = [m for _, m in rs["a"].tick(now + 10) if isinstance(m, CrdtDelta)]
    again = [m for _, m in rs["a"].tick(now + 500) if isinstance(m, CrdtDelta)]
    assert len(first) == len(again) == 1  # lost, then sent again
    (_, ack), = rs["b"].on_message("a", again[0], now + 520)
    rs["a"].on_message("b", ack, now + 530)
    assert rs["a"].take_round_trips() == []
    # The next change is sent once again, and timed.
    rs["a"].update("c", lambda c, w: c.p_inc(w, 1), now + 600)
    (_, delta), = [(d, m) for d, m in rs["a"].tick(now + 610) if isinstance(m, CrdtDelta)]
    (_, ack), = rs["b"].on_message("a", delta, now + 620)
    rs["a"].on_message("b", ack, now + 650)
    assert rs["a"].take_round_trips() == [("b", 40)]


def _reconnect_far_behind(max_buffer=4):
    """a and b in sync, then apart while a writes more than its buffer keeps."""
    rs = make("a", "b", max_buffer=max_buffer)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for i in range(200):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", "x" * 40), now)
    now = pump(rs, now)
    rs["b"].on_disconnect("a")
    rs["a"].on_disconnect("b")
    for i in range(10):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", "new"), now)
    return rs, now


def test_a_new_link_waits_for_the_peers_summary_before_sending_a_state():
    # Before the peer's summary arrives (a round trip after connecting) we cannot know what it
    # lacks: a tick then sent the whole registry, on every new soft-state link.
    rs, now = _reconnect_far_behind()
    rs["a"].stats.states_sent.clear()
    inflight = connect(rs, "a", "b", now)
    early = rs["a"].tick(now + 100)
    assert [m for _, m in early if isinstance(m, CrdtState)] == []
    while inflight:
        src, dst, m = inflight.pop(0)
        inflight += [(dst, d, r) for d, r in rs[dst].on_message(src, m, now + 200)]
    states = [m for _, m in rs["a"].tick(now + 300) if isinstance(m, CrdtState)]
    assert len(states) == 1 and size(states[0]) < size(CrdtState(1, 1, 0, 1,
                                                                  *_full_objects(rs["a"]))) / 5
    assert rs["a"].stats.states_sent == {"elided": 1}


def test_a_peer_that_never_sends_its_context_gets_the_full_state_after_the_wait():
    rs = make("a", "b", "c", max_buffer=4)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for i in range(20):  # more than a's buffer keeps: a new peer needs a state
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", i), now)
    now = pump(rs, now)
    rs["a"].stats.states_sent.clear()
    rs["a"].on_connect("c", now)  # c's summary is lost
    wait = rs["a"].books.config.compare_wait_ms
    assert not [m for _, m in rs["a"].tick(now + wait - 1) if isinstance(m, CrdtState)]
    out = rs["a"].tick(now + wait)
    assert [m for _, m in out if isinstance(m, CrdtState)]
    for _, m in out:
        rs["c"].on_message("a", m, now + wait)
    assert len(rs["c"].get("m")) == 20 and rs["a"].stats.states_sent == {"full": 1}


def test_a_state_that_goes_unanswered_goes_again_later_and_is_counted_as_resent():
    rs = make("a", "c", max_buffer=4)
    now = T0
    for i in range(20):
        rs["a"].update("m", lambda m, w: m.p_set(w, f"k{i}", i), now)
    rs["a"].on_connect("c", now)  # c's summary, and then the state, are lost
    wait = rs["a"].books.config.compare_wait_ms
    assert [m for _, m in rs["a"].tick(now + wait) if isinstance(m, CrdtState)]
    soon = now + wait + rs["a"].books.config.state_retransmit_ms - 1
    assert not [m for _, m in rs["a"].tick(soon) if isinstance(m, CrdtState)]
    assert [m for _, m in rs["a"].tick(now + wait + 60_000) if isinstance(m, CrdtState)]
    assert rs["a"].stats.states_sent == {"full": 2, "resent": 1}


def test_a_write_acknowledged_during_a_summary_round_brings_no_state():
    # A bucket round takes round trips. a writes while it runs and b acknowledges the delta
    # before the round ends; the round's view of b (from before) lacks that dot. b lacked it
    # only because it was not sent yet: a must not take that for dots b dropped and send a
    # state. (On a 30-daemon planet testnet during a job, most periodic summaries did.)
    rs = make("a", "b")
    rs["a"].update("m", lambda m, w: m.p_set(w, "k0", 0), T0)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["b"].update("m", lambda m, w: m.p_set(w, "kb", 0), now)  # the replicas differ: a round
    (_, summary), = rs["b"]._digest("a", rs["b"].books.peer("a"), now)
    wants = rs["a"].on_message("b", summary, now + 10)
    replies = [r for _, m in wants for _, r in rs["b"].on_message("a", m, now + 20)]
    rs["a"].update("m", lambda m, w: m.p_set(w, "k1", 1), now + 30)
    deltas = [m for _, m in rs["a"].tick(now + 30) if isinstance(m, CrdtDelta)]
    assert deltas
    for _, ack in rs["b"].on_message("a", deltas[0], now + 40):
        rs["a"].on_message("b", ack, now + 50)
    rs["a"].stats.states_sent.clear()
    for m in replies:
        rs["a"].on_message("b", m, now + 60)
    assert rs["a"].books.peer("b").round is None  # the round ended
    assert not rs["a"].books.peer("b").needs_state
    assert not [m for _, m in rs["a"].tick(now + 10_000) if isinstance(m, CrdtState)]
    assert rs["a"].stats.states_sent == {}


def test_deltas_that_came_from_the_peer_leave_no_gap_in_the_stream_it_gets():
    # a's buffer holds b's own deltas between a's: a leaves them out of b's intervals, and
    # the next interval still starts where b is, so b applies it (a gap made b answer with a
    # summary, which set a's position back and sent what was in flight again).
    rs = make("a", "b", digest_every_ms=10**9)
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    for i in range(5):
        rs["b"].update("m", lambda m, w: m.p_set(w, f"b{i}", i), now)
        now = pump(rs, now)  # a gets b's delta, and has nothing else for b
        rs["a"].update("m", lambda m, w: m.p_set(w, f"a{i}", i), now)
        out = [m for _, m in rs["a"].tick(now + 1) if isinstance(m, CrdtDelta)]
        assert len(out) == 1
        replies = rs["b"].on_message("a", out[0], now + 2)
        assert [type(m) for _, m in replies] == [CrdtAck], replies
        for _, m in replies:
            rs["a"].on_message("b", m, now + 3)
        now += 10
    assert rs["b"].stats.gaps == 0 and same(rs)


def test_own_writes_are_counted_by_object_and_relayed_ones_are_not():
    # What each node writes, by object, is what the soft state's traffic is made of.
    rs = make("a", "b")
    now = pump(rs, T0, connect(rs, "a", "b", T0))
    rs["a"].update("m", lambda m, w: m.p_set(w, "k", "v" * 300), now)
    rs["a"].update("m", lambda m, w: m.p_set(w, "k", "w"), now + 1)
    rs["a"].update("s", lambda s, w: s.p_add(w, "x"), now + 2)
    pump(rs, now + 3)
    written = rs["a"].stats.written
    assert written.keys() == {"m", "s"} and written["m"][0] == 2 and written["s"][0] == 1
    assert 300 < written["m"][1] < 500 and written["s"][1] < 100
    assert rs["b"].stats.written == {} and same(rs)  # b only relays what it was sent


def test_an_interval_another_partner_sent_first_is_counted_redundant():
    # a triangle: c hears a's write from a and again from b (or the other way round)
    rs = make("a", "b", "c")
    inflight = connect(rs, "a", "b", T0) + connect(rs, "b", "c", T0) + connect(rs, "a", "c", T0)
    now = pump(rs, T0, inflight)
    assert sum(r.stats.deltas_redundant for r in rs.values()) == 0
    rs["a"].update("s", lambda s, w: s.p_add(w, "x"), now)
    pump(rs, now)
    assert same(rs)
    assert rs["c"].stats.deltas_applied - rs["c"].stats.deltas_redundant >= 1
    assert sum(r.stats.deltas_redundant for r in rs.values()) >= 1
