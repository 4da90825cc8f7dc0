"""Snapshots load back exactly; a peer's bytes are checked before anything is built."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from protocol.canonical import packb
from protocol.errors import MalformedMessage, MessageTooLarge, RemoteProtocolError

from crdt import LWWMap, ORMap, ORSet, Writer, load, snapshot
from crdt.codec import Interner, decode_object, decode_table, encode_object
from crdt.values import Limits
from tests.crdt.strategies import TYPE_IDS, TYPES, TypeCase, run_history

NODE = "12D3KooWDz6KKn4UKcexKnYT7b15uJ9ruEVNrRmj9xxjSP698Wd7"


@pytest.mark.parametrize("case", TYPES, ids=TYPE_IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_snapshots_load_back_exactly(case: TypeCase, data: st.DataObject) -> None:
    for state in run_history(data, case).states:
        blob = snapshot(state)
        back = load(blob, case.make())
        assert back == state and back.index == state.index
        assert snapshot(back) == blob  # one encoding per state


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.builds(
    packb, st.recursive(st.none() | st.integers(-5, 2**64 - 1) | st.binary(max_size=70)
                        | st.text(max_size=5), lambda x: st.lists(x, max_size=6), max_leaves=30)))
def test_garbage_raises_only_remote_protocol_errors(data: bytes) -> None:
    for proto in (LWWMap(), ORMap(ORSet())):
        with pytest.raises(RemoteProtocolError):
            load(data, proto)


GARBAGE = st.recursive(st.none() | st.integers(-5, 2**64 - 1) | st.binary(max_size=40)
                       | st.text(max_size=5) | st.booleans(),
                       lambda x: st.lists(x, max_size=6), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_valid_payload_with_any_part_replaced_is_rejected_cleanly(data) -> None:
    table, p = payload(good_map())
    # walk to a random node of the payload tree and replace it with garbage
    node, steps = p, data.draw(st.integers(0, 4))
    for _ in range(steps):
        if type(node) is not list or not node:
            break
        i = data.draw(st.integers(0, len(node) - 1))
        if type(node[i]) is list and data.draw(st.booleans()):
            node = node[i]
        else:
            node[i] = data.draw(GARBAGE)
            break
    try:
        obj, _ = decode_object(LWWMap(), p, decode_table(table))
    except RemoteProtocolError:
        return
    # whatever was accepted is a consistent state
    assert all(obj.ctx.contains(*d) for d in obj.index)
    assert load(snapshot(obj), LWWMap()) == obj


def payload(obj):
    rep = Interner()
    return rep.table, encode_object(obj, rep)


def good_map():
    m = LWWMap()
    m.set(Writer(NODE, (5, 0)), "k", {"cores": 8})
    m.set(Writer("b", (6, 0)), 7, [1, 2])
    return m


@pytest.mark.parametrize("mutate,error,match", [
    (lambda t, p: p[1].clear(), MalformedMessage, "missing from the context"),
    (lambda t, p: p[2].__setitem__(1, p[2][1] * 2), MalformedMessage, "appears twice"),
    (lambda t, p: p[2][1].__setitem__(4, b"\xca\x3f\x80\x00\x00"), MalformedMessage,
     "canonical"),
    (lambda t, p: p[2][1].__setitem__(4, b"\xc1"), MalformedMessage, "not valid msgpack"),
    (lambda t, p: p[2][1].__setitem__(0, 9), MalformedMessage, "not in the table"),
    (lambda t, p: p[2][1].__setitem__(1, 0), MalformedMessage, r"dot counter must be"),
    (lambda t, p: p[2][1].__setitem__(2, -1), MalformedMessage, "HLC wall time"),
    (lambda t, p: p[2].__setitem__(0, "k" * 300), MalformedMessage, "exceeds 256"),
    (lambda t, p: p[2].__setitem__(0, 1.5), MalformedMessage, "keys must be str"),
    (lambda t, p: p[2].__setitem__(2, "k"), MalformedMessage, "repeats a key"),
    (lambda t, p: p[2][1].append(None), MalformedMessage, "5-field entries"),
    (lambda t, p: p.__setitem__(0, 3), MalformedMessage, "flags"),
    (lambda t, p: p[3].extend([0, 1, b"x", b"y"]), MalformedMessage, "32 bytes"),
])
def test_each_broken_field_gets_a_clear_error(mutate, error, match):
    table, p = payload(good_map())
    mutate(table, p)
    with pytest.raises(error, match=match):
        decode_object(LWWMap(), p, decode_table(table))


def test_caps_are_checked_before_building():
    m = LWWMap()
    for i in range(50):
        m.set(Writer("a", (i, 0)), i, i)
    table, p = payload(m)
    with pytest.raises(MessageTooLarge, match="over 10 entries"):
        decode_object(LWWMap(), p, decode_table(table), Limits(max_entries=10))
    with pytest.raises(MessageTooLarge, match="names 3 replicas, the limit is 2"):
        decode_table(["a", "b", "c"], Limits(max_replicas=2))
    with pytest.raises(MalformedMessage, match="repeats an id"):
        decode_table(["a", "a"])
    deep = [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]
    m2 = LWWMap()
    m2.set(Writer("a"), "k", 1)
    table, p = payload(m2)
    p[2][1][4] = packb(deep)
    with pytest.raises(MalformedMessage, match="deeper than 16"):
        decode_object(LWWMap(), p, decode_table(table))


def test_node_ids_are_interned_per_message():
    m = LWWMap()
    for i in range(100):
        m.set(Writer(NODE, (1_700_000_000_000 + i, 0)), f"k{i}", i)
    one = len(packb(payload(m)[1])) + len(NODE)
    assert one < 100 * 30  # ~28 bytes per entry with a 52-character writer id
    assert snapshot(m).count(NODE.encode()) == 1
