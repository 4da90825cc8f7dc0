from dataclasses import dataclass
from typing import Annotated

import pytest

from protocol.errors import LocalProtocolError, MalformedMessage
from protocol.schema import MaxItems, MaxLen, MessageRegistry, encode_body, message, struct_spec
from protocol.types import U8, Digest


REG = MessageRegistry()


@dataclass(frozen=True, slots=True)
class Inner:
    a: U8
    b: str | None


@message("test.outer", 1, registry=REG)
@dataclass(frozen=True, slots=True)
class Outer:
    inner: Inner
    items: Annotated[tuple[Inner, ...], MaxItems(2)]
    tags: Annotated[dict[str, int], MaxItems(2)]
    name: Annotated[str, MaxLen(5)]
    digest: Digest
    ratio: float


GOOD = Outer(Inner(1, None), (Inner(2, "x"),), {"b": 1, "a": 2}, "abc", b"\0" * 32, 0.5)


def test_nested_round_trip():
    body = encode_body(GOOD)
    assert body[0] == [1, None] and list(body[2]) == ["a", "b"]  # dict keys sorted
    assert REG.decode("test.outer", 1, body) == GOOD


@pytest.mark.parametrize("index,value,match", [
    (0, [256, None], r"inner\.a: 256 is outside \[0, 255\]"),
    (1, [[1, None]] * 3, "3 items exceed the limit of 2"),
    (2, {"a": 1, "b": 2, "c": 3}, "3 entries exceed"),
    (3, "toolong", "length 7 exceeds 5"),
    (5, float("nan"), "finite float"),
    (5, 1, "expected float, got int"),
    (1, [[1, 5]], r"items\[0\]\.b: expected str, got int"),
])
def test_errors_name_the_field(index, value, match):
    body = encode_body(GOOD)
    body[index] = value
    with pytest.raises(MalformedMessage, match=match):
        REG.decode("test.outer", 1, body)


def test_encoding_an_invalid_message_is_our_bug():
    with pytest.raises(LocalProtocolError, match="refusing to send invalid Outer"):
        encode_body(Outer(Inner(300, None), (), {}, "a", b"\0" * 32, 0.0))


def test_double_registration_is_refused():
    with pytest.raises(LocalProtocolError, match="defined twice"):
        message("test.outer", 1, registry=REG)(dataclass(frozen=True)(type("X", (), {"__annotations__": {}})))


def test_unsupported_annotation_fails_at_definition():
    with pytest.raises(LocalProtocolError, match="unsupported field type"):
        @dataclass(frozen=True)
        class Bad:
            x: set[int]
        struct_spec(Bad)
