"""A state as its difference from the one before: exact, small, and bounded when expanded."""

from __future__ import annotations

import random

import pytest

from consensus.statedelta import apply_delta, make_delta
from protocol.canonical import packb
from protocol.errors import MalformedMessage


def membership(rng: random.Random, keys: list[bytes]) -> bytes:
    return packb([sorted(keys), [[k, 1, b"ok"] for k in sorted(keys)]], maps=False)


def test_a_few_members_changed_in_ten_thousand_is_a_small_exact_delta():
    rng = random.Random(1)
    keys = [rng.randbytes(32) for _ in range(10_000)]
    before = membership(rng, keys)
    after = membership(rng, keys[5:] + [rng.randbytes(32) for _ in range(7)])
    delta = make_delta(before, after)
    assert apply_delta(before, delta, 1 << 20) == after
    assert len(delta) < len(after) // 200  # ~1 KB for 740 KB


def test_a_delta_that_expands_past_the_bound_or_is_not_one_is_refused():
    base = bytes(1000)
    with pytest.raises(MalformedMessage):
        apply_delta(base, make_delta(base, bytes(5000)), 4096)
    with pytest.raises(MalformedMessage):
        apply_delta(base, b"not zstd at all", 1 << 20)
