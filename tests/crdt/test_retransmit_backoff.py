"""An unacknowledged interval is not sent again and again: each resend waits twice as long as
the last (Karn), so a peer whose acknowledgements take seconds (a full uplink queue) is not
sent the same deltas every 400 ms."""

from protocol.messages.crdt import CrdtDelta

from crdt import AntiEntropyConfig, LWWMap, ObjectSpec, CrdtReplica
from tests.crdt.harness import connect, pump

T0 = 1_000_000


def pair():
    config = AntiEntropyConfig()
    rs = {n: CrdtReplica(n, {"m": ObjectSpec(LWWMap())}, session=i + 1, config=config)
          for i, n in enumerate("ab")}
    return rs, pump(rs, T0, connect(rs, "a", "b", T0))


def test_a_peer_that_does_not_answer_gets_fewer_and_fewer_resends():
    rs, now = pair()
    a, b = rs["a"], rs["b"]
    a.update("m", lambda m, w: m.p_set(w, "k", 1), now)
    held = []  # a's messages to b, on a link whose answers take 10 s
    sent_at = []
    for _ in range(100):  # ticks every 100 ms for 10 s
        now += 100
        for dst, msg in a.tick(now):
            if isinstance(msg, CrdtDelta):
                held.append(msg)
                sent_at.append(now - T0)
    # The interval at once, then resends after 0.4, 0.8, 1.6, 3.2 s: not one per 0.4 s.
    gaps = [b2 - b1 for b1, b2 in zip(sent_at, sent_at[1:])]
    assert len(sent_at) == 5 and gaps == sorted(gaps) and gaps[0] >= 400, sent_at
    for msg in held:  # the link drains: b acknowledges what it got
        for dst, ack in b.on_message("a", msg, now):
            a.on_message("b", ack, now)
    now = pump(rs, now)
    assert b.get("m").get("k") == 1 and a.objects["m"].same_state(b.objects["m"])


def test_new_deltas_while_an_interval_is_on_its_way_go_alone():
    """A slow link (acknowledgements after 10 s) and an update every 500 ms: each new delta is
    sent once, after what is in flight, and the whole unacknowledged interval goes again only
    when the back-off timer says so. Each interval used to start at the last acknowledgement,
    so every update carried every unacknowledged one again (quadratic in the link's delay)."""
    rs, now = pair()
    a, b = rs["a"], rs["b"]
    held, carried, updates = [], 0, 0
    for step in range(100):  # ticks every 100 ms for 10 s
        now += 100
        if step % 5 == 0:
            a.update("m", lambda m, w, k=step: m.p_set(w, f"k{k}", k), now)
            updates += 1
        for dst, msg in a.tick(now):
            if isinstance(msg, CrdtDelta):
                held.append(msg)
                carried += msg.seq_to - msg.seq_from + 1
    # each update once, plus the back-off's resends (at 0.4, 0.8, 1.6, 3.2, 6.4 s) of what
    # was unacknowledged then: 42 in all (211 when each interval carried all it had)
    assert updates == 20 and carried <= 3 * updates, carried
    for msg in held:  # the link drains in order: b takes each in turn
        for dst, ack in b.on_message("a", msg, now):
            a.on_message("b", ack, now)
    now = pump(rs, now)
    assert len(b.get("m")) == 20 and a.objects["m"].same_state(b.objects["m"])


def test_a_lost_interval_before_later_ones_is_repaired():
    """The later intervals start after the lost one: the peer sees the gap, answers with a
    digest, and gets the lost part again."""
    rs, now = pair()
    a, b = rs["a"], rs["b"]
    sent = []
    for step in range(6):
        now += 100
        a.update("m", lambda m, w, k=step: m.p_set(w, f"k{k}", k), now)
        sent += [msg for dst, msg in a.tick(now) if isinstance(msg, CrdtDelta)]
    assert len(sent) >= 3 and sent[1].seq_from == sent[0].seq_to + 1
    for msg in sent[1:]:  # the first is lost
        for dst, reply in b.on_message("a", msg, now):
            a.on_message("b", reply, now)
    now = pump(rs, now + 1000)
    assert len(b.get("m")) == 6 and a.objects["m"].same_state(b.objects["m"])


def test_the_resend_wait_follows_the_peers_acknowledgements():
    """A link whose acknowledgements take 2 s (a slow uplink's queue): the unacknowledged
    interval goes again only after srtt + 4 x rttvar (RFC 6298), not every 400 ms, whose copies
    only lengthened the queue."""
    rs, now = pair()
    a, b = rs["a"], rs["b"]
    for k in range(4):  # four updates, each acknowledged 2 s later: a learns the round trip
        a.update("m", lambda m, w, k=k: m.p_set(w, f"k{k}", k), now)
        sent = [msg for dst, msg in a.tick(now + 1) if isinstance(msg, CrdtDelta)]
        now += 2000
        for msg in sent:
            for dst, ack in b.on_message("a", msg, now):
                a.on_message("b", ack, now)
    p = a.books.peers["b"]
    assert p.srtt is not None and 1900 <= a.books.rto(p) <= 4000
    a.update("m", lambda m, w: m.p_set(w, "late", 1), now)
    first = [t for t in range(1, 5000, 100)
             for dst, msg in a.tick(now + t) if isinstance(msg, CrdtDelta)]
    assert first[0] == 1 and (len(first) == 1 or first[1] >= 1900), first
