"""Checking the ``params`` of a control request: one clear message per mistake."""

from __future__ import annotations

from typing import Any

from daemon.control.jsonrpc import invalid_params

_MISSING = object()


def get(params: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    value = params.get(name, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise invalid_params(f"missing parameter {name!r}")
        return default
    if isinstance(value, bool) and kind is not bool and (kind is int or (isinstance(kind, tuple) and int in kind)):
        raise invalid_params(f"parameter {name!r} must be {_names(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise invalid_params(f"parameter {name!r} must be {_names(kind)}, got {type(value).__name__}")
    return value


def only(params: dict[str, Any], *allowed: str) -> None:
    extra = sorted(set(params) - set(allowed))
    if extra:
        shown = ", ".join(allowed) or "none"
        raise invalid_params(f"unknown parameter {extra[0]!r} (accepted: {shown})")


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             dict: "an object", list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
