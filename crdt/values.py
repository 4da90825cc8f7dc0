"""What a CRDT may hold: keys and element names are short scalars, values are canonical msgpack.

Values are stored *encoded* (canonical msgpack bytes, ``protocol.canonical``): one immutable,
hashable, comparable object per value, so entries stay flat tuples, equal entries compare in
C, signatures cover exact bytes, and snapshots need no second encoding. Reads decode.

The same checks run on local writes (a ``CrdtUsageError``: our bug) and, through
``crdt.codec``, on everything a peer sends (``MalformedMessage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.canonical import packb, unpackb
from protocol.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError

from crdt.errors import CrdtUsageError

I64_MIN = -(1 << 63)
U64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on everything a CRDT message or snapshot may contain (checked before use)."""

    max_key_len: int = 256
    """Characters of a str key, bytes of a bytes key."""
    max_value_bytes: int = 64 * 1024
    """Encoded size of one value."""
    max_value_depth: int = 16
    """Nesting of lists and maps inside one value."""
    max_entries: int = 100_000
    """Live entries of one object in one message."""
    max_ctx_ranges: int = 65_536
    """Ranges in one causal context (sum over replicas)."""
    max_replicas: int = 4096
    """Distinct writers named by one message."""
    max_objects: int = 64
    """Objects in one message."""


DEFAULT_LIMITS = Limits()
SNAPSHOT_LIMITS = Limits(max_entries=10_000_000, max_ctx_ranges=10_000_000,
                         max_replicas=1_000_000, max_objects=4096)
"""Snapshots are our own files, not a peer's input: larger caps, same checks."""


def key_problem(key: object, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """Why ``key`` cannot be a map key or set element, or None if it can."""
    if type(key) is str or type(key) is bytes:
        if len(key) > limits.max_key_len:
            return f"key of length {len(key)} exceeds {limits.max_key_len}"
        return None
    if type(key) is int:
        if not I64_MIN <= key <= U64_MAX:
            return f"integer key {key} is outside the 64-bit range"
        return None
    return f"keys must be str, bytes or int, not {type(key).__name__}"


def check_key(key: object, limits: Limits = DEFAULT_LIMITS) -> None:
    problem = key_problem(key, limits)
    if problem:
        raise CrdtUsageError(problem)


def _depth(v: Any, limit: int, level: int = 0) -> None:
    if level > limit:
        raise ValueError(f"value nests deeper than {limit} levels")
    if isinstance(v, (list, tuple)):
        for x in v:
            _depth(x, limit, level + 1)
    elif isinstance(v, dict):
        for x in v.values():
            _depth(x, limit, level + 1)


def pack_value(value: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode a local value (any msgpack data with str map keys) for storing in a CRDT."""
    try:
        _depth(value, limits.max_value_depth)
        data = packb(value)
    except (ValueError, LocalProtocolError) as err:
        raise CrdtUsageError(f"cannot store value: {err}") from None
    if len(data) > limits.max_value_bytes:
        raise CrdtUsageError(f"value encodes to {len(data)} bytes, over the "
                             f"{limits.max_value_bytes}-byte cap")
    return data


def unpack_value(data: bytes) -> Any:
    """Decode a stored value (already validated when it entered the CRDT)."""
    return unpackb(data, max_size=len(data) + 1, max_items=1 << 20)


_CHECKED: dict[bytes, None] = {}
"""Values already found valid (a value crosses many links; check it once). Bounded."""
_CHECKED_MAX = 8192


def check_value_bytes(data: object, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Validate a value a peer sent: bytes, under the cap, canonical msgpack, not too deep."""
    if type(data) is not bytes:
        raise MalformedMessage(f"a CRDT value must be bytes, not {type(data).__name__}")
    memo = limits.max_value_depth == DEFAULT_LIMITS.max_value_depth
    if memo and data in _CHECKED and len(data) <= limits.max_value_bytes:
        return data
    if len(data) > limits.max_value_bytes:
        raise MalformedMessage(f"a CRDT value of {len(data)} bytes exceeds "
                               f"{limits.max_value_bytes}")
    try:
        value = unpackb(data, max_size=limits.max_value_bytes)
        _depth(value, limits.max_value_depth)
    except RemoteProtocolError as err:
        raise MalformedMessage(f"a CRDT value is not valid msgpack: {err}") from None
    except (ValueError, RecursionError):
        raise MalformedMessage(f"a CRDT value nests deeper than {limits.max_value_depth} "
                               "levels") from None
    try:
        canonical = packb(value) == data
    except LocalProtocolError:
        canonical = False
    if not canonical:
        raise MalformedMessage("a CRDT value is not in canonical msgpack form")
    if memo and len(data) <= 1024:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[data] = None
    return data


__all__ = ["DEFAULT_LIMITS", "SNAPSHOT_LIMITS", "Limits", "check_key", "check_value_bytes",
           "key_problem", "pack_value", "unpack_value"]
