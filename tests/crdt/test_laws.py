"""Join laws and delta properties, for every type, on reachable states (hypothesis).

- join is associative, commutative and idempotent;
- deltas applied in any order, any number of times, converge to the full-state merge;
- the two ways a join is computed (small-delta index lookup, large-state store walk) and the
  paper's plain DotMap join agree;
- joining the *effective* delta of a join gives the same state as joining the whole input.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from crdt.causal import Causal
from crdt.dotstore import store_join
from tests.crdt.strategies import TYPE_IDS, TYPES, TypeCase, run_history

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def join(a: Causal, b: Causal) -> Causal:
    return a.joined(b)


@pytest.mark.parametrize("case", TYPES, ids=TYPE_IDS)
@SETTINGS
@given(data=st.data())
def test_join_is_a_semilattice(case: TypeCase, data: st.DataObject) -> None:
    a, b, c = run_history(data, case).states
    assert join(a, b) == join(b, a)
    assert join(join(a, b), c) == join(a, join(b, c))
    assert join(a, a) == a
    ab = join(a, b)
    assert join(ab, a) == ab  # a <= a |_| b


@pytest.mark.parametrize("case", TYPES, ids=TYPE_IDS)
@SETTINGS
@given(data=st.data())
def test_deltas_in_any_order_and_repeated_converge_to_full_merge(
        case: TypeCase, data: st.DataObject) -> None:
    h = run_history(data, case)
    full = join(join(h.states[0], h.states[1]), h.states[2])
    seed = data.draw(st.integers(0, 2**32), label="shuffle seed")
    rng = random.Random(seed)
    shuffled = h.deltas + rng.sample(h.deltas, k=len(h.deltas) // 2)  # some twice
    rng.shuffle(shuffled)
    replica = case.make()
    for d in shuffled:
        replica.join(d)
    assert replica == full, f"shuffle seed {seed}"
    again = replica.copy()
    for d in h.deltas:
        again.join(d)
    assert again == full


@pytest.mark.parametrize("case", TYPES, ids=TYPE_IDS)
@SETTINGS
@given(data=st.data())
def test_fast_and_slow_join_agree_with_the_paper(case: TypeCase, data: st.DataObject) -> None:
    h = run_history(data, case)
    a, b = h.states[0], h.states[1]
    depth = a.kind.depth
    reference = store_join(a.store, a.ctx, b.store, b.ctx, depth)
    for other in [b] + h.deltas[:5]:
        ref = store_join(a.store, a.ctx, other.store, other.ctx, depth)
        fast = a.copy()
        fast.apply(fast.diff(other))
        slow = a.copy()
        slow.apply(slow.diff(other, fast=False))
        assert fast.store == slow.store == ref
        assert fast.ctx == slow.ctx == a.ctx | other.ctx
        assert fast.index == {(e[0], e[1]): p for p, e in fast.entries()}
    assert join(a, b).store == reference


@pytest.mark.parametrize("case", TYPES, ids=TYPE_IDS)
@SETTINGS
@given(data=st.data())
def test_effective_delta_carries_everything_that_was_news(
        case: TypeCase, data: st.DataObject) -> None:
    h = run_history(data, case)
    a, b, c = h.states
    plan = a.diff(b)
    eff = a.effective(plan)
    assert join(a, eff) == join(a, b)
    # forwarding the effective delta to a third replica that already has ``a`` gives it b too
    ca = join(c, a)
    assert join(ca, eff) == join(ca, b)
    # an effective delta adds nothing to the state it came from
    assert join(b, eff).same_state(b)
