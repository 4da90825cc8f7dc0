"""Who sends a shard's hand-over to whom, and when a new member asks for it: pure."""

from __future__ import annotations

from daemon.committees.handoff_plan import (ANSWER_EVERY_S, ASK_AFTER_S, ASK_EVERY_MAX_S, FANOUT,
                                            HandoffAsks, handoff_targets)


def keys(n: int, start: int = 0) -> list[bytes]:
    return [(start + i).to_bytes(2, "big") * 16 for i in range(n)]


def test_each_new_member_hears_from_fanout_distinct_old_members():
    for n_old, n_new in ((4, 4), (37, 37), (163, 160), (10, 40), (40, 10), (2, 5)):
        old, new = keys(n_old), keys(n_new, 1000)
        heard = {pk: [o for o in old if pk in handoff_targets(o, old, new)] for pk in new}
        assert all(len(h) == min(FANOUT, n_old) == len(set(h)) for h in heard.values())
        sent = [len(handoff_targets(o, old, new)) for o in old]
        assert max(sent) <= FANOUT * -(-n_new // n_old)  # not every new member: a few
    assert handoff_targets(b"\xff" * 32, keys(4), keys(4, 1000)) == []  # not an old member


def test_a_new_member_without_a_handoff_asks_the_old_members_after_its_senders_in_turn():
    old = keys(6)
    a = HandoffAsks()
    a.want((0, 3), 100.0, old, index=2)  # old members 2, 1, 0 were to send it
    assert a.due(100.0 + ASK_AFTER_S - 0.1) == []
    assert a.due(100.0 + ASK_AFTER_S) == [((0, 3), old[3])]
    assert a.due(100.0 + ASK_AFTER_S + 1) == []  # one at a time
    t = 100.0 + ASK_AFTER_S + 2 * ASK_AFTER_S  # then twice as long
    assert a.due(t - 0.1) == [] and a.due(t) == [((0, 3), old[4])]
    t += 4 * ASK_AFTER_S
    assert a.due(t) == [((0, 3), old[5])]
    asked = [len(a.due(t + k)) for k in range(1, 601)]  # ten minutes on: at most once a minute
    assert sum(asked) == 600 // ASK_EVERY_MAX_S
    a.want((1, 4), t, old, index=0)
    a.drop_before(4)  # a later epoch's committee: the old want goes
    assert set(a.wants) == {(1, 4)}
    a.got((1, 4))
    assert a.due(1e6) == []


def test_asks_are_answered_at_most_once_a_second_per_peer():
    a = HandoffAsks()
    assert a.may_answer("p", 0.0) and not a.may_answer("p", ANSWER_EVERY_S / 2)
    assert a.may_answer("q", 0.1) and a.may_answer("p", ANSWER_EVERY_S)
