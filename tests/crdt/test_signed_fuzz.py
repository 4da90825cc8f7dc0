"""Signed replicas under any delivery order: honest traffic is never rejected, and converges.

Every dot is signed and every cover must be proven (``crdt.auth``), so a proof missing from
some forwarding path would show up here as a rejection of an honest message.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from protocol.identity import NodeIdentity

from crdt import DotSigner, LWWMap, ObjectSpec, ORMap, ORSet, PNCounter, Policy, CrdtReplica
from tests.crdt.harness import connect, pump

NET = "novacron-fuzz"
T0 = 1_700_000_000_000
IDS = [NodeIdentity(bytes([50 + i]) * 32) for i in range(4)]
NAMES = [i.node_id for i in IDS]


def schema():
    return {"caps": ObjectSpec(LWWMap(), Policy.OWNER_KEYED), "tags": ObjectSpec(ORMap(ORSet())),
            "load": ObjectSpec(PNCounter())}


def op(data: st.DataObject, r: CrdtReplica, now: int) -> None:
    me = r.node_id
    kind = data.draw(st.integers(0, 4), label="op")
    key, elem = data.draw(st.sampled_from("ab")), data.draw(st.sampled_from(NAMES[:2] + ["z"]))
    if kind == 0:
        r.update("caps", lambda m, w: m.p_set(w, me, data.draw(st.integers(0, 9))), now)
    elif kind == 1:
        r.update("tags", lambda m, w: m.p_update(w, key, lambda s: s.p_add(w, elem)), now)
    elif kind == 2:
        r.update("tags", lambda m, w: m.p_update(w, key, lambda s: s.p_remove(w, elem)), now)
    elif kind == 3:
        r.update("tags", lambda m, w: m.p_remove(w, key), now)
    else:
        r.update("load", lambda c, w: c.p_inc(w, 1), now)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_honest_signed_traffic_in_any_order_is_accepted_and_converges(data):
    rs = {i.node_id: CrdtReplica(i.node_id, schema(), session=n + 1, signer=DotSigner(i, NET))
          for n, i in enumerate(IDS)}
    links = [(NAMES[0], NAMES[1]), (NAMES[1], NAMES[2]), (NAMES[2], NAMES[3]),
             (NAMES[0], NAMES[2])]
    queue = [m for a, b in links for m in connect(rs, a, b, T0)]
    now = T0
    for _ in range(data.draw(st.integers(5, 40), label="steps")):
        now += 50
        action = data.draw(st.sampled_from(["op", "op", "tick", "deliver", "deliver", "drop"]))
        name = data.draw(st.sampled_from(NAMES), label="node")
        if action == "op":
            op(data, rs[name], now)
        elif action == "tick":
            queue += [(name, dst, m) for dst, m in rs[name].tick(now)]
        elif queue:
            i = data.draw(st.integers(0, len(queue) - 1), label="which")
            src, dst, msg = queue.pop(i) if action == "drop" or not data.draw(
                st.booleans(), label="duplicate") else queue[i]
            if action == "deliver":
                queue += [(dst, d, m) for d, m in rs[dst].on_message(src, msg, now)]
    pump(rs, now, queue, rounds=60, step_ms=500)  # faults stop: everything gets through
    first = rs[NAMES[0]]
    for r in rs.values():
        for n, obj in r.objects.items():
            assert obj.same_state(first.objects[n]), n
