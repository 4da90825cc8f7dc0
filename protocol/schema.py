"""Typed, versioned message classes, and their strict wire form.

A message class is a frozen dataclass registered under a type name and a version::

    @message("pbft.prepare", 1)
    @dataclass(frozen=True, slots=True)
    class Prepare:
        view: U64
        seq: U64
        digest: Digest

On the wire a body is a msgpack *array* of its fields in declaration order: compact, and
canonical without any key sorting. Field constraints are ``typing.Annotated`` metadata
(``Range``, ``Size``, ``MaxLen``, ``MaxItems``); the common ones are named in ``protocol.types``.
From the type hints we compile, once per class, one checking function per field, so decoding
an untrusted body is a tight loop of ``isinstance`` tests and bound checks.

Supported field types: ``int`` (never ``bool``), ``float``, ``bool``, ``str``, ``bytes``,
``IntEnum`` subclasses, ``T | None``, ``list[T]``/``tuple[T, ...]`` (decoded to tuples so
messages stay hashable), ``dict[str, T]``, nested dataclasses (also arrays), ``NewType`` of any
of these, and ``Any`` (free-form msgpack data, bounded only by the envelope's size cap).

Unknown type names raise ``UnknownMessageType``; known names at unknown versions raise
``UnsupportedVersion``, naming the versions this node speaks.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.errors import (
    LocalProtocolError,
    MalformedMessage,
    ProtocolError,
    UnknownMessageType,
    UnsupportedVersion,
)

# -- constraints -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive integer (or float) bounds."""

    lo: int | float
    hi: int | float


@dataclass(frozen=True, slots=True)
class Size:
    """Exact length of bytes."""

    n: int


@dataclass(frozen=True, slots=True)
class MaxLen:
    """Maximum length of str (in characters) or bytes."""

    n: int


@dataclass(frozen=True, slots=True)
class MaxItems:
    """Maximum number of items of a list, tuple or dict."""

    n: int


Check = Callable[[Any, str], Any]
"""``check(value, path) -> decoded value``; raises ``MalformedMessage`` naming ``path``."""


def _bad(path: str, what: str) -> MalformedMessage:
    return MalformedMessage(f"field {path}: {what}")


def _type_name(v: Any) -> str:
    return type(v).__name__


def _compile(tp: Any, constraints: tuple[Any, ...] = ()) -> Check:
    """Build the checking function for one annotated type."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return _compile(base, constraints + tuple(meta))
    if isinstance(tp, typing.NewType):
        return _compile(tp.__supertype__, constraints)
    rng = next((c for c in constraints if isinstance(c, Range)), None)
    size = next((c.n for c in constraints if isinstance(c, Size)), None)
    max_len = next((c.n for c in constraints if isinstance(c, MaxLen)), None)
    max_items = next((c.n for c in constraints if isinstance(c, MaxItems)), None)

    if tp is Any:
        return lambda v, path: v
    if tp is bool:
        def check_bool(v: Any, path: str) -> bool:
            if v is True or v is False:
                return v
            raise _bad(path, f"expected bool, got {_type_name(v)}")
        return check_bool
    if tp is int or (isinstance(tp, type) and issubclass(tp, enum.IntEnum)):
        lo, hi = (rng.lo, rng.hi) if rng else (-(1 << 63), (1 << 64) - 1)
        enum_cls = tp if tp is not int else None

        def check_int(v: Any, path: str) -> Any:
            if type(v) is not int and not (isinstance(v, int) and not isinstance(v, bool)):
                raise _bad(path, f"expected integer, got {_type_name(v)}")
            if not lo <= v <= hi:
                raise _bad(path, f"{v} is outside [{lo}, {hi}]")
            if enum_cls is not None:
                try:
                    return enum_cls(v)
                except ValueError:
                    raise _bad(path, f"{v} is not a valid {enum_cls.__name__}") from None
            return v
        return check_int
    if tp is float:
        def check_float(v: Any, path: str) -> float:
            if type(v) is not float:
                raise _bad(path, f"expected float, got {_type_name(v)}")
            if v != v or v in (float("inf"), float("-inf")):
                raise _bad(path, "expected a finite float")
            if rng and not rng.lo <= v <= rng.hi:
                raise _bad(path, f"{v} is outside [{rng.lo}, {rng.hi}]")
            return v
        return check_float
    if tp is str or tp is bytes:
        want = tp

        def check_seq(v: Any, path: str) -> Any:
            if type(v) is not want:
                raise _bad(path, f"expected {want.__name__}, got {_type_name(v)}")
            if size is not None and len(v) != size:
                raise _bad(path, f"expected exactly {size} bytes, got {len(v)}")
            if max_len is not None and len(v) > max_len:
                raise _bad(path, f"length {len(v)} exceeds {max_len}")
            return v
        return check_seq
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1 or len(args) != 2:
            raise LocalProtocolError(f"only `T | None` unions are supported, not {tp}")
        inner = _compile(non_none[0], constraints)
        return lambda v, path: None if v is None else inner(v, path)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise LocalProtocolError(f"only homogeneous tuple[T, ...] is supported, not {tp}")
        item = _compile(args[0])

        def check_list(v: Any, path: str) -> tuple[Any, ...]:
            if type(v) is not list and type(v) is not tuple:
                raise _bad(path, f"expected array, got {_type_name(v)}")
            if max_items is not None and len(v) > max_items:
                raise _bad(path, f"{len(v)} items exceed the limit of {max_items}")
            return tuple(item(x, f"{path}[{i}]") for i, x in enumerate(v))
        return check_list
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if kt is not str:
            raise LocalProtocolError("dict fields need str keys")
        key = _compile(kt, tuple(c for c in constraints if isinstance(c, MaxLen)))
        val = _compile(vt)

        def check_dict(v: Any, path: str) -> dict[str, Any]:
            if type(v) is not dict:
                raise _bad(path, f"expected map, got {_type_name(v)}")
            if max_items is not None and len(v) > max_items:
                raise _bad(path, f"{len(v)} entries exceed the limit of {max_items}")
            return {key(k, f"{path}.key"): val(x, f"{path}[{k!r}]") for k, x in v.items()}
        return check_dict
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        spec = struct_spec(tp)
        return lambda v, path: spec.decode(v, path)
    raise LocalProtocolError(f"unsupported field type {tp!r}")


# -- structs -----------------------------------------------------------------------------------


class StructSpec:
    """Compiled wire form of one dataclass: field names, checks, encode and decode."""

    __slots__ = ("cls", "names", "checks", "_encoders")

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        self.cls = cls
        self.names = tuple(f.name for f in fields)
        self.checks = tuple(_compile(hints[f.name]) for f in fields)
        self._encoders = tuple(_encoder(hints[f.name]) for f in fields)

    def encode(self, obj: Any) -> list[Any]:
        return [enc(getattr(obj, name)) for name, enc in zip(self.names, self._encoders)]

    def decode(self, v: Any, path: str = "") -> Any:
        if type(v) is not list:
            raise _bad(path or self.cls.__name__, f"expected array, got {_type_name(v)}")
        if len(v) != len(self.names):
            raise _bad(path or self.cls.__name__,
                       f"expected {len(self.names)} fields, got {len(v)}")
        prefix = f"{path}." if path else f"{self.cls.__name__}."
        values = [check(x, prefix + name) for check, x, name in zip(self.checks, v, self.names)]
        try:
            return self.cls(*values)
        except ProtocolError:
            raise
        except (ValueError, TypeError) as err:  # a class's own __post_init__ invariants
            raise _bad(path or self.cls.__name__, str(err)) from None


def _identity(v: Any) -> Any:
    return v


def _encoder(tp: Any) -> Callable[[Any], Any]:
    """How to turn a field value into plain msgpack data (nested structs become arrays)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _encoder(typing.get_args(tp)[0])
    if isinstance(tp, typing.NewType):
        return _encoder(tp.__supertype__)
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return int
    if origin in (typing.Union, types.UnionType):
        inner = _encoder(next(a for a in typing.get_args(tp) if a is not type(None)))
        return lambda v: None if v is None else inner(v)
    if origin in (list, tuple):
        inner = _encoder(typing.get_args(tp)[0])
        if inner is _identity:
            return list
        return lambda v: [inner(x) for x in v]
    if origin is dict:
        inner = _encoder(typing.get_args(tp)[1])
        return lambda v: {k: inner(x) for k, x in sorted(v.items())}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        spec = struct_spec(tp)
        return spec.encode
    if tp is Any:
        from protocol.canonical import _sorted_maps

        return _sorted_maps
    return _identity


_SPECS: dict[type, StructSpec] = {}


def struct_spec(cls: type) -> StructSpec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = StructSpec(cls)
    return spec


# -- messages and the registry -----------------------------------------------------------------

M = TypeVar("M")


class MessageRegistry:
    """Type name -> version -> class. One registry per network protocol family is possible;
    ``REGISTRY`` holds every message class defined with ``@message``."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[int, type]] = {}

    def register(self, cls: type, type_name: str, version: int) -> None:
        versions = self._by_name.setdefault(type_name, {})
        if version in versions and versions[version] is not cls:
            raise LocalProtocolError(f"message {type_name} v{version} is defined twice")
        versions[version] = cls

    def lookup(self, type_name: str, version: int) -> type:
        versions = self._by_name.get(type_name)
        if versions is None:
            shown = type_name if len(type_name) <= 64 else type_name[:64] + "..."
            raise UnknownMessageType(f"unknown message type {shown!r}")
        cls = versions.get(version)
        if cls is None:
            spoken = ", ".join(f"v{v}" for v in sorted(versions))
            raise UnsupportedVersion(
                f"message type {type_name!r} version {version} is not supported (this node "
                f"speaks {spoken})"
            )
        return cls

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def classes(self) -> list[type]:
        return [c for vs in self._by_name.values() for c in vs.values()]

    def decode(self, type_name: str, version: int, body: Any) -> Any:
        return struct_spec(self.lookup(type_name, version)).decode(body)


REGISTRY = MessageRegistry()


def message(type_name: str, version: int = 1, registry: MessageRegistry = REGISTRY
            ) -> Callable[[type[M]], type[M]]:
    """Class decorator: register a frozen dataclass as message ``type_name`` at ``version``."""
    if not type_name or len(type_name) > 64 or not type_name.isascii():
        raise LocalProtocolError(f"bad message type name {type_name!r}")

    def wrap(cls: type[M]) -> type[M]:
        if not dataclasses.is_dataclass(cls):
            raise LocalProtocolError(f"{cls.__name__} must be a dataclass")
        cls.TYPE = type_name  # type: ignore[attr-defined]
        cls.VERSION = version  # type: ignore[attr-defined]
        registry.register(cls, type_name, version)
        struct_spec(cls)  # compile now: a bad annotation fails at import, not on the wire
        return cls

    return wrap


def message_type(msg: Any) -> tuple[str, int]:
    try:
        return msg.TYPE, msg.VERSION
    except AttributeError:
        raise LocalProtocolError(f"{type(msg).__name__} is not a registered message") from None


def encode_body(msg: Any, *, validate: bool = True) -> list[Any]:
    """The wire array of a message. ``validate`` re-checks every field (our bugs surface as
    ``LocalProtocolError`` here instead of as a peer's rejection)."""
    spec = struct_spec(type(msg))
    body = spec.encode(msg)
    if validate:
        try:
            spec.decode(body)
        except MalformedMessage as err:
            raise LocalProtocolError(f"refusing to send invalid {type(msg).__name__}: {err}") from None
    return body
