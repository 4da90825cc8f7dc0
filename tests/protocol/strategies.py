"""Hypothesis strategies for protocol tests: any registered message, with valid field values."""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any

from hypothesis import strategies as st

import protocol.messages  # noqa: F401  (registers every message class)
from protocol.schema import REGISTRY, MaxItems, MaxLen, Range, Size

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=16)
    | st.text(max_size=8) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def for_type(tp: Any, constraints: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return for_type(base, constraints + tuple(meta))
    if isinstance(tp, typing.NewType):
        return for_type(tp.__supertype__, constraints)
    rng = next((c for c in constraints if isinstance(c, Range)), None)
    size = next((c.n for c in constraints if isinstance(c, Size)), None)
    max_len = next((c.n for c in constraints if isinstance(c, MaxLen)), None)
    max_items = next((c.n for c in constraints if isinstance(c, MaxItems)), None)
    if tp is Any:
        return _ANY
    if tp is bool:
        return st.booleans()
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return st.sampled_from(list(tp))
    if tp is int:
        lo, hi = (rng.lo, rng.hi) if rng else (-(2**63), 2**64 - 1)
        return st.integers(lo, hi)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bytes:
        if size is not None:
            return st.binary(min_size=size, max_size=size)
        return st.binary(max_size=min(max_len or 64, 64))
    if tp is str:
        return st.text(max_size=min(max_len or 16, 16))
    if origin in (typing.Union, typing.types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return st.none() | for_type(inner, constraints)
    if origin in (list, tuple):
        return st.lists(for_type(typing.get_args(tp)[0]), max_size=min(max_items or 3, 3)).map(tuple)
    if origin is dict:
        return st.dictionaries(st.text(max_size=8), for_type(typing.get_args(tp)[1]), max_size=3)
    if dataclasses.is_dataclass(tp):
        return message_of(tp)
    raise NotImplementedError(tp)


def message_of(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    return st.builds(cls, *[for_type(hints[f.name]) for f in fields])


def any_message() -> st.SearchStrategy[Any]:
    return st.one_of([message_of(c) for c in sorted(REGISTRY.classes(), key=lambda c: c.TYPE)])
