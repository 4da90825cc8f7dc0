"""Causal contexts against a plain set-of-dots model."""

from hypothesis import given, settings, strategies as st

from crdt.dots import CausalContext, meet_vectors

DOTS = st.sets(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 30)), max_size=40)


def model(ctx: CausalContext) -> set[tuple[str, int]]:
    return set(ctx.iter_dots())


@settings(max_examples=200, deadline=None)
@given(DOTS, DOTS, st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 35)))
def test_context_behaves_like_a_set_of_dots(xs, ys, probe):
    a, b = CausalContext.from_dots(xs), CausalContext.from_dots(ys)
    assert model(a) == xs and a.count() == len(xs)
    assert a.contains(*probe) == (probe in xs) == (probe in a)
    assert model(a | b) == xs | ys
    assert model(a.difference(b)) == xs - ys
    assert a.issubset(b) == (xs <= ys)
    for r in "abc":
        assert a.max(r) == max((c for q, c in xs if q == r), default=0)
    grown = a.copy()
    for r, c in sorted(ys):
        grown.add(r, c)
    assert grown == a | b  # one normal form, however it was built


def test_contiguous_dots_fold_into_the_version_vector():
    ctx = CausalContext()
    for c in (1, 2, 5, 4):
        ctx.add("a", c)
    assert ctx.vv == {"a": 2} and ctx.extra == {"a": [(4, 5)]}
    ctx.add("a", 3)
    assert ctx.vv == {"a": 5} and ctx.extra == {}
    ctx.add_range("b", 10, 1_000_000)  # a far-behind range stays one entry
    assert ctx.extra == {"b": [(10, 1_000_000)]} and ctx.count() == 5 + 999_991
    assert ctx.next_counter("b") == 1_000_001 and ctx.next_counter("z") == 1


def test_meet_of_vectors_is_what_everyone_has():
    assert meet_vectors([{"a": 5, "b": 2}, {"a": 3, "b": 7, "c": 1}]) == {"a": 3, "b": 2}
    assert meet_vectors([]) == {}
