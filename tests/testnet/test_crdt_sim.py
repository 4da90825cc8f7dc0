"""Many replicas over a lossy, duplicating, reordering network converge once faults stop.

The normal suite runs a handful of seeds; ``scripts/sim_crdt.py`` runs hundreds. A failing
seed names itself and replays with ``run_convergence(seed)``.
"""

from __future__ import annotations

import random

import pytest

from crdt import LWWMap, Writer
from crdt.auth import signed_bytes, write_digest
from crdt.codec import Interner, encode_object, pack_payload
from protocol.messages.crdt import CrdtDelta, CrdtObject
from testnet.crdt_sim import NETWORK, CrdtNode, Transport, run_convergence
from testnet.sim import InvariantViolation, replayable


def check(seed: int, **kwargs) -> None:
    result = run_convergence(seed, **kwargs)
    if not result.converged:
        raise InvariantViolation(result.problem)
    assert result.dropped > 0 and result.duplicated > 0 and result.updates > 0
    assert result.rejected == {}, result.rejected


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_fifty_nodes_converge_after_drops_duplicates_and_reordering(seed: int) -> None:
    # 50 nodes, 20% dropped, 10% duplicated, delays 1-250 ms (so reordered), 1.5 s of updates;
    # messages are real msgpack bytes but unsigned (the signed path runs at 10 nodes below)
    replayable(seed, lambda s: check(s, nodes=50, fault_time=1.5))


def test_signed_envelopes_end_to_end_with_crashes_and_restarts() -> None:
    replayable(7, lambda s: check(s, nodes=10, transport=Transport.ENVELOPES, crash=2))


def test_crashed_nodes_with_and_without_their_disk_catch_up() -> None:
    replayable(11, lambda s: check(s, nodes=20, crash=4))


def test_same_seed_same_run() -> None:
    assert run_convergence(5, nodes=12) == run_convergence(5, nodes=12)


def test_a_run_that_cannot_converge_names_its_seed() -> None:
    result = run_convergence(3, nodes=6, drop=1.0, fault_time=1.0, settle_deadline=0.0)
    assert not result.converged
    assert result.problem.startswith("seed 3: ") and "run_convergence(3)" in result.problem
    with pytest.raises(InvariantViolation, match="seed 3"):
        check(3, nodes=6, drop=1.0, fault_time=1.0, settle_deadline=0.0)


class Forger(CrdtNode):
    """Honest replica, plus a forged capability record of a neighbour on every tick."""

    def on_tick(self, sim, now):
        super().on_tick(sim, now)
        victim = self.neighbours[0]
        m = LWWMap()
        m.set(Writer(victim, (0, 0)), victim, {"cores": 4096, "forged": True})
        (dot, path), = m.index.items()
        (_, entry), = m.entries()
        m.sigs[dot] = self.identity.sign(signed_bytes(NETWORK, "caps", dot[0], 10**6,
                                                      write_digest("caps", path, entry[2:])))
        m.ctx.add(victim, 10**6)
        rep = Interner()
        data = pack_payload(encode_object(m, rep, signed=True))
        msg = CrdtDelta(self.replica.session + 1, 1, 1, tuple(rep.table),
                        (CrdtObject("caps", data),))
        for peer in self.neighbours:
            sim.send(self.name, peer, self.encode(msg, 1_700_000_000_000 + int(now * 1000)))


def test_a_forging_node_is_rejected_and_honest_nodes_still_converge(monkeypatch) -> None:
    import testnet.crdt_sim as cs

    made = []

    def node(name, *args, **kwargs):
        cls = Forger if not made else CrdtNode
        made.append(name)
        return cls(name, *args, **kwargs)

    monkeypatch.setattr(cs, "CrdtNode", node)
    result = run_convergence(13, nodes=8, transport=Transport.ENVELOPES, fault_time=1.0)
    assert result.converged, result.problem
    assert result.rejected.get("crdt_forged_dot", 0) > 0
    assert set(result.rejected) == {"crdt_forged_dot"}
    for proc in result.procs.values():
        caps = proc.replica.get("caps")
        assert all(not (isinstance(v, dict) and v.get("forged")) for _, v in caps.items())
        assert all(caps.writer(k) == k for k in caps.keys())


class UnsignedForger(CrdtNode):
    """Without signatures nothing stops a node from inventing another's write."""

    def on_tick(self, sim, now):
        super().on_tick(sim, now)
        victim = self.neighbours[0]
        m = LWWMap()
        m.ctx.add(victim, 10**6)
        m.store[victim] = ((victim, 10**6, 0, 0, b"\x01"),)
        rep = Interner()
        data = pack_payload(encode_object(m, rep))
        msg = CrdtDelta(7, 1, 1, tuple(rep.table), (CrdtObject("caps", data),))
        for peer in self.neighbours:
            sim.send(self.name, peer, self.encode(msg, 0))


def test_the_safety_invariant_catches_invented_dots_and_names_the_seed(monkeypatch) -> None:
    import testnet.crdt_sim as cs

    made = []

    def node(name, *args, **kwargs):
        made.append(name)
        return (UnsignedForger if len(made) == 1 else CrdtNode)(name, *args, **kwargs)

    monkeypatch.setattr(cs, "CrdtNode", node)
    with pytest.raises(InvariantViolation, match=r"seed 21: .* has seen \d+ dots of .* in "
                                                 r"'caps' \(up to 100000\d\) but .* only made"):
        run_convergence(21, nodes=6, fault_time=2.0)
