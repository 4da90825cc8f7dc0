"""The replica facade: pruning departed nodes at a stable point, persistence, bad calls."""

import pytest

from protocol.messages.crdt import CrdtDelta, CrdtObject

from crdt import CrdtUsageError, LWWMap, ObjectSpec, ORMap, ORSet, PNCounter, CrdtReplica, Writer
from tests.crdt.harness import connect, delta_message, pump

T0 = 5_000_000


def schema():
    return {"links": ObjectSpec(LWWMap()), "tags": ObjectSpec(ORMap(ORSet())),
            "load": ObjectSpec(PNCounter())}


def trio():
    rs = {n: CrdtReplica(n, schema(), session=i + 1) for i, n in enumerate("abc")}
    inflight = connect(rs, "a", "b", T0) + connect(rs, "b", "c", T0) + connect(rs, "a", "c", T0)
    return rs, pump(rs, T0, inflight)


def test_departed_node_is_pruned_at_the_stable_point_and_never_resurrected():
    rs, now = trio()
    rs["c"].update("links", lambda m, w: m.p_set(w, "c>a", 30), now)
    rs["c"].update("load", lambda l, w: l.p_inc(w, 7), now)
    rs["a"].update("load", lambda l, w: l.p_inc(w, 1), now)
    late = rs["c"].update("tags", lambda m, w: m.p_update(w, "gpu", lambda s: s.p_add(w, "c")),
                          now)
    # c's last delta reaches a and b directly; then c leaves the membership
    now = pump(rs, now)
    assert rs["a"].get("load").value() == 8
    for r in ("a", "b"):
        rs[r].on_disconnect("c")
    members = ["a", "b"]
    now = pump({k: rs[k] for k in members}, now, connect(rs, "a", "b", now))
    stable = rs["a"].stable_point(members)
    assert stable is not None and stable["load"]["c"] == 1
    for r in members:
        assert rs[r].prune({"c"}, rs[r].stable_point(members)) == {"c"}
    assert rs["a"].get("load").value() == 1 and "c>a" not in rs["a"].get("links")
    assert "c" not in rs["a"].get("tags").ctx.replicas()
    # an old delta of c, still in flight somewhere, arrives late: dropped, not resurrected
    rs["a"].on_message("x", delta_message("tags", late, signed=False), now)
    assert rs["a"].get("tags").keys() == set() and rs["a"].stats.departed_dots_dropped == 1
    assert rs["a"].get("tags").same_state(rs["b"].get("tags"))
    # c comes back (the committee re-admits it): new writes count, old ones stay buried
    rs["a"].readmit({"c"})
    rs["a"].on_message("x", delta_message("tags", late, session=5, signed=False), now)
    assert rs["a"].get("tags").keys() == set()
    fresh = CrdtReplica("c", schema(), session=42)
    fresh.objects["tags"].ctx.add_range("c", 1, 4)  # c learned its old counters from a digest
    new = fresh.update("tags", lambda m, w: m.p_update(w, "gpu", lambda s: s.p_add(w, "c")), now)
    rs["a"].on_message("x", delta_message("tags", new, session=6, signed=False), now)
    assert rs["a"].get("tags").get("gpu").elements() == {"c"}


def test_pruning_waits_until_every_member_has_everything_of_the_departed_node():
    rs, now = trio()
    rs["c"].update("load", lambda l, w: l.p_inc(w, 7), now)
    now = pump(rs, now, drop={"b"})  # b never got c's increment
    stable = {"links": {}, "tags": {}, "load": {"c": 0}}
    assert rs["a"].prune({"c"}, stable) == set()  # a knows more of c than is stable
    assert rs["a"].get("load").value() == 7
    assert rs["b"].stable_point(["a", "b", "zz"]) is None  # no digest from zz yet


def test_snapshot_restores_every_object_exactly_under_a_new_session():
    rs, now = trio()
    rs["a"].update("links", lambda m, w: m.p_set(w, "a>b", {"rtt_ms": 12}), now)
    rs["a"].update("tags", lambda m, w: m.p_update(w, "gpu", lambda s: s.p_add(w, "a")), now)
    rs["a"].update("load", lambda l, w: l.p_dec(w, 2), now)
    now = pump(rs, now)
    rs["a"].prune({"zz"}, {})  # nothing known of zz: pruned trivially, remembered
    blob = rs["a"].snapshot()
    back = CrdtReplica.restore(blob, schema(), session=1234)
    assert back.session == 1234 and back.departed == rs["a"].departed
    for name, obj in rs["a"].objects.items():
        assert back.objects[name] == obj
    assert back.hlc.last == rs["a"].hlc.last
    with pytest.raises(Exception, match="does not match the schema"):
        CrdtReplica.restore(blob, {"links": ObjectSpec(ORSet())}, session=1)


def test_objects_this_node_does_not_know_are_skipped():
    rs, now = trio()
    d = LWWMap().set(Writer("b", (1, 0)), "k", 1)
    msg = delta_message("links", d, signed=False)
    unknown = CrdtDelta(msg.session, 1, 1, msg.replicas,
                        (CrdtObject("from-a-newer-release", msg.objects[0].data),) + msg.objects)
    rs["a"].on_message("b", unknown, now)
    assert rs["a"].stats.unknown_objects == 1 and rs["a"].get("links").get("k") == 1


def test_local_misuse_is_our_bug_with_a_clear_message():
    r = CrdtReplica("a", schema(), session=1)
    with pytest.raises(CrdtUsageError, match="no replicated object named 'nope'"):
        r.update("nope", lambda m, w: m.p_set(w, "k", 1), T0)
    with pytest.raises(CrdtUsageError, match="read-only views"):
        r.update("links", lambda m, w: m.set(w, "k", 1), T0)  # the committing mutator
    with pytest.raises(CrdtUsageError, match="must return a Patch"):
        r.update("links", lambda m, w: None, T0)
    assert r.get("links").ctx.is_empty()
    with pytest.raises(CrdtUsageError, match="session"):
        CrdtReplica("a", schema(), session=0)


def test_writes_a_pruned_node_made_meanwhile_arrive_once_it_is_readmitted():
    """A node that left keeps running and writes; its peers drop those dots while it is
    pruned. Re-admitted, it must still get them across: the peers' digests show they lack
    them though they acknowledged the deltas, so it sends a state."""
    rs, now = trio()
    rs["c"].update("links", lambda m, w: m.p_set(w, "c", 1), now)
    for _ in range(10):
        now = pump(rs, now + 5_000)
    for r in ("a", "b"):
        assert rs[r].prune({"c"}, rs[r].stable_point(["a", "b", "c"])) == {"c"}
    rs["c"].update("links", lambda m, w: m.p_set(w, "c", 2), now)  # written while pruned
    now = pump(rs, now)
    assert rs["a"].get("links").get("c") is None
    for r in ("a", "b"):
        rs[r].readmit({"c"})
    now = pump(rs, now)  # readmitting sends a digest at once, not in up to 30 s
    assert rs["a"].get("links").get("c") == rs["b"].get("links").get("c") == 2


def test_a_replica_rests_only_when_every_connected_peer_has_every_delta():
    """``resting``: the service may then tick rarely; any delta still owed to a peer, or a
    peer that needs a state, keeps it ticking."""
    rs, now = trio()
    assert all(r.resting() for r in rs.values())
    rs["a"].update("load", lambda l, w: l.p_inc(w, 1), now)
    assert not rs["a"].resting()  # written, not yet sent
    out = rs["a"].tick(now + 100)
    assert out and not rs["a"].resting()  # sent, not yet acknowledged
    now = pump(rs, now + 100, [("a", dst, m) for dst, m in out])
    assert all(r.resting() for r in rs.values())  # b and c forwarded it and were acknowledged
    rs["a"].books.peers["b"].needs_state = True
    assert not rs["a"].resting()
    rs["a"].on_disconnect("b")
    assert rs["a"].resting()  # only connected peers count
