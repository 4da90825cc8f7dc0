"""An unacknowledged interval is not sent again and again: one interval in flight per peer,
each resend waiting twice as long (Karn), and what arrived meanwhile goes in the next one."""

from protocol.messages.crdt import CrdtDelta

from crdt import AntiEntropyConfig, LWWMap, ObjectSpec, CrdtReplica
from tests.crdt.harness import connect, pump

T0 = 1_000_000


def pair():
    config = AntiEntropyConfig()
    rs = {n: CrdtReplica(n, {"m": ObjectSpec(LWWMap())}, session=i + 1, config=config)
          for i, n in enumerate("ab")}
    return rs, pump(rs, T0, connect(rs, "a", "b", T0))


def test_a_peer_that_does_not_answer_gets_few_resends_while_deltas_keep_coming():
    rs, now = pair()
    a, b = rs["a"], rs["b"]
    held = []  # a's messages to b, on a link whose answers take 10 s (a full uplink queue)
    sent_at = []
    for step in range(100):  # a write every 100 ms for 10 s
        now += 100
        a.update("m", lambda m, w, i=step: m.p_set(w, f"k{i}", i), now)
        for dst, msg in a.tick(now):
            if isinstance(msg, CrdtDelta):
                held.append(msg)
                sent_at.append(now - T0)
    # The first interval at once, then resends after 0.4, 0.8, 1.6, 3.2 s: not one per tick.
    gaps = [b2 - b1 for b1, b2 in zip(sent_at, sent_at[1:])]
    assert len(sent_at) == 5 and gaps == sorted(gaps) and gaps[0] >= 400, sent_at
    for msg in held:  # the link drains: b acknowledges what it got
        for dst, ack in b.on_message("a", msg, now):
            a.on_message("b", ack, now)
    now = pump(rs, now)  # the rest goes at once, in one interval, and b has all of it
    assert b.get("m").get("k99") == 99 and a.objects["m"].same_state(b.objects["m"])
