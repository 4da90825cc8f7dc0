"""Hypothesis strategies for CRDT tests: random histories of three replicas of any type.

A history is a list of steps; each step is a local mutation on one replica (through the type's
delta mutator), or one replica joining another's full state or one of its deltas. Running it
yields reachable states (the only states join laws are about) and every delta produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from crdt import (
    GCounter,
    LWWMap,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
)
from crdt.causal import Causal, Patch
from crdt.hlc import Writer

REPLICAS = ("12D3KooWAlice", "12D3KooWBob", "12D3KooWCarol")
KEYS = st.sampled_from(["a", "b", "c", 7, b"\x00"])
ELEMS = st.sampled_from(["x", "y", "z"])
VALUES = st.one_of(st.integers(-3, 3), st.sampled_from(["v", "w"]),
                   st.lists(st.integers(0, 2), max_size=2), st.none())

Op = Callable[[st.DataObject, Any, Writer], Patch]


def _set_ops(prefix: str = "") -> list[Op]:
    return [
        lambda d, o, w: o.p_add(w, d.draw(ELEMS)),
        lambda d, o, w: o.p_remove(w, d.draw(ELEMS)),
        lambda d, o, w: o.p_clear(w),
    ]


def _lww_reg_ops() -> list[Op]:
    return [lambda d, o, w: o.p_set(w, d.draw(VALUES)), lambda d, o, w: o.p_clear(w)]


def _mv_ops() -> list[Op]:
    return [lambda d, o, w: o.p_write(w, d.draw(VALUES)), lambda d, o, w: o.p_clear(w)]


def _g_ops() -> list[Op]:
    return [lambda d, o, w: o.p_inc(w, d.draw(st.integers(0, 5))),
            lambda d, o, w: o.p_reset(w)]


def _pn_ops() -> list[Op]:
    return [lambda d, o, w: o.p_inc(w, d.draw(st.integers(0, 5))),
            lambda d, o, w: o.p_dec(w, d.draw(st.integers(0, 5))),
            lambda d, o, w: o.p_reset(w)]


def _lww_map_ops() -> list[Op]:
    return [lambda d, o, w: o.p_set(w, d.draw(KEYS), d.draw(VALUES)),
            lambda d, o, w: o.p_remove(w, d.draw(KEYS))]


def _nested(inner: list[Op]) -> list[Op]:
    """Ops of ``ORMap(V)`` from the ops of ``V``."""
    def update(d: st.DataObject, o: Any, w: Writer) -> Patch:
        op = d.draw(st.sampled_from(inner))
        return o.p_update(w, d.draw(KEYS), lambda v: op(d, v, w))
    return [update, update, lambda d, o, w: o.p_remove(w, d.draw(KEYS)),
            lambda d, o, w: o.p_clear(w)]


@dataclass(frozen=True)
class TypeCase:
    name: str
    make: Callable[[], Causal]
    ops: list[Op]


TYPES = [
    TypeCase("orset", ORSet, _set_ops()),
    TypeCase("lww", LWWRegister, _lww_reg_ops()),
    TypeCase("lwwmap", LWWMap, _lww_map_ops()),
    TypeCase("mvreg", MVRegister, _mv_ops()),
    TypeCase("gcounter", GCounter, _g_ops()),
    TypeCase("pncounter", PNCounter, _pn_ops()),
    TypeCase("ormap<orset>", lambda: ORMap(ORSet()), _nested(_set_ops())),
    TypeCase("ormap<pncounter>", lambda: ORMap(PNCounter()), _nested(_pn_ops())),
    TypeCase("ormap<ormap<mvreg>>", lambda: ORMap(ORMap(MVRegister())),
             _nested(_nested(_mv_ops()))),
]
TYPE_IDS = [t.name for t in TYPES]


@dataclass
class History:
    states: list[Causal]
    deltas: list[Causal]


def run_history(data: st.DataObject, case: TypeCase, max_steps: int = 25) -> History:
    """Three replicas mutate and exchange states and deltas at random."""
    states = [case.make() for _ in REPLICAS]
    produced: list[list[Causal]] = [[] for _ in REPLICAS]
    clock = [0]
    for _ in range(data.draw(st.integers(1, max_steps), label="steps")):
        i = data.draw(st.integers(0, len(REPLICAS) - 1), label="replica")
        action = data.draw(st.sampled_from(["op", "op", "op", "state", "delta"]), label="do")
        if action == "op":
            clock[0] += data.draw(st.integers(-2, 3), label="clock step")
            w = Writer(REPLICAS[i], (max(clock[0], 0), data.draw(st.integers(0, 2))))
            op = data.draw(st.sampled_from(case.ops), label="op")
            produced[i].append(states[i].commit(op(data, states[i], w)))
        else:
            j = data.draw(st.integers(0, len(REPLICAS) - 1), label="from")
            if action == "state":
                states[i].join(states[j])
            elif produced[j]:
                states[i].join(data.draw(st.sampled_from(produced[j]), label="delta"))
    return History(states, [d for ds in produced for d in ds])
