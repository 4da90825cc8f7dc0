"""Canonical msgpack: one byte string per value, and strict, bounded decoding of untrusted bytes.

Canonical rules (so a message has exactly one encoding, and its hash is its identity):

- integers in their shortest msgpack form, floats always float64 (msgpack-python does both);
- ``str`` as UTF-8 str, ``bytes`` as bin (``use_bin_type``), tuples and lists as arrays;
- maps only with ``str`` keys, in sorted order (our message bodies are arrays, so maps appear
  only inside free-form values);
- no extension types, no NaN-dependent ordering tricks.

``unpackb`` never lets a msgpack exception escape: everything becomes ``MalformedMessage`` or
``MessageTooLarge``, and container sizes are capped before allocation.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.errors import LocalProtocolError, MalformedMessage, MessageTooLarge

DEFAULT_MAX_SIZE = 1 << 20  # 1 MiB: anything larger goes over a blob stream, not one message


def _sorted_maps(obj: Any) -> Any:
    """Copy of ``obj`` where every dict has its keys in sorted order (only walks containers)."""
    if isinstance(obj, dict):
        try:
            items = sorted(obj.items())
        except TypeError:
            raise LocalProtocolError("canonical maps need str keys of one type") from None
        for key, _ in items:
            if not isinstance(key, str):
                raise LocalProtocolError(f"canonical maps need str keys, got {type(key).__name__}")
        return {k: _sorted_maps(v) for k, v in items}
    if isinstance(obj, (list, tuple)):
        # Recurse only into containers: one call per scalar was most of the cost of checking
        # the canonical form of a large array (a PBFT batch).
        return [_sorted_maps(v) if isinstance(v, (dict, list, tuple)) else v for v in obj]
    return obj


def _reject_unknown(obj: Any) -> Any:
    raise LocalProtocolError(f"cannot encode {type(obj).__name__} canonically")


_packer_opts = dict(use_bin_type=True, strict_types=False, default=_reject_unknown)


def packb(obj: Any, *, maps: bool = True) -> bytes:
    """Canonical bytes of ``obj``. ``maps=False`` skips the dict-sorting walk when the caller
    knows ``obj`` holds no dicts (message bodies are arrays of typed fields)."""
    try:
        data: bytes = msgpack.packb(_sorted_maps(obj) if maps else obj, **_packer_opts)
        return data
    except (TypeError, ValueError, OverflowError) as err:
        raise LocalProtocolError(f"cannot encode value: {err}") from None


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage(f"msgpack extension type {code} is not allowed")


def _sorted_pairs(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that admits only canonical maps: str keys in strictly sorted order."""
    prev = None
    for key, _ in pairs:
        if type(key) is not str:
            raise MalformedMessage("map keys must be strings")
        if prev is not None and key <= prev:
            raise MalformedMessage("map keys are not in canonical (sorted, unique) order")
        prev = key
    return dict(pairs)


def unpackb(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, max_items: int = 65536,
            canonical_maps: bool = False) -> Any:
    """Decode untrusted msgpack with hard limits. Raises only ``RemoteProtocolError`` kinds.

    ``canonical_maps`` rejects maps whose keys are not sorted strings; with it, the decoded value
    re-encodes with ``packb(value, maps=False)`` to the same bytes iff the input was canonical.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("expected bytes")
    if len(data) > max_size:
        raise MessageTooLarge(f"message is {len(data)} bytes, the limit is {max_size}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_no_ext,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max_items,
            max_map_len=max_items,
            max_ext_len=0,
            object_pairs_hook=_sorted_pairs if canonical_maps else None,
        )
    except MalformedMessage:
        raise
    except msgpack.ExtraData:
        raise MalformedMessage("trailing bytes after the msgpack value") from None
    except (ValueError, TypeError, msgpack.UnpackException, UnicodeDecodeError,
            OverflowError, RecursionError) as err:
        raise MalformedMessage(f"not valid msgpack: {type(err).__name__}") from None


def is_canonical(data: bytes, value: Any) -> bool:
    """True iff ``data`` is the canonical encoding of the value it decoded to."""
    try:
        return packb(value) == bytes(data)
    except LocalProtocolError:
        return False
