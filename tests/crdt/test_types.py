"""What each type shows its readers: add-wins sets, LWW order, visible conflicts, counters,
nested maps, and removes that leave no tombstones."""

import pytest

from crdt import (
    CrdtUsageError,
    GCounter,
    LWWMap,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    Writer,
)

A, B, C = Writer("a"), Writer("b"), Writer("c")


def sync(*objs):
    for x in objs:
        for y in objs:
            x.join(y)


def test_orset_add_wins_over_a_concurrent_remove():
    a, b = ORSet(), ORSet()
    a.add(A, "x")
    sync(a, b)
    b.remove(B, "x")  # b saw a's add and removes it
    a.add(A, "x")  # concurrently a adds again
    sync(a, b)
    assert a.elements() == b.elements() == {"x"}
    b.remove(B, "x")
    sync(a, b)
    assert "x" not in a and a.elements() == set()


def test_removes_leave_no_tombstones():
    s = ORSet()
    for i in range(1000):
        s.add(A, i % 10)
        s.remove(A, i % 10)
    assert s.store == {} and s.ctx.vv == {"a": 2000} and s.ctx.extra == {}


def test_lww_orders_by_hlc_then_node_id_never_by_arrival():
    a, b = LWWRegister(), LWWRegister()
    a.set(Writer("a", (100, 0)), "from a")
    b.set(Writer("b", (100, 1)), "from b")  # same ms, later logical time
    sync(a, b)
    assert a.get() == b.get() == "from b" and a.siblings() == 2
    c = LWWRegister()
    c.set(Writer("c", (100, 1)), "from c")  # exact tie: the greater node id wins
    sync(a, b, c)
    assert a.get() == b.get() == c.get() == "from c"
    a.set(Writer("a", (101, 0)), "resolved")  # a later write covers every sibling it saw
    sync(a, b, c)
    assert c.get() == "resolved" and c.siblings() == 1


def test_lww_map_overwrites_stay_small():
    replicas = [LWWMap() for _ in range(3)]
    writers = [Writer(n) for n in "abc"]
    for i in range(3000):
        k = i % 3
        replicas[k].set(Writer(writers[k].replica, (i, 0)), f"key{i % 10}", i)
        if i % 7 == 0:
            sync(*replicas)
    sync(*replicas)
    r = replicas[0]
    assert len(r) <= 30 and set(r.ctx.extra) == set()
    assert r.get("key9") == 2999 and r.writer("key9") == "c"  # i = 2999 was written by c


def test_mvregister_shows_a_conflict_until_it_is_resolved():
    a, b = MVRegister(), MVRegister()
    a.write(A, "running")
    b.write(B, "done")
    sync(a, b)
    assert a.conflicted and sorted(a.values()) == ["done", "running"]
    a.write(A, "done")
    sync(a, b)
    assert b.values() == ["done"] and not b.conflicted


def test_counters_sum_every_writer_and_can_be_reset():
    g, p = GCounter(), PNCounter()
    g.inc(A, 3)
    g.inc(A, 4)
    other = GCounter()
    other.inc(B, 10)
    sync(g, other)
    assert g.value() == 17 and len(g.store) == 2  # one entry per writer
    p.inc(A, 5)
    p.dec(B, 7)
    assert p.value() == -2
    p.reset(A)
    assert p.value() == 0
    with pytest.raises(CrdtUsageError, match="non-negative"):
        g.inc(A, -1)


def test_ormap_nests_types_and_update_wins_over_concurrent_remove():
    a = ORMap(ORMap(PNCounter()))
    a.update(A, "node1", lambda m: m.p_update(A, "cpu", lambda c: c.p_inc(A, 5)))
    b = a.copy()
    b.remove(B, "node1")
    a.update(A, "node1", lambda m: m.p_update(A, "gpu", lambda c: c.p_inc(A, 1)))
    sync(a, b)
    assert a.same_state(b)
    assert b.get("node1").keys() == {"gpu"}  # what b saw is gone, the concurrent update stays
    assert b.get("node1").get("gpu").value() == 1


def test_nested_values_are_read_only_views():
    m = ORMap(ORSet())
    m.update(A, "k", lambda s: s.p_add(A, "x"))
    with pytest.raises(CrdtUsageError, match="read-only views"):
        m.get("k").add(A, "y")
    with pytest.raises(TypeError, match="must return a Patch"):
        m.update(A, "k", lambda s: None)


def test_bad_keys_and_values_are_refused_locally():
    m = LWWMap()
    with pytest.raises(CrdtUsageError, match="keys must be str, bytes or int"):
        m.set(A, 1.5, "x")
    with pytest.raises(CrdtUsageError, match="exceeds 256"):
        m.set(A, "k" * 300, "x")
    with pytest.raises(CrdtUsageError, match="cannot store value"):
        m.set(A, "k", object())
    with pytest.raises(CrdtUsageError, match="over the 65536-byte cap"):
        m.set(A, "k", b"x" * 70_000)
    assert len(m) == 0 and m.ctx.is_empty()


def test_a_writer_that_equivocates_cannot_split_the_replicas():
    """Two different writes under one dot (a faulty or malicious writer): every replica keeps
    the same one, whatever order they arrive in."""
    one, two = LWWMap(), LWWMap()
    d1 = one.set(Writer("m", (5, 0)), "k", "first")
    d2 = two.set(Writer("m", (5, 0)), "k", "second")  # same dot ("m", 1), other value
    x, y = LWWMap(), LWWMap()
    x.join(d1)
    x.join(d2)
    y.join(d2)
    y.join(d1)
    assert x == y and len(x) == 1
    assert x.store == {"k": (min(d1.store["k"][0], d2.store["k"][0]),)}
