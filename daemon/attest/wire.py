"""Validating readers for msgpack-decoded attestation records from untrusted peers.

Every ``from_wire`` in this package reads through these helpers, so that a wrong type, a
missing or unknown field, or an oversized value ends in ``MalformedMessage`` (or
``MessageTooLarge`` before decoding) with the field named, and nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import msgpack

from protocol.errors import MalformedMessage, MessageTooLarge


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpackb(data: bytes, what: str, max_size: int) -> Any:
    """Decode msgpack with limits: over ``max_size`` bytes is rejected before any parsing."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessage(f"{what}: expected bytes")
    if len(data) > max_size:
        raise MessageTooLarge(f"{what}: {len(data)} bytes, more than the {max_size} allowed")
    try:
        return msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, max_bin_len=max_size,
                               max_str_len=max_size, max_array_len=4096, max_map_len=64,
                               max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise MalformedMessage(f"{what}: not valid msgpack ({err})") from None


def as_map(obj: Any, what: str, required: set[str], optional: Collection[str] = frozenset()
           ) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise MalformedMessage(f"{what}: expected a map, got {type(obj).__name__}")
    keys = set(obj)
    if not all(isinstance(k, str) for k in keys):
        raise MalformedMessage(f"{what}: keys must be strings")
    missing = required - keys
    if missing:
        raise MalformedMessage(f"{what}: missing field(s) {', '.join(sorted(missing))}")
    unknown = keys - required - set(optional)
    if unknown:
        raise MalformedMessage(f"{what}: unknown field(s) {', '.join(sorted(unknown))}")
    return obj


def get_bytes(m: Mapping[str, Any], key: str, what: str, max_len: int, *,
              exact: int | None = None) -> bytes:
    value = m[key]
    if not isinstance(value, bytes):
        raise MalformedMessage(f"{what}.{key}: expected bytes, got {type(value).__name__}")
    if exact is not None and len(value) != exact:
        raise MalformedMessage(f"{what}.{key}: must be {exact} bytes, got {len(value)}")
    if len(value) > max_len:
        raise MalformedMessage(f"{what}.{key}: {len(value)} bytes, at most {max_len} allowed")
    return value


def get_opt_bytes(m: Mapping[str, Any], key: str, what: str, max_len: int) -> bytes | None:
    if m.get(key) is None:
        return None
    return get_bytes(m, key, what, max_len)


def get_int(m: Mapping[str, Any], key: str, what: str, lo: int, hi: int) -> int:
    value = m[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise MalformedMessage(f"{what}.{key}: expected an integer in [{lo}, {hi}]")
    return value


def get_str(m: Mapping[str, Any], key: str, what: str, max_len: int) -> str:
    value = m[key]
    if not isinstance(value, str):
        raise MalformedMessage(f"{what}.{key}: expected a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise MalformedMessage(f"{what}.{key}: {len(value)} characters, at most {max_len}")
    return value


def get_list(m: Mapping[str, Any], key: str, what: str, max_items: int) -> list[Any]:
    value = m[key]
    if not isinstance(value, (list, tuple)):
        raise MalformedMessage(f"{what}.{key}: expected a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise MalformedMessage(f"{what}.{key}: {len(value)} items, at most {max_items}")
    return list(value)


def bytes_list(m: Mapping[str, Any], key: str, what: str, max_items: int,
               max_len: int) -> tuple[bytes, ...]:
    items = get_list(m, key, what, max_items)
    for i, item in enumerate(items):
        if not isinstance(item, bytes) or len(item) > max_len:
            raise MalformedMessage(f"{what}.{key}[{i}]: expected at most {max_len} bytes")
    return tuple(items)


def str_list(m: Mapping[str, Any], key: str, what: str, max_items: int,
             max_len: int) -> tuple[str, ...]:
    items = get_list(m, key, what, max_items)
    for i, item in enumerate(items):
        if not isinstance(item, str) or len(item) > max_len:
            raise MalformedMessage(f"{what}.{key}[{i}]: expected a string of at most "
                                   f"{max_len} characters")
    return tuple(items)
