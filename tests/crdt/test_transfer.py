"""Multi-part states: split under the budget, staged with caps, assembled strictly."""

import pytest

from protocol.errors import MalformedMessage, MessageTooLarge

from crdt import LWWMap, ORMap, ORSet, Writer
from crdt.codec import decode_object, decode_table, unpack_payload
from crdt.transfer import Staging, assemble, state_parts

W = Writer("12D3KooWWriter", (1, 0))


def objects():
    m = LWWMap()
    for i in range(120):
        m.set(W, f"key{i:03d}", "v" * 50)
    s = ORMap(ORSet())
    s.update(W, "k", lambda v: v.p_add(W, "x"))
    return {"m": m, "s": s}


def decode(parts, objs):
    return assemble([(o.name, *decode_object(objs[o.name].empty_like(),
                                             unpack_payload(o.data), decode_table(
                                                 list(p.replicas))))
                     for p in parts for o in p.objects])


def test_parts_fit_the_budget_and_reassemble_to_the_state():
    objs = objects()
    parts = state_parts(objs, None, session=1, seq=9, signed=False, max_bytes=2000)
    assert len(parts) > 3
    assert all(sum(len(o.data) for o in p.objects) <= 2000 for p in parts)
    back = {name: obj for name, obj, known in decode(parts, objs)}
    assert back["m"] == objs["m"] and back["s"] == objs["s"]


def test_elided_parts_list_the_dots_the_peer_has():
    objs = objects()
    theirs = {"m": objs["m"].ctx.copy(), "s": objs["s"].ctx.copy()}
    objs["m"].set(W, "new", 1)
    parts = state_parts(objs, theirs, session=1, seq=9, signed=False, max_bytes=100_000)
    (m, mobj, known), _ = decode(parts, objs)
    assert m == "m" and mobj.keys() == {"new"} and len(known) == 120


def test_staging_holds_one_transfer_and_caps_it():
    objs = objects()
    parts = state_parts(objs, None, session=1, seq=9, signed=False, max_bytes=2000)
    st = Staging(max_bytes=10**6)
    assert st.add(parts[1]) is None and st.add(parts[1]) is None
    newer = state_parts(objs, None, session=1, seq=10, signed=False, max_bytes=2000)
    assert st.add(newer[0]) is None  # a newer transfer replaces the older one
    assert st.add(parts[0]) is None  # and older parts are ignored from then on
    for p in newer[1:-1]:
        assert st.add(p) is None
    assert st.add(newer[-1]) == newer
    small = Staging(max_bytes=100)
    with pytest.raises(MessageTooLarge, match="staged bytes"):
        small.add(parts[0])
    bad = type(parts[0])(1, 9, 5, 2, parts[0].replicas, parts[0].objects)
    with pytest.raises(MalformedMessage, match="out of range"):
        st.add(bad)


def test_parts_that_do_not_fit_together_are_rejected():
    objs = objects()
    parts = state_parts(objs, None, session=1, seq=9, signed=False, max_bytes=2000)
    with pytest.raises(MalformedMessage, match="repeat"):
        decode([parts[1], parts[1]], objs)
    other = objects()
    other["m"].set(W, "extra", 1)
    mixed = state_parts(other, None, session=1, seq=9, signed=False, max_bytes=2000)
    with pytest.raises(MalformedMessage, match="disagree on 'm'"):
        decode([parts[0], mixed[1]], objs)
