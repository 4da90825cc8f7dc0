"""Who may write what, end to end through replicas that sign and check every dot."""

import pytest

from protocol.identity import NodeIdentity

from crdt import (
    ClockSkew,
    CrdtUsageError,
    DotSigner,
    ForbiddenWrite,
    ForgedDot,
    LWWMap,
    ObjectSpec,
    ORMap,
    ORSet,
    Policy,
    CrdtReplica,
    UnprovenDot,
    Writer,
)
from crdt.auth import signed_bytes, write_digest
from crdt.hlc import HybridClock
from tests.crdt.harness import connect, delta_message, pump

NET = "novacron-test"
T0 = 1_700_000_000_000
IDS = [NodeIdentity(bytes([i]) * 32) for i in (1, 2, 3)]
A, B, C = (i.node_id for i in IDS)


def schema():
    return {"caps": ObjectSpec(LWWMap(), Policy.OWNER_KEYED), "tags": ObjectSpec(ORMap(ORSet()))}


def replicas():
    return {i.node_id: CrdtReplica(i.node_id, schema(), session=n + 1,
                               signer=DotSigner(i, NET)) for n, i in enumerate(IDS)}


def line(rs):
    """A - B - C: C never talks to A."""
    inflight = connect(rs, A, B, T0) + connect(rs, B, C, T0)
    return pump(rs, T0, inflight)


def test_writes_relayed_through_a_peer_stay_verifiably_the_writers():
    rs = replicas()
    now = line(rs)
    rs[A].update("caps", lambda m, w: m.p_set(w, A, {"cores": 8}), now)
    rs[A].update("tags", lambda m, w: m.p_update(w, "gpu", lambda s: s.p_add(w, A)), now)
    now = pump(rs, now)
    caps = rs[C].get("caps")
    assert caps.get(A) == {"cores": 8} and caps.writer(A) == A
    (dot, sig), = caps.sigs.items()
    (path, entry), = caps.entries()
    digest = write_digest("caps", path, entry[2:])
    assert IDS[0].public.verify(signed_bytes(NET, "caps", A, dot[1], digest), sig)
    # B removes the tag A added (observed remove in a shared object): C accepts it
    rs[B].update("tags", lambda m, w: m.p_update(w, "gpu", lambda s: s.p_remove(w, A)), now)
    pump(rs, now)
    assert rs[C].get("tags").keys() == set()


def forged(value_writer: str, signer: NodeIdentity, counter: int = 1) -> LWWMap:
    m = LWWMap()
    m.set(Writer(value_writer, (T0, 0)), value_writer, {"cores": 1024})
    (dot, path), = m.index.items()
    (_, entry), = m.entries()
    digest = write_digest("caps", path, entry[2:])
    m.sigs[dot] = signer.sign(signed_bytes(NET, "caps", dot[0], dot[1], digest))
    return m


def test_a_write_under_another_nodes_dot_is_rejected_and_changes_nothing():
    rs = replicas()
    before = rs[C].snapshot()
    msg = delta_message("caps", forged(A, signer=IDS[1]))  # B signs a write as A
    with pytest.raises(ForgedDot, match=r"is not signed by its writer .*a node may only write "
                                        r"its own dots"):
        rs[C].on_message(B, msg, T0)
    assert rs[C].snapshot() == before
    unsigned = forged(A, signer=IDS[1])
    unsigned.sigs.clear()
    with pytest.raises(ForgedDot):
        rs[C].on_message(B, delta_message("caps", unsigned, seq=1, session=78), T0)


def test_covering_another_nodes_future_writes_is_rejected():
    rs = replicas()
    now = line(rs)
    rs[A].update("tags", lambda m, w: m.p_update(w, "k", lambda s: s.p_add(w, "x")), now)
    now = pump(rs, now)
    evil = ORMap(ORSet())
    evil.ctx.add_range(A, 1, 50)  # "A's writes 1..50 are all removed"
    with pytest.raises(UnprovenDot, match=r"covers dot .* but .*last signed mutation known "
                                          r"here is 1"):
        rs[C].on_message(B, delta_message("tags", evil), now)
    assert rs[C].get("tags").get("k").elements() == {"x"}


def test_owner_keyed_records_are_written_and_removed_only_by_their_owner():
    rs = replicas()
    now = line(rs)
    with pytest.raises(CrdtUsageError, match="may only write under its own key"):
        rs[B].update("caps", lambda m, w: m.p_set(w, A, {"cores": 1}), now)
    rs[A].update("caps", lambda m, w: m.p_set(w, A, {"cores": 8}), now)
    now = pump(rs, now)
    with pytest.raises(CrdtUsageError, match="may not remove another node's record"):
        rs[B].update("caps", lambda m, w: m.p_remove(w, A), now)
    # B, properly signing its own dot, writes under A's key: refused
    with pytest.raises(ForbiddenWrite, match="may not write under the key of"):
        rs[C].on_message(B, delta_message("caps", _write_as(B, A)), now)
    # B covers A's live record with a cover B signed itself: refused
    evil = rs[B].get("caps").copy()
    patch = evil.p_remove(Writer(B), A)
    delta = evil.to_delta(patch)
    sig, head = DotSigner(IDS[1], NET).sign_patch("caps", patch, (B, patch.ctx.max(B)))
    delta.heads[B] = head
    with pytest.raises(ForbiddenWrite, match="only .* may remove or replace its own record"):
        rs[C].on_message(B, delta_message("caps", delta, session=79), now)
    assert rs[C].get("caps").get(A) == {"cores": 8}
    # A replacing its own record travels fine
    rs[A].update("caps", lambda m, w: m.p_set(w, A, {"cores": 16}), now)
    pump(rs, now)
    assert rs[C].get("caps").get(A) == {"cores": 16}


def _write_as(writer: str, key: str) -> LWWMap:
    ident = next(i for i in IDS if i.node_id == writer)
    m = LWWMap()
    m.set(Writer(writer, (T0, 0)), key, {"cores": 1})
    (dot, path), = m.index.items()
    (_, entry), = m.entries()
    m.sigs[dot] = ident.sign(signed_bytes(NET, "caps", dot[0], dot[1],
                                          write_digest("caps", path, entry[2:])))
    return m


def test_a_clock_an_hour_ahead_cannot_win_every_lww_race():
    rs = replicas()
    now = line(rs)
    rs[A].hlc = HybridClock(last=(now + 3_600_000, 0))  # A's clock is an hour fast
    rs[A].update("caps", lambda m, w: m.p_set(w, A, {"cores": 8}), now)
    msgs = [m for dst, m in rs[A].tick(now + 100) if dst == B]
    with pytest.raises(ClockSkew, match="ahead of this node's clock"):
        for m in msgs:
            rs[B].on_message(A, m, now + 100)
    assert A not in rs[B].get("caps")


@pytest.mark.parametrize("split", [False, True])
def test_a_write_removed_before_a_relay_forwards_it_still_carries_its_proof(split):
    """C never sees A's write, only that it was covered: the proof must travel with the
    cover, whether A's add and remove reach B in one interval or two."""
    rs = replicas()
    now = line(rs)
    rs[A].update("tags", lambda m, w: m.p_update(w, "k", lambda s: s.p_add(w, "x")), now)
    if split:
        for dst, m in rs[A].tick(now + 1):
            for d2, m2 in rs[B].on_message(A, m, now + 1):
                rs[A].on_message(B, m2, now + 1)
    rs[B].update("tags", lambda m, w: m.p_update(w, "k", lambda s: s.p_add(w, "y")), now + 2)
    rs[A].update("tags", lambda m, w: m.p_update(w, "k", lambda s: s.p_remove(w, "x")), now + 2)
    for dst, m in rs[A].tick(now + 3):
        if dst == B:
            rs[B].on_message(A, m, now + 3)
    out = [m for dst, m in rs[B].tick(now + 4) if dst == C]
    assert out
    for m in out:
        rs[C].on_message(B, m, now + 4)  # raises UnprovenDot if a proof is missing
    assert rs[C].get("tags").get("k").elements() == {"y"}
    assert rs[C].get("tags").ctx.max(A) == 2
